//go:build !windows

package winsvc

import "context"

// IsService reports whether the process was started by the Service Control
// Manager; never elsewhere.
func IsService() bool { return false }

// Run is Windows-only.
func Run(string, func(context.Context) error) error { return ErrNotWindows }

// Install is Windows-only.
func Install(c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return ErrNotWindows
}

// Uninstall is Windows-only.
func Uninstall(string) error { return ErrNotWindows }

// Start is Windows-only.
func Start(string) error { return ErrNotWindows }

// Stop is Windows-only.
func Stop(string) error { return ErrNotWindows }
