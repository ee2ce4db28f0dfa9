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
	if got := Of(sub, read(t, sub), nil); got.ID != "git:"+want || got.Dirty {
		t.Errorf("clean: %+v, want git:%s", got, want)
	}
	if err := os.WriteFile(filepath.Join(sub, "a.yaml"), []byte("a: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Of(sub, read(t, sub), nil); !strings.HasPrefix(got.ID, "git:"+want+"-dirty+") || CommitOf(got.ID) != want || !slices.Equal(got.Uncommitted, []string{"sites/a.yaml"}) {
		t.Errorf("modified: %+v, want dirty with sites/a.yaml uncommitted", got)
	}
	git(t, dir, "commit", "-q", "-am", "two")
	git(t, dir, "pack-refs", "--all")
	want = git(t, dir, "rev-parse", "HEAD")
	if got := Of(sub, read(t, sub), nil); got.ID != "git:"+want {
		t.Errorf("packed ref: %+v, want %s", got, want)
	}
	git(t, dir, "checkout", "-q", "--detach", "HEAD~1")
	want = git(t, dir, "rev-parse", "HEAD")
	if got := Of(sub, read(t, sub), nil); got.ID != "git:"+want {
		t.Errorf("detached: %+v, want %s", got, want)
	}
}

func TestContentHashOutsideGit(t *testing.T) {
	dir := t.TempDir()
	a := Of(dir, map[string][]byte{filepath.Join(dir, "x.yaml"): []byte("1")}, nil)
	b := Of(dir, map[string][]byte{filepath.Join(dir, "x.yaml"): []byte("2")}, nil)
	if !strings.HasPrefix(a.ID, "sha256:") || a.ID == b.ID {
		t.Errorf("content hashes %q %q", a.ID, b.ID)
	}
}

// TestRelate: a commit that descends from the applied one is forward; an
// ancestor is backward; an amend is a rewrite; an orphan history is
// unrelated; a commit the checkout never fetched is missing.
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
	git(t, dir, "commit", "-q", "--amend", "-m", "amended")
	amended := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "-q", "--orphan", "rewrite")
	other := commit("a: 3\n")
	for _, tc := range []struct {
		applied, head string
		want          Relation
	}{
		{one, two, Forward},
		{two, one, Backward},
		{two, other, Unrelated},
		{two, amended, Rewritten},
		{strings.Repeat("ab", 20), two, Missing},
	} {
		got, err := Relate(dir, tc.applied, tc.head)
		if err != nil || got != tc.want {
			t.Errorf("Relate(applied %.7s, head %.7s) = %v, %v; want %v", tc.applied, tc.head, got, err, tc.want)
		}
	}
}

// TestRevisionNamesWhatWasLoaded: the revision is the commit only when the
// loaded manifests are HEAD's; a staged edit, a removed file and an
// untracked file are dirty (the index said clean for the first two); a
// CRLF checkout with core.autocrlf, an index in version 4 and a manifest
// in a submodule at its recorded commit are clean; two dirty states have
// two names.
func TestRevisionNamesWhatWasLoaded(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	write := func(name, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "a: 1\n")
	write("b.yaml", "b: 1\n")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "one")
	head := git(t, dir, "rev-parse", "HEAD")
	clean := func(what string) {
		t.Helper()
		if got := Of(dir, read(t, dir), nil); got.ID != "git:"+head || got.Dirty {
			t.Errorf("%s: %+v, want the clean commit", what, got)
		}
	}
	dirty := func(what string, files ...string) string {
		t.Helper()
		got := Of(dir, read(t, dir), nil)
		if !got.Dirty || CommitOf(got.ID) != head || !slices.Equal(got.Uncommitted, files) {
			t.Errorf("%s: %+v, want dirty with %v", what, got, files)
		}
		return got.ID
	}
	clean("committed")

	write("a.yaml", "a: 2\n")
	git(t, dir, "add", "a.yaml") // staged, not committed
	first := dirty("a staged edit", "a.yaml")
	write("a.yaml", "a: 3\n")
	if second := dirty("another edit", "a.yaml"); second == first {
		t.Errorf("two different dirty states share the name %s", first)
	}
	git(t, dir, "checkout", "-q", "HEAD", "--", "a.yaml")

	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "rm", "-q", "--cached", "b.yaml") // removed, not committed
	dirty("a removed file", "b.yaml")
	git(t, dir, "checkout", "-q", "HEAD", "--", "b.yaml")
	clean("restored")

	git(t, dir, "update-index", "--index-version", "4")
	clean("index version 4")

	git(t, dir, "config", "core.autocrlf", "true")
	write("a.yaml", "a: 1\r\n") // what Git for Windows checks out
	clean("CRLF with core.autocrlf")
	git(t, dir, "config", "core.autocrlf", "false")
	write("a.yaml", "a: 1\n")

	write("new.yaml", "n: 1\n")
	dirty("an untracked file", "new.yaml")
	if err := os.Remove(filepath.Join(dir, "new.yaml")); err != nil {
		t.Fatal(err)
	}

	// A submodule holding manifests, at the commit the parent records.
	subRepo := t.TempDir()
	git(t, subRepo, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(subRepo, "s.yaml"), []byte("s: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, subRepo, "add", ".")
	git(t, subRepo, "commit", "-q", "-m", "sub")
	git(t, dir, "-c", "protocol.file.allow=always", "submodule", "-q", "add", subRepo, "shared")
	git(t, dir, "commit", "-q", "-m", "with submodule")
	head = git(t, dir, "rev-parse", "HEAD")
	clean("a submodule at its recorded commit")
	write("shared/s.yaml", "s: 2\n")
	dirty("an edit inside the submodule", "shared/s.yaml")
}
