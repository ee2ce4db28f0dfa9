//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cluster is one `sitekeeper up` process.
type cluster struct {
	t        *testing.T
	dir      string
	endpoint string
	cmd      *exec.Cmd
	out      *syncBuffer
	web      chan string // the dashboard's URL, once printed
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const manifests = `apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-a}
spec: {address: 127.0.50.1/32}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-a}
spec: {driveLetter: E, source: {mirror: {volume: E}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: site-a}
spec:
  siteID: 2
  physicalPath: 'E:\a'
  bindings: [{protocol: http, ipRef: vip-a, port: 28080}]
  health: {interval: 500ms, timeout: 400ms, failureThreshold: 2}
  placement: {nodes: [node1, node2], switchback: Manual}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-b}
spec: {address: 127.0.50.2/32}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-b}
spec: {driveLetter: F, source: {mirror: {volume: F}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: site-b}
spec:
  siteID: 3
  physicalPath: 'F:\b'
  bindings: [{protocol: http, ipRef: vip-b, port: 28080}]
  health: {interval: 500ms, timeout: 400ms, failureThreshold: 2}
  placement: {nodes: [node1, node2], switchback: Automatic}
`

const urlA, urlB = "http://127.0.50.1:28080/", "http://127.0.50.2:28080/"

func startCluster(t *testing.T, dir string) *cluster {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "sites.yaml"), []byte(manifests), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return startUp(t, dir, filepath.Join(dir, "sites.yaml"))
}

// startUp runs up on manifests (a file, or a folder it watches), with
// extra flags.
func startUp(t *testing.T, dir, manifests string, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: dir, out: &syncBuffer{}, web: make(chan string, 1)}
	c.cmd = exec.Command(binary(t), append([]string{"up", "-f", manifests, "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--unsafe-fast-store"}, extra...)...)
	c.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop(syscall.SIGINT) })
	sc := bufio.NewScanner(stdout)
	found := make(chan string, 1)
	go func() {
		for sc.Scan() {
			line := sc.Text()
			c.out.Write([]byte(line + "\n"))
			if ep, ok := strings.CutPrefix(line, "sitekeeper up: store at "); ok {
				found <- strings.SplitN(ep, ",", 2)[0]
			}
			if url, ok := strings.CutPrefix(line, "sitekeeper up: dashboard at "); ok {
				c.web <- strings.Fields(url)[0]
			}
		}
	}()
	select {
	case c.endpoint = <-found:
	case <-time.After(20 * time.Second):
		t.Fatalf("up did not print its endpoint:\n%s", c.out.String())
	}
	return c
}

func (c *cluster) stop(sig syscall.Signal) {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// dashboard is the URL up printed for its dashboard.
func (c *cluster) dashboard() string {
	c.t.Helper()
	select {
	case url := <-c.web:
		c.web <- url
		return url
	case <-time.After(20 * time.Second):
		c.t.Fatalf("up did not print its dashboard's address:\n%s", c.out.String())
		return ""
	}
}

// sk runs a sitekeeper command against the cluster.
func (c *cluster) sk(args ...string) (int, string) {
	c.t.Helper()
	cmd := exec.Command(binary(c.t), args...)
	cmd.Env = append(os.Environ(), "SITEKEEPER_ENDPOINTS="+c.endpoint)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run %v: %v", args, err)
	}
	return code, string(out)
}

func (c *cluster) must(args ...string) string {
	c.t.Helper()
	code, out := c.sk(args...)
	if code != 0 {
		c.t.Fatalf("sitekeeper %v: exit %d\n%s\n--- up log:\n%s", args, code, out, c.out.String())
	}
	return out
}

type group struct {
	Name, Active, Moving, Reason string
}

func (c *cluster) groups() map[string]group {
	c.t.Helper()
	var gs struct {
		Kind  string
		Items []group
	}
	if err := json.Unmarshal([]byte(c.must("get", "groups", "-o", "json")), &gs); err != nil || gs.Kind != "GroupList" {
		c.t.Fatalf("get groups -o json: kind %q, %v", gs.Kind, err)
	}
	m := map[string]group{}
	for _, g := range gs.Items {
		m[g.Name] = g
	}
	return m
}

func (c *cluster) eventually(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			_, ev := c.sk("events")
			c.t.Fatalf("timed out after %s waiting for %s\n--- events:\n%s\n--- up log:\n%s", timeout, what, ev, c.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func fetch(url string) (string, string, error) {
	cl := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return string(b), resp.Header.Get("X-Sitekeeper-Node"), nil
}

func (c *cluster) servedBy(url, node string) bool {
	_, n, err := fetch(url)
	return err == nil && n == node
}

func (c *cluster) ready() {
	c.eventually("every site Ready and answering", 20*time.Second, func() bool {
		out := c.must("get", "sites")
		return strings.Count(out, " True ") == 2 && c.servedBy(urlA, "node1") && c.servedBy(urlB, "node1")
	})
}

// poller fetches url every 50 ms and records the longest gap without an
// answer.
type poller struct {
	mu      sync.Mutex
	maxGap  time.Duration
	lastOK  time.Time
	stop    chan struct{}
	stopped chan struct{}
}

func poll(url string) *poller {
	p := &poller{lastOK: time.Now(), stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				if _, _, err := fetch(url); err == nil {
					p.mu.Lock()
					if gap := time.Since(p.lastOK); gap > p.maxGap {
						p.maxGap = gap
					}
					p.lastOK = time.Now()
					p.mu.Unlock()
				}
			}
		}
	}()
	return p
}

