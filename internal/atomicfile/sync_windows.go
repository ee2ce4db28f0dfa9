//go:build windows

package atomicfile

// syncDir does nothing on Windows: a folder cannot be opened for sync
// there, and NTFS journals the rename (MoveFileEx) itself.
func syncDir(string) error { return nil }
