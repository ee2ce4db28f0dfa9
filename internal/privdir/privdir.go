// Package privdir makes a command's data folder private to the account
// that runs it: the store's files, keys and the agent's records must not be
// readable or writable by other local users (on a Windows server, a local
// user who could write them could make the SYSTEM service run any site).
package privdir

import (
	"fmt"
	"os"
)

// Ensure creates dir private to its owner (0700; on Windows, an ACL for
// SYSTEM and Administrators only) or makes an existing one so. tightened
// says an existing folder was more open than that (made by an older
// version): the caller logs it.
func Ensure(dir string) (tightened bool, err error) {
	fi, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("create data folder %s: %w", dir, err)
		}
		return false, protect(dir)
	case err != nil:
		return false, fmt.Errorf("data folder %s: %w", dir, err)
	case !fi.IsDir():
		return false, fmt.Errorf("data folder %s is a file; give a folder", dir)
	}
	open, err := isOpen(dir, fi)
	if err != nil || !open {
		return false, err
	}
	return true, protect(dir)
}
