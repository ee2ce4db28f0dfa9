//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// TestGitSourceCommands: `source add` of a bare repository makes the
// cluster serve its commit; a pushed commit is applied by itself; a
// force-push to an older commit is refused (list, get sources, reconcile
// all say so) until `reconcile --allow-rollback`; suspend, resume and
// delete do what they say, and the objects stay after delete.
func TestGitSourceCommands(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	root := t.TempDir()
	bare, work := filepath.Join(root, "sites.git"), filepath.Join(root, "work")
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git(root, "init", "-q", "--bare", "-b", "main", bare)
	git(root, "init", "-q", "-b", "main", work)
	git(work, "remote", "add", "origin", bare)
	push := func(port int32) string {
		t.Helper()
		m := testmanifests.GroupAt(10, "127.0.51.1", testmanifests.Options{Port: port, Nodes: []string{"node1", "node2"}})
		if err := os.MkdirAll(filepath.Join(work, "prod"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "prod", "g10.yaml"), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
		git(work, "add", "-A")
		git(work, "commit", "-q", "-m", "port")
		git(work, "push", "-q", "-f", "origin", "HEAD:main")
		return git(work, "rev-parse", "HEAD")
	}
	first := push(28090)
	c.must("source", "add", "gs", "--url", "file://"+bare, "--path", "prod", "--interval", "1s")
	if out := c.must("source", "reconcile", "gs"); !strings.Contains(out, "git:"+first+" applied") {
		t.Fatalf("reconcile: %s", out)
	}
	c.eventually("the git source's site serves", 20*time.Second, func() bool { _, _, err := fetch("http://127.0.51.1:28090/"); return err == nil })

	second := push(28091)
	c.eventually("the pushed commit is applied by itself", 20*time.Second, func() bool { _, _, err := fetch("http://127.0.51.1:28091/"); return err == nil })

	git(work, "reset", "-q", "--hard", first)
	git(work, "push", "-q", "-f", "origin", "HEAD:main")
	c.eventually("the force-push back is refused", 10*time.Second, func() bool {
		return strings.Contains(c.must("source", "list"), "refused: commit "+first[:12]+" is older than the applied "+second[:12])
	})
	if out := c.must("get", "sources", "gs"); !strings.Contains(out, "Refused") {
		t.Errorf("get sources after the refusal:\n%s", out)
	}
	if code, out := c.sk("source", "reconcile", "gs"); code != 1 || !strings.Contains(out, "--allow-rollback") {
		t.Errorf("reconcile of the older commit: exit %d\n%s", code, out)
	}
	if _, _, err := fetch("http://127.0.51.1:28091/"); err != nil {
		t.Errorf("the applied commit's site stopped serving after the refusal: %v", err)
	}
	c.must("source", "reconcile", "gs", "--allow-rollback")
	c.eventually("the rollback asked for is applied", 20*time.Second, func() bool { _, _, err := fetch("http://127.0.51.1:28090/"); return err == nil })

	c.must("source", "suspend", "gs")
	if out := c.must("source", "list", "-o", "json"); !strings.Contains(out, `"suspend": true`) {
		t.Errorf("source list after suspend:\n%s", out)
	}
	if code, out := c.sk("source", "reconcile", "gs"); code != 1 || !strings.Contains(out, "suspended") {
		t.Errorf("reconcile of a suspended source: exit %d\n%s", code, out)
	}
	c.must("source", "resume", "gs")
	c.must("source", "delete", "gs")
	if out := c.must("get", "sites"); !strings.Contains(out, "site-10") {
		t.Errorf("the source's site went with the source:\n%s", out)
	}
	if code, _ := c.sk("source", "delete", "gs"); code == 0 {
		t.Error("a second delete of the source worked")
	}

	// A GitSource manifest is applied like the others, and takes the
	// objects its name owns back.
	manifest := filepath.Join(root, "gs.yaml")
	doc := "apiVersion: sitekeeper.io/v1alpha1\nkind: GitSource\nmetadata: {name: gs}\nspec:\n  url: file://" + bare + "\n  path: prod\n  interval: 1s\n"
	if err := os.WriteFile(manifest, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := c.must("apply", "-f", manifest); !strings.Contains(out, "gitsource/gs created") {
		t.Fatalf("apply of a GitSource: %s", out)
	}
	if out := c.must("apply", "-f", manifest); !strings.Contains(out, "gitsource/gs configured") {
		t.Fatalf("second apply of a GitSource: %s", out)
	}
	c.eventually("the applied GitSource is fetched", 20*time.Second, func() bool {
		return strings.Contains(c.must("source", "list"), "applied git:"+first)
	})
	if code, out := c.sk("apply", "-f", strings.Replace(manifest, "gs.yaml", "nosuch.yaml", 1)); code == 0 {
		t.Errorf("apply of a missing file: %s", out)
	}
}
