package gitrev

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sitekeeper/sitekeeper/internal/gitrev/gittest"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return gittest.Run(t, dir, args...)
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

// TestRelate: a commit that descends from the applied one is forward; an
// ancestor is backward; a force-pushed rewrite is unrelated; a commit the
// checkout never fetched is missing.
func TestRelate(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed; .ci/run installs it")
	}
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	commit := func(content string) string {
		if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		git(t, dir, "add", ".")
		git(t, dir, "commit", "-q", "-m", content)
		return git(t, dir, "rev-parse", "HEAD")
	}
	one := commit("a: 1\n")
	two := commit("a: 2\n")
	git(t, dir, "checkout", "-q", "--orphan", "rewrite")
	other := commit("a: 3\n")
	for _, tc := range []struct {
		applied, head string
		want          Relation
	}{
		{one, two, Forward},
		{two, one, Backward},
		{two, other, Unrelated},
		{strings.Repeat("ab", 20), two, Missing},
	} {
		got, err := Relate(dir, tc.applied, tc.head)
		if err != nil || got != tc.want {
			t.Errorf("Relate(applied %.7s, head %.7s) = %v, %v; want %v", tc.applied, tc.head, got, err, tc.want)
		}
	}
}
