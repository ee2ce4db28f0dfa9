//go:build !windows

package privdir

import (
	"fmt"
	"os"
)

func isOpen(_ string, fi os.FileInfo) (bool, error) { return fi.Mode().Perm()&0o077 != 0, nil }

func protect(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("make data folder %s private: %w", dir, err)
	}
	return nil
}