func (p *poller) done() time.Duration {
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxGap
}

func TestApplyFailoverSwitchback(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	body, _, _ := fetch(urlA)
	if body != "Hello from site-a\n" {
		t.Errorf("site-a serves %q", body)
	}

	p := poll(urlA)
	c.must("sim", "fail-node", "node1")
	c.eventually("site-a served by node2", 5*time.Second, func() bool { return c.servedBy(urlA, "node2") })
	time.Sleep(300 * time.Millisecond)
	gap := p.done()
	t.Logf("longest gap seen by a client polling every 50 ms: %s", gap)
	if limit := 2*time.Second + time.Second; gap > limit {
		t.Errorf("failover gap %s, want at most lease TTL + 1 s = %s", gap, limit)
	}
	if !c.servedBy(urlB, "node2") {
		t.Errorf("site-b not failed over to node2")
	}

	c.must("sim", "heal-node", "node1")
	c.eventually("automatic switchback of site-b to node1", 10*time.Second, func() bool { return c.servedBy(urlB, "node1") })
	time.Sleep(time.Second)
	if g := c.groups()["site-a"]; g.Active != "node2" {
		t.Errorf("manual switchback group moved by itself to %q", g.Active)
	}
	if out := c.must("switchover", "iissite", "site-a", "--to", "node1", "--wait", "--timeout", "30s"); !strings.Contains(out, "group site-a: switchover to node1 requested") || !strings.HasSuffix(strings.TrimSpace(out), "group site-a: serving from node1") || strings.Contains(out, "\x1b") {
		t.Errorf("switchover --wait does not print its stages as plain lines:\n%s", out)
	}
	if !c.servedBy(urlA, "node1") {
		t.Errorf("site-a not served by node1 after switchover")
	}
	ev := c.must("events")
	for _, want := range []string{"FailedOver", "SwitchedBack", "SwitchedOver"} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %s:\n%s", want, ev)
		}
	}
	desc := c.must("describe", "site", "site-a")
	for _, want := range []string{"Group:        site-a", "Ready", "Degraded", "SwitchedOver"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}

	// activeNode is a request only when asked: after another failover, a
	// change of an unrelated field (with activeNode node1 written in the
	// manifest) leaves the Manual group where it is; a switchover to the
	// node activeNode already names moves it.
	failAway := func() {
		c.must("sim", "fail-node", "node1")
		c.eventually("site-a served by node2", 10*time.Second, func() bool { return c.servedBy(urlA, "node2") })
		c.must("sim", "heal-node", "node1")
		c.eventually("node1 back", 10*time.Second, func() bool { return strings.Count(c.must("get", "nodes"), " Ready ") == 2 })
	}
	failAway()
	changed := strings.Replace(manifests, "health: {interval: 500ms, timeout: 400ms, failureThreshold: 2}\n  placement: {nodes: [node1, node2], switchback: Manual}",
		"health: {interval: 500ms, timeout: 300ms, failureThreshold: 2}\n  placement: {nodes: [node1, node2], switchback: Manual, activeNode: node1}", 1)
	if changed == manifests {
		t.Fatal("the manifest edit did not apply")
	}
	f := filepath.Join(t.TempDir(), "changed.yaml")
	if err := os.WriteFile(f, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	c.must("apply", "-f", f, "--force-conflicts")
	time.Sleep(2 * time.Second)
	if g := c.groups()["site-a"]; g.Active != "node2" {
		t.Errorf("an unrelated change moved the Manual group to %q (activeNode node1 was already honoured)", g.Active)
	}
	c.must("switchover", "iissite", "site-a", "--to", "node1", "--wait", "--timeout", "30s")
	if !c.servedBy(urlA, "node1") {
		t.Errorf("a switchover to the node activeNode already names did not move the group")
	}
}

func TestStopSiteIsRestartedInPlace(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	c.must("sim", "stop-site", "node1", "site-a")
	c.eventually("site-a answering again", 5*time.Second, func() bool { return c.servedBy(urlA, "node1") })
	if g := c.groups()["site-a"]; g.Active != "node1" || strings.HasPrefix(g.Reason, "FailedOver") {
		t.Errorf("a stopped site caused a failover: %+v", g)
	}
	// Whichever notices first repairs it: the health check (a local
	// restart) or the reconcile (drift repair); both say so.
	if ev := c.must("events"); !strings.Contains(ev, "site stopped outside sitekeeper") && !strings.Contains(ev, "LocalRestart") {
		t.Errorf("events do not name the repair:\n%s", ev)
	}
}

