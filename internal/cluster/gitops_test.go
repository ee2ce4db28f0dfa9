package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/node"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

func siteYAML(name string, id, port int, ip string) string {
	return fmt.Sprintf(`apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-%[1]s}
spec: {address: %[4]s/32}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-%[1]s}
spec: {mountPath: 'C:\ClusterStorage\%[1]s', source: {sharedDisk: {uniqueId: DISK-%[1]s}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: %[5]s}
spec:
  siteID: %[2]d
  physicalPath: 'C:\ClusterStorage\%[1]s\www'
  bindings: [{protocol: http, ipRef: vip-%[1]s, port: %[3]d}]
  placement: {nodes: [node1]}
`, name, id, port, ip, "site-"+name)
}

type gitEnv struct {
	t   *testing.T
	dir string
}

func (g gitEnv) run(args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = g.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_EDITOR=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (g gitEnv) write(rel, content string) {
	g.t.Helper()
	p := filepath.Join(g.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		g.t.Fatal(err)
	}
	// Editor-style atomic save: write a temporary file, rename it over.
	tmp := filepath.Join(filepath.Dir(p), ".~"+filepath.Base(p)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		g.t.Fatal(err)
	}
}

func served(url string) (string, bool) {
	c := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode == 200
}

var debugStore *etcdstore.Store

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			if debugStore != nil {
				ev, _, _ := debugStore.Events(context.Background())
				for _, e := range ev {
					t.Logf("%s %s %s %s", e.Reason, e.Object, e.Node, e.Message)
				}
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startGitOps(t *testing.T, dir string) *etcdstore.Store {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *etcdstore.Store, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = RunLocal(ctx, LocalOptions{DataDir: t.TempDir(), Nodes: []string{"node1"}, Fast: true, Log: logr.Discard(),
			Ready:  func(_ string, st *etcdstore.Store) error { ready <- st; return nil },
			Folder: &node.Folder{Name: "site", Dir: dir, Prune: true, Resync: 2 * time.Second, Debounce: 50 * time.Millisecond}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case st := <-ready:
		debugStore = st
		return st
	case <-time.After(30 * time.Second):
		t.Fatal("cluster did not start")
	}
	return nil
}

func source(t *testing.T, st *etcdstore.Store) store.Source {
	src, _, err := st.Source(context.Background(), "site")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestGitOpsChangeSets(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed for the GitOps tests; .ci/run installs it")
	}
	repo := t.TempDir()
	g := gitEnv{t, repo}
	g.run("init", "-q", "-b", "main")
	g.write("a.yaml", siteYAML("a", 2, 48080, "127.0.60.1"))
	g.run("add", ".")
	g.run("commit", "-qm", "one")
	st := startGitOps(t, repo)
	ctx := context.Background()
	head := func() string { return "git:" + g.run("rev-parse", "HEAD") }
	applied := func(what string) {
		t.Helper()
		want := head()
		eventually(t, what+" applied as "+want, func() bool { s := source(t, st); return s.Revision == want && s.LastAttempt.Error == "" })
	}
	applied("first commit")
	eventually(t, "site a served", func() bool { b, ok := served("http://127.0.60.1:48080/"); return ok && b == "Hello from site-a\n" })

	// commit
	g.write("a.yaml", siteYAML("a", 2, 48081, "127.0.60.1"))
	g.run("commit", "-qam", "port 48081")
	applied("commit")
	eventually(t, "site a on 48081", func() bool { _, ok := served("http://127.0.60.1:48081/"); return ok })

	// amend
	g.write("a.yaml", siteYAML("a", 2, 48082, "127.0.60.1"))
	g.run("commit", "-q", "--amend", "-am", "port 48082")
	applied("amend") // a rewrite of the tip: new content, applied
	amend := g.run("rev-parse", "HEAD")
	eventually(t, "site a on 48082", func() bool { _, ok := served("http://127.0.60.1:48082/"); return ok })

	// branch switch: a branch adds site b; back on main it is pruned
	g.run("checkout", "-q", "-b", "feature")
	g.write("b.yaml", siteYAML("b", 3, 48090, "127.0.60.2"))
	g.run("add", "b.yaml")
	g.run("commit", "-qm", "add b")
	applied("branch with b")
	eventually(t, "site b served", func() bool { _, ok := served("http://127.0.60.2:48090/"); return ok })
	// Back on main is back in time: refused, naming both commits, b stays.
	onBranch := head()
	g.run("checkout", "-q", "main")
	eventually(t, "going back to main refused", func() bool {
		s := source(t, st)
		return s.Revision == onBranch && s.LastAttempt.Revision == head() && strings.Contains(s.LastAttempt.Error, "older than the applied")
	})
	// Forward again: main takes the branch, then drops b in a new commit.
	g.run("merge", "-q", "--ff-only", "feature")
	g.run("rm", "-q", "b.yaml")
	g.run("commit", "-qm", "drop b")
	applied("b dropped on main")
	eventually(t, "site b pruned and gone", func() bool {
		_, ok := served("http://127.0.60.2:48090/")
		_, err := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "site-b"})
		return !ok && err != nil
	})

	// revert
	g.run("revert", "--no-edit", amend)
	applied("revert")
	// the amend replaced the 48081 commit, so reverting it goes back to 48080
	eventually(t, "site a back on 48080", func() bool { _, ok := served("http://127.0.60.1:48080/"); return ok })

	// a broken commit changes nothing; the fix applies
	g.write("a.yaml", siteYAML("a", 2, 48083, "127.0.60.1")+"bad: [\n")
	g.run("commit", "-qam", "broken")
	eventually(t, "broken commit refused", func() bool {
		s := source(t, st)
		return s.LastAttempt.Revision == head() && strings.Contains(s.LastAttempt.Error, "a.yaml:")
	})
	if _, ok := served("http://127.0.60.1:48080/"); !ok {
		t.Errorf("the last good revision stopped serving after a broken commit")
	}
	g.write("a.yaml", siteYAML("a", 2, 48083, "127.0.60.1"))
	g.run("commit", "-qam", "fixed")
	applied("fix")
	eventually(t, "site a on 48083", func() bool { _, ok := served("http://127.0.60.1:48083/"); return ok })

	// a file moved between subfolders: the objects are unchanged
	before, _ := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "site-a"})
	if err := os.MkdirAll(filepath.Join(repo, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	g.run("mv", "a.yaml", "sub/a.yaml")
	g.run("commit", "-qm", "move")
	applied("move")
	after, err := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "site-a"})
	if err != nil || after.Meta().UID != before.Meta().UID || after.Meta().Generation != before.Meta().Generation {
		t.Errorf("moving a file re-created or changed the object: before %+v after %+v (%v)", before.Meta(), after, err)
	}
	for _, e := range source(t, st).Inventory {
		if e.Outcome != "unchanged" || (e.Ref == "IISSite/site-a" && e.File != "sub/a.yaml") {
			t.Errorf("inventory after a move: %+v", e)
		}
	}

	// a rename with the same siteID: prune + create in the store, one IIS
	// rename on the node (the site keeps serving)
	g.write("sub/a.yaml", strings.Replace(siteYAML("a", 2, 48083, "127.0.60.1"), "name: site-a", "name: site-renamed", 1))
	g.run("commit", "-qam", "rename")
	applied("rename")
	eventually(t, "site-a removed from the store", func() bool {
		_, err := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "site-a"})
		return err != nil
	})
	// The node renames the site once the new group is placed, which may
	// come after the old name left the store (the site serves on meanwhile).
	var renames, deletes int
	eventually(t, "the rename step", func() bool {
		events, _, _ := st.Events(ctx)
		renames, deletes = 0, 0
		for _, e := range events {
			if e.Reason == "Step" && strings.Contains(e.Message, "rename IISSite/site-renamed from site-a") {
				renames++
			}
			if e.Reason == "Step" && strings.Contains(e.Message, "delete IISSite/site-a") {
				deletes++
			}
		}
		return renames > 0
	})
	if renames != 1 || deletes != 0 {
		t.Errorf("rename: %d rename steps and %d deletes, want 1 and 0", renames, deletes)
	}
	eventually(t, "renamed site served", func() bool { _, ok := served("http://127.0.60.1:48083/"); return ok })
}

// TestConfigMapSymlinkSwap: a folder kept fresh the Kubernetes way (files
// are symlinks through "..data", swapped atomically).
func TestConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mk := func(gen string, port int) {
		d := filepath.Join(dir, "..2026_"+gen)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "a.yaml"), []byte(siteYAML("c", 5, port, "127.0.60.5")), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink("..2026_"+gen, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mk("1", 48100)
	if err := os.Symlink("..data/a.yaml", filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	startGitOps(t, dir)
	eventually(t, "served from the first generation", func() bool { _, ok := served("http://127.0.60.5:48100/"); return ok })
	mk("2", 48101)
	eventually(t, "served from the swapped generation", func() bool { _, ok := served("http://127.0.60.5:48101/"); return ok })
}
