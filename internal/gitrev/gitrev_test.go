package gitrev

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func read(t *testing.T, dir string) map[string][]byte {
	files := map[string][]byte{}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			b, _ := os.ReadFile(p)
			files[p] = b
		}
		return nil
	})
	return files
}

func TestGitRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed; .ci/run installs it")
	}
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	sub := filepath.Join(dir, "sites")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "a.yaml"), []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "one")
	want := git(t, dir, "rev-parse", "HEAD")
	if got := Of(sub, read(t, sub)); got.ID != "git:"+want || got.Dirty {
		t.Errorf("clean: %+v, want git:%s", got, want)
	}
	if err := os.WriteFile(filepath.Join(sub, "a.yaml"), []byte("a: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Of(sub, read(t, sub)); got.ID != "git:"+want+"-dirty" || !slices.Equal(got.Uncommitted, []string{"sites/a.yaml"}) {
		t.Errorf("modified: %+v, want dirty with sites/a.yaml uncommitted", got)
	}
	git(t, dir, "commit", "-q", "-am", "two")
	git(t, dir, "pack-refs", "--all")
	want = git(t, dir, "rev-parse", "HEAD")
	if got := Of(sub, read(t, sub)); got.ID != "git:"+want {
		t.Errorf("packed ref: %+v, want %s", got, want)
	}
	git(t, dir, "checkout", "-q", "--detach", "HEAD~1")
	want = git(t, dir, "rev-parse", "HEAD")
	if got := Of(sub, read(t, sub)); got.ID != "git:"+want {
		t.Errorf("detached: %+v, want %s", got, want)
	}
}

func TestContentHashOutsideGit(t *testing.T) {
	dir := t.TempDir()
	a := Of(dir, map[string][]byte{filepath.Join(dir, "x.yaml"): []byte("1")})
	b := Of(dir, map[string][]byte{filepath.Join(dir, "x.yaml"): []byte("2")})
	if !strings.HasPrefix(a.ID, "sha256:") || a.ID == b.ID {
		t.Errorf("content hashes %q %q", a.ID, b.ID)
	}
}
