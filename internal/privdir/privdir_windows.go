//go:build windows

package privdir

import (
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// sddl grants full control to SYSTEM and the Administrators group only,
// inherited by everything below, and protects the list from the parent's.
const sddl = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

// isOpen reports whether the folder's access list is not exactly ours.
func isOpen(dir string, _ os.FileInfo) (bool, error) {
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return false, fmt.Errorf("read the access list of %s: %w", dir, err)
	}
	want, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return false, err
	}
	return sd.String() != want.String(), nil
}

func protect(dir string) error {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil); err != nil {
		return fmt.Errorf("make data folder %s private to SYSTEM and Administrators: %w", dir, err)
	}
	return nil
}
