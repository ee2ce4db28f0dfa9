//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

const agentSite = `apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-g}
spec: {address: 127.0.70.1/32}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-g}
spec: {driveLetter: G, source: {mirror: {volume: G}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: site-g}
spec:
  siteID: 7
  physicalPath: 'G:\g'
  bindings: [{protocol: http, ipRef: vip-g, port: PORT}]
  placement: {nodes: [node1, node2]}
`

// TestAgentsShareOneSource: two agent processes, each watching its own
// checkout of one source at different contents. Only the leader applies;
// the other's differing checkout is named in `get sources`; when the leader
// stops, the other leads and applies its checkout.
func TestAgentsShareOneSource(t *testing.T) {
	srv, err := etcdstore.StartServer(context.Background(), etcdstore.ServerOptions{DataDir: t.TempDir(), Fast: true, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close) // after the agents' cleanups
	c := &cluster{t: t, endpoint: srv.Endpoint, out: &syncBuffer{}}
	base := t.TempDir()
	start := func(node, port string) *exec.Cmd {
		dir := filepath.Join(base, node, "manifests")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "site.yaml"), []byte(strings.Replace(agentSite, "PORT", port, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		// The site's content on this node's (simulated) mirror of G:.
		content := filepath.Join(base, node, "data", "sim", "volumes", "Mirror_G", "g")
		if err := os.MkdirAll(content, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(content, "index.html"), []byte("hello\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary(t), "agent", "--http-listen", "127.0.0.1:0", "--node", node, "--endpoints", srv.Endpoint, "--manifests", dir, "--source-name", "shop", "--data-dir", filepath.Join(base, node, "data"))
		cmd.Stdout, cmd.Stderr = c.out, c.out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
		return cmd
	}
	a1 := start("node1", "28201")
	time.Sleep(500 * time.Millisecond) // node1 campaigns first
	start("node2", "28202")
	c.eventually("node1's checkout applied and served", 20*time.Second, func() bool {
		_, n, err := fetch("http://127.0.70.1:28201/")
		return err == nil && n == "node1"
	})
	c.eventually("node2's differing checkout reported", 10*time.Second, func() bool {
		return strings.Contains(c.must("get", "sources"), "checkout differs: node2 has")
	})
	if _, _, err := fetch("http://127.0.70.1:28202/"); err == nil {
		t.Errorf("a non-leader applied its checkout")
	}

	// The leader stops cleanly: node2 leads, applies its checkout, and serves.
	_ = a1.Process.Signal(syscall.SIGTERM)
	_ = a1.Wait()
	c.eventually("node2's checkout applied and served by node2", 20*time.Second, func() bool {
		_, n, err := fetch("http://127.0.70.1:28202/")
		return err == nil && n == "node2"
	})

	// CLI and git together: a CLI apply of a folder-owned object is refused
	// unless forced.
	f := filepath.Join(base, "cli.yaml")
	if err := os.WriteFile(f, []byte(strings.Replace(agentSite, "PORT", "28203", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := c.sk("apply", "-f", f); code != 1 || !strings.Contains(out, `managed by source "shop"`) {
		t.Errorf("apply of a folder-owned object: exit %d\n%s", code, out)
	}
	if code, out := c.sk("apply", "-f", f, "--force-conflicts"); code != 0 {
		t.Errorf("apply --force-conflicts: exit %d\n%s", code, out)
	}
	if code, out := c.sk("switchover", "site", "site-g", "--to", "node1"); code != 1 || !strings.Contains(out, "set spec.placement.activeNode: node1") {
		t.Errorf("switchover of a folder-owned group: exit %d\n%s", code, out)
	}
}
