//go:build !windows

package privdir

import (
	"os"
	"path/filepath"
	"testing"
)

// TestEnsure: a new folder is 0700 from the start; an existing open one is
// made private and said so; a private one is left alone; a file is refused.
func TestEnsure(t *testing.T) {
	root := t.TempDir()
	fresh := filepath.Join(root, "a", "data")
	if tightened, err := Ensure(fresh); err != nil || tightened {
		t.Fatalf("new folder: tightened %t, %v", tightened, err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Errorf("new folder mode %v, want 0700", fi.Mode().Perm())
	}
	old := filepath.Join(root, "old")
	if err := os.Mkdir(old, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o755); err != nil {
		t.Fatal(err)
	}
	if tightened, err := Ensure(old); err != nil || !tightened {
		t.Fatalf("open folder: tightened %t, %v", tightened, err)
	}
	if fi, _ := os.Stat(old); fi.Mode().Perm() != 0o700 {
		t.Errorf("open folder mode %v after Ensure, want 0700", fi.Mode().Perm())
	}
	if tightened, err := Ensure(old); err != nil || tightened {
		t.Errorf("private folder: tightened %t, %v", tightened, err)
	}
	file := filepath.Join(root, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(file); err == nil {
		t.Error("a file was taken for a data folder")
	}
}
