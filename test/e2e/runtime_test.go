//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess starts sitekeeper with args, its output into out, and
// stops it (SIGTERM) when the test ends.
func startProcess(t *testing.T, out *syncBuffer, args ...string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
}

// TestWitnessAndTwoAgentsOnLoopback runs the README's real cluster on one
// machine: a witness and two `agent --backend sim` processes, each with its
// etcd member. Whichever process started a node, it publishes what it has:
// `get nodes` shows the active node's started sites and held addresses, and
// `plan` (no -f) lists each node it planned for.
func TestWitnessAndTwoAgentsOnLoopback(t *testing.T) {
	base := t.TempDir()
	names := []string{"node1", "node2", "witness"}
	peer, client := map[string]string{}, map[string]string{}
	var ic, eps []string
	for _, n := range names {
		peer[n] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		client[n] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		ic = append(ic, n+"="+peer[n])
		eps = append(eps, strings.TrimPrefix(client[n], "http://"))
	}
	out := &syncBuffer{}
	c := &cluster{t: t, endpoint: strings.Join(eps, ","), out: out}
	start := func(args ...string) { startProcess(t, out, args...) }
	member := func(n string) []string {
		// A lab: plaintext members, allowed by --insecure-plaintext only.
		return []string{"--peer-url", peer[n], "--client-url", client[n], "--initial-cluster", strings.Join(ic, ","), "--data-dir", filepath.Join(base, n), "--insecure-plaintext"}
	}
	start(append([]string{"witness", "--etcd-name", "witness"}, member("witness")...)...)
	for _, n := range []string{"node1", "node2"} {
		start(append([]string{"agent", "--http-listen", "127.0.0.1:0", "--node", n, "--backend", "sim", "--etcd-member"}, member(n)...)...)
	}
	c.eventually("both agents registered", 30*time.Second, func() bool {
		code, o := c.sk("get", "nodes")
		return code == 0 && strings.Count(o, " Ready ") == 2
	})
	f := filepath.Join(base, "sites.yaml")
	if err := os.WriteFile(f, []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	c.must("apply", "-f", f)
	c.eventually("both sites served by node1", 30*time.Second, func() bool {
		return c.servedBy(urlA, "node1") && c.servedBy(urlB, "node1")
	})
	c.eventually("get nodes shows what node1 holds", 10*time.Second, func() bool {
		o := c.must("get", "nodes")
		for _, l := range strings.Split(o, "\n") {
			if strings.HasPrefix(l, "node1 ") {
				return strings.Contains(l, "site-a,site-b") && strings.Contains(l, "127.0.50.1") && strings.Contains(l, "127.0.50.2")
			}
		}
		return false
	})
	c.eventually("plan lists every node, converged", 10*time.Second, func() bool {
		code, o := c.sk("plan")
		return code == 0 && strings.Contains(o, "node1: converged") && strings.Contains(o, "node2: converged")
	})
	// Every read command takes the same -o formats.
	var plans struct {
		Kind  string `json:"kind"`
		Items []struct {
			Node  string `json:"node"`
			Steps []any  `json:"steps"`
		} `json:"items"`
	}
	if out := c.must("plan", "-o", "json"); json.Unmarshal([]byte(out), &plans) != nil || plans.Kind != "NodePlanList" || len(plans.Items) != 2 {
		t.Errorf("plan -o json: want a NodePlanList of two nodes:\n%s", out)
	}
	if out := c.must("plan", "-o", "wide"); !strings.Contains(out, "NODE") || !strings.Contains(out, "converged") {
		t.Errorf("plan -o wide:\n%s", out)
	}
	var desc struct {
		Kind   string `json:"kind"`
		Object struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"object"`
		Group  struct{ Active string }   `json:"group"`
		Events []struct{ Reason string } `json:"events"`
	}
	if out := c.must("describe", "site", "site-a", "-o", "json"); json.Unmarshal([]byte(out), &desc) != nil || desc.Kind != "Description" ||
		desc.Object.Metadata.Name != "site-a" || desc.Group.Active != "node1" || len(desc.Events) == 0 {
		t.Errorf("describe site site-a -o json: want a Description of site-a, active on node1, with events:\n%s", out)
	}
	if out := c.must("describe", "group", "site-a", "-o", "json"); !strings.Contains(out, `"active": "node1"`) {
		t.Errorf("describe group site-a -o json:\n%s", out)
	}
	if code, out := c.sk("describe", "site", "site-a", "-o", "xml"); code != 2 || !strings.Contains(out, "table, wide, yaml or json") {
		t.Errorf("describe -o xml: exit %d\n%s", code, out)
	}
}
