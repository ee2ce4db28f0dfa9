//go:build e2e

package e2e

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNamesThatDoNotExist: every command that names an object or a node
// says "not found" (with the closest name) for one that does not exist,
// names match case-insensitively as IIS's do, and an unknown subcommand
// is a usage error.
func TestNamesThatDoNotExist(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"suspend", "site", "nosuch"}, 1, `IISSite "nosuch": not found`},
		{[]string{"resume", "site", "nosuch"}, 1, `IISSite "nosuch": not found`},
		{[]string{"clear-failures", "site", "site-c"}, 1, `not found (did you mean "site-a"?)`},
		{[]string{"switchover", "site", "nosuch", "--to", "node2"}, 1, "not found"},
		{[]string{"describe", "site", "sit-a"}, 1, `did you mean "site-a"?`},
		{[]string{"delete", "site", "nosuch"}, 1, "not found"},
		{[]string{"delete", "site", "nosuch", "--ignore-not-found"}, 0, ""},
		{[]string{"sim", "fail-node", "node9"}, 1, `node "node9": not found`},
		{[]string{"suspend", "--node", "node9"}, 1, `node "node9": not found`},
		{[]string{"suspend", "site", "SITE-A"}, 0, "iissite/site-a suspended"},
		{[]string{"resume", "site", "Site-A"}, 0, "iissite/site-a resumed"},
		{[]string{"sim", "no-such-fault"}, 2, `unknown subcommand "no-such-fault"`},
		{[]string{"member", "lst"}, 2, `did you mean "list"?`},
	}
	for _, tt := range tests {
		code, out := c.sk(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", tt.args, code, tt.code, tt.want, out)
		}
	}
}

// TestDeadNodeShownStale: a node whose lease expired is shown NotReady,
// its health Unknown and what it last reported as last known, never as if
// it still held the address that node2 holds now.
func TestDeadNodeShownStale(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	c.must("sim", "fail-node", "node1")
	c.eventually("site-a served by node2", 10*time.Second, func() bool { return c.servedBy(urlA, "node2") })
	var row string
	c.eventually("node1 NotReady in get nodes", 10*time.Second, func() bool {
		for _, l := range strings.Split(c.must("get", "nodes"), "\n") {
			if strings.HasPrefix(l, "node1 ") {
				row = l
			}
		}
		return strings.Contains(row, "NotReady")
	})
	if !strings.Contains(row, "Unknown") || strings.Contains(row, "Healthy") {
		t.Errorf("a dead node's health: %q, want Unknown", row)
	}
	if strings.Contains(row, "127.0.50.1/32") && !strings.Contains(row, "last known:") {
		t.Errorf("a dead node shown holding node2's address as if now: %q", row)
	}
	if out := c.must("get", "nodes", "node1", "-o", "json"); !strings.Contains(out, `"observedStale": true`) {
		t.Errorf("get nodes -o json does not mark node1's report stale:\n%s", out)
	}
}

// TestSiteThatCannotStartSaysSo: another process holds site-a's port on
// node1: get sites shows READY False StepFailed with the error, describe
// shows Degraded True, get nodes does not call node1 Healthy, and the
// failure is counted, not recorded at every retry.
func TestSiteThatCannotStartSaysSo(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.50.1:28080")
	if err != nil {
		t.Skipf("cannot hold site-a's port for the test: %v", err)
	}
	defer l.Close()
	c := startCluster(t, "")
	var sites string
	c.eventually("site-a StepFailed in get sites", 20*time.Second, func() bool {
		sites = c.must("get", "sites")
		for _, line := range strings.Split(sites, "\n") {
			if strings.HasPrefix(line, "site-a ") {
				return strings.Contains(line, "StepFailed")
			}
		}
		return false
	})
	if strings.Contains(sites, "Applying") && strings.Contains(sites, "site-a") && !strings.Contains(sites, "StepFailed") {
		t.Errorf("get sites:\n%s", sites)
	}
	if d := c.must("describe", "site", "site-a"); !regexp.MustCompile(`Degraded\s+True\s+StepFailed`).MatchString(d) {
		t.Errorf("describe does not show Degraded True StepFailed:\n%s", d)
	}
	c.eventually("node1 StepFailed in get nodes", 10*time.Second, func() bool {
		return strings.Contains(c.must("get", "nodes"), "StepFailed: site-a")
	})
	time.Sleep(3 * time.Second) // several retries
	n := strings.Count(c.must("events"), "StepFailed")
	if n > 6 {
		t.Errorf("%d StepFailed events in a few seconds of retries: they should be counted, not repeated", n)
	}
}