func TestConcurrentAppliesAndDelete(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	dir := t.TempDir()
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, change := range []string{"port: 28081", "port: 28082"} {
		f := filepath.Join(dir, fmt.Sprintf("v%d.yaml", i))
		if err := os.WriteFile(f, []byte(strings.Replace(manifests, "port: 28080}]\n  health: {interval: 500ms, timeout: 400ms, failureThreshold: 2}\n  placement: {nodes: [node1, node2], switchback: Manual}", change+"}]\n  health: {interval: 500ms, timeout: 400ms, failureThreshold: 2}\n  placement: {nodes: [node1, node2], switchback: Manual}", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(i int) { defer wg.Done(); codes[i], _ = c.sk("apply", "-f", f) }(i)
	}
	wg.Wait()
	succeeded := 0
	for _, code := range codes {
		if code == 0 {
			succeeded++
		}
	}
	var site struct {
		Metadata struct{ Generation int64 }
	}
	if err := json.Unmarshal([]byte(c.must("get", "site", "site-a", "-o", "json")), &site); err != nil {
		t.Fatal(err)
	}
	if site.Metadata.Generation != int64(1+succeeded) {
		t.Errorf("generation %d after %d successful concurrent applies: an apply was lost silently", site.Metadata.Generation, succeeded)
	}

	c.must("delete", "-f", filepath.Join(c.dir, "sites.yaml"), "--wait")
	c.eventually("nothing held on any node", 10*time.Second, func() bool {
		var nodes struct {
			Items []struct {
				Name     string `json:"name"`
				Observed *struct {
					Sites     []any `json:"sites"`
					Addresses []any `json:"addresses"`
					Volumes   []struct {
						Online bool `json:"online"`
					} `json:"volumes"`
				} `json:"observed"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(c.must("get", "nodes", "-o", "json")), &nodes); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			if o := n.Observed; o != nil {
				if len(o.Sites) > 0 || len(o.Addresses) > 0 {
					return false
				}
				for _, v := range o.Volumes {
					if v.Online {
						return false
					}
				}
			}
		}
		return len(nodes.Items) > 0
	})
	if _, _, err := fetch(urlA); err == nil {
		t.Errorf("site-a still answers after delete")
	}
}

func TestRestartResumesWithoutRestarting(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	// kill -9: no clean shutdown. The simulated machines' state is on disk
	// (their sockets die with the process that simulates them).
	c.stop(syscall.SIGKILL)
	c2 := startCluster(t, c.dir)
	c2.ready()
	time.Sleep(2 * time.Second)
	var list struct {
		Kind  string
		Items []struct{ Reason, Message string }
	}
	if err := json.Unmarshal([]byte(c2.must("events", "-o", "json")), &list); err != nil || list.Kind != "EventList" {
		t.Fatalf("events -o json: kind %q, %v", list.Kind, err)
	}
	events := list.Items
	steps := 0
	for _, e := range events {
		if e.Reason == "Step" {
			steps++
		}
	}
	// The first run took 2 groups x (online, add, create, start) + 2 standby
	// creates = 10 steps; a restart that found everything right adds none.
	if steps != 10 {
		t.Errorf("%d steps recorded across both runs, want the 10 of the first run only", steps)
	}
	if g := c2.groups(); g["site-a"].Active != "node1" || g["site-b"].Active != "node1" {
		t.Errorf("placement changed across a restart: %+v", g)
	}
}

// TestDrainAndUncordon: drain moves every group off node1 and leaves it
// suspended; uncordon lets it take groups again (switchback: Automatic
// returns site-b to it; site-a, Manual, stays).
func TestDrainAndUncordon(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	out := c.must("drain", "node1", "--parallel", "2", "--timeout", "30s")
	for _, want := range []string{"draining 2 group(s), 2 at a time", "group site-a: serving from node2", "group site-b: serving from node2", "drained and suspended for maintenance"} {
		if !strings.Contains(out, want) {
			t.Fatalf("drain output lacks %q:\n%s", want, out)
		}
	}
	if !c.servedBy(urlA, "node2") || !c.servedBy(urlB, "node2") {
		t.Fatal("after the drain the sites are not served by node2")
	}
	if nodes := c.must("get", "nodes"); !strings.Contains(nodes, "Ready,Draining") {
		t.Fatalf("get nodes does not show node1 draining:\n%s", nodes)
	}
	c.must("uncordon", "node1")
	c.eventually("site-b back on node1 (switchback: Automatic)", 20*time.Second, func() bool { return c.servedBy(urlB, "node1") })
	time.Sleep(time.Second)
	if !c.servedBy(urlA, "node2") {
		t.Fatal("site-a (switchback: Manual) moved back after uncordon")
	}
	if ev := c.must("events"); !strings.Contains(ev, "Drained") || !strings.Contains(ev, "Uncordoned") {
		t.Fatalf("events lack the drain:\n%s", ev)
	}
}