// TestDiffComparesWhatTheUserWrote: diff of the manifests up applied is
// empty (the owner annotation, server metadata, status and defaults are
// not differences); a changed port is one.
func TestDiffComparesWhatTheUserWrote(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	f := filepath.Join(c.dir, "sites.yaml")
	if code, out := c.sk("diff", "-f", f); code != 0 || out != "" {
		t.Fatalf("diff of what up applied: exit %d\n%s", code, out)
	}
	changed := filepath.Join(t.TempDir(), "changed.yaml")
	if err := os.WriteFile(changed, []byte(strings.Replace(manifests, "port: 28080", "port: 28081", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := c.sk("diff", "-f", changed); code != 1 || !strings.Contains(out, "+    port: 28081") || strings.Contains(out, "sitekeeper.io/source") {
		t.Errorf("diff of a changed port: exit %d\n%s", code, out)
	}
}

// TestUpLeavesTheEndpointFileAsItWas: up records its endpoint for the
// other commands while it runs, says when it stops, and then removes the
// record, so a later command does not talk to a store that is gone.
func TestUpLeavesTheEndpointFileAsItWas(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	f := filepath.Join(c.dir, "config", "sitekeeper", "endpoint")
	if b, err := os.ReadFile(f); err != nil || !strings.Contains(string(b), c.endpoint) {
		t.Fatalf("endpoint file while up runs: %q, %v", b, err)
	}
	c.stop(syscall.SIGINT)
	if _, err := os.Stat(f); !os.IsNotExist(err) {
		t.Errorf("the endpoint file outlived up: %v", err)
	}
	if !strings.Contains(c.out.String(), "sitekeeper up: stopped") {
		t.Errorf("up did not say it stopped:\n%s", tail(c.out.String(), 2000))
	}
	out, _ := exec.Command(binary(t), "get", "sites", "--endpoints", c.endpoint).CombinedOutput()
	if !strings.Contains(string(out), "the endpoint is from --endpoints") {
		t.Errorf("a store that does not answer: the error does not say where the endpoint came from:\n%s", out)
	}
}

// TestEventsFilters: events narrows to an object, a node, a type and a
// time window.
func TestEventsFilters(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	c.must("sim", "fail-node", "node1")
	c.eventually("a FailedOver event", 10*time.Second, func() bool { return strings.Contains(c.must("events"), "FailedOver") })
	for _, line := range strings.Split(strings.TrimSpace(c.must("events", "--type", "Warning")), "\n")[1:] {
		if !strings.Contains(line, "Warning") {
			t.Errorf("--type Warning printed %q", line)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(c.must("events", "--object", "site-a", "--node", "node2")), "\n")[1:] {
		if !strings.Contains(line, "site-a") || !strings.Contains(line, "node2") {
			t.Errorf("--object site-a --node node2 printed %q", line)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	if out := c.must("events", "--since", "1s"); strings.Contains(out, "Placed") {
		t.Errorf("--since 1s printed the first placements:\n%s", out)
	}
}

// TestGroupAndNodeKinds: group names a resource group wherever an object
// may (switchover, suspend, describe, clear-failures), as WSFC's
// Move-ClusterGroup; node works with describe.
func TestGroupAndNodeKinds(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	if out := c.must("describe", "group", "SITE-A"); !strings.Contains(out, "name: site-a") {
		t.Errorf("describe group:\n%s", out)
	}
	if out := c.must("describe", "node", "node1"); !strings.Contains(out, "name: node1") || !strings.Contains(out, "status: Ready") {
		t.Errorf("describe node:\n%s", out)
	}
	if code, out := c.sk("describe", "group", "site-x"); code != 1 || !strings.Contains(out, `group "site-x": not found (did you mean "site-a"?)`) {
		t.Errorf("describe of a missing group: exit %d\n%s", code, out)
	}
	c.must("suspend", "group", "site-b")
	if out := c.must("get", "groups", "site-b", "-o", "json"); !strings.Contains(out, `"suspended": true`) {
		t.Errorf("suspend group did not suspend it:\n%s", out)
	}
	c.must("resume", "group", "site-b")
	if out := c.must("switchover", "group", "site-a", "--to", "node2", "--wait", "--timeout", "20s"); !strings.Contains(out, "serving from node2") {
		t.Errorf("switchover group:\n%s", out)
	}
	c.must("clear-failures", "group", "site-a")
}

// TestGetWatchPrintsChanges: `get groups -w` prints the groups, then again
// when one is suspended, until interrupted.
func TestGetWatchPrintsChanges(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	cmd := exec.Command(binary(t), "get", "groups", "-w")
	cmd.Env = append(os.Environ(), "SITEKEEPER_ENDPOINTS="+c.endpoint)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// waitFor reads lines until one satisfies ok.
	waitFor := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case l, open := <-lines:
				if !open {
					t.Fatalf("get -w ended before %s", what)
				}
				if ok(l) {
					return
				}
			case <-deadline:
				t.Fatalf("get -w did not print %s within 15 s", what)
			}
		}
	}
	waitFor("the first table", func(l string) bool { return strings.HasPrefix(l, "site-a ") })
	c.must("suspend", "iissite", "site-a")
	waitFor("site-a suspended", func(l string) bool { return strings.HasPrefix(l, "site-a ") && strings.Contains(l, "uspended") })
}
