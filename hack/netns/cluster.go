//go:build linux

package netns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SiteManifests is one site on the VIP, placed node1 then node2; the fault
// sequences fail each node more often than placement.maxFailures allows by
// default (3 an hour), by design, so it allows 20.
const SiteManifests = `apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-web}
spec: {address: ` + VIP + `/24, interface: eth0}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-web}
spec: {driveLetter: E, source: {mirror: {volume: E}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: web}
spec:
  siteID: 7
  physicalPath: 'E:\sites\web'
  bindings: [{protocol: http, ipRef: vip-web, port: 80}]
  health: {interval: 1s, timeout: 500ms, failureThreshold: 2}
  placement: {nodes: [node1, node2], maxFailures: 20}
`

// ExtraPrefix starts the addresses of the extra groups: group i holds
// 10.77.1.(i+1)/32 on eth0, beside the lab's own /24.
const ExtraPrefix = "10.77.1."

// ExtraGroups is n more groups (an address, a shared disk and a site each, health every
// 5 s), placed alternately node1 then node2 and the reverse: the load that
// the fault runs repeat their faults under.
func ExtraGroups(n int) string {
	var b strings.Builder
	for i := range n {
		nodes := "node1, node2"
		if i%2 == 1 {
			nodes = "node2, node1"
		}
		fmt.Fprintf(&b, `---
apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-load-%[1]d}
spec: {address: %[2]s%[3]d/32, interface: eth0}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-load-%[1]d}
spec: {mountPath: 'C:\ClusterStorage\load%[1]d', source: {sharedDisk: {uniqueId: LOAD%[1]d}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: load-%[1]d}
spec:
  siteID: %[4]d
  physicalPath: 'C:\ClusterStorage\load%[1]d\www'
  bindings: [{protocol: http, ipRef: vip-load-%[1]d, port: 80}]
  health: {interval: 5s, timeout: 2s}
  placement: {nodes: [%[5]s], maxFailures: 20}
`, i, ExtraPrefix, i+1, 1000+i, nodes)
	}
	return b.String()
}

// Sitekeeper is Sitekeeper running in a lab: an agent with an embedded etcd
// member on node1 and node2, a witness, all started by Start.
type Sitekeeper struct {
	Lab      *Lab
	Bin, Dir string
	LeaseTTL time.Duration
	// ElectionTimeout is raft's; zero keeps Sitekeeper's default.
	ElectionTimeout time.Duration
	// StepLatency slows every simulated backend call of the agents.
	StepLatency time.Duration
	// Verbose logs etcd's own messages too (-vv): for a run that stalled.
	Verbose bool
	// Resync, when set, is the agents' --sync-period.
	Resync time.Duration
	// Extra is how many more groups (ExtraGroups) are applied with the
	// site.
	Extra int
	// Insecure runs the members and clients in plaintext
	// (--insecure-plaintext). By default the lab is secured as a real
	// cluster is: `sitekeeper init` on the witness, the nodes joined with
	// its token, TLS with client certificates everywhere, the CLI as the
	// admin.
	Insecure bool
	Procs    map[string]*exec.Cmd
	token    string
}

func (s *Sitekeeper) scheme() string {
	if s.Insecure {
		return "http"
	}
	return "https"
}

func (s *Sitekeeper) peer(h string) string   { return s.scheme() + "://" + Hosts[h] + ":2380" }
func (s *Sitekeeper) client(h string) string { return s.scheme() + "://" + Hosts[h] + ":2379" }

// Endpoints are the three members' client URLs.
func (s *Sitekeeper) Endpoints() string {
	return strings.Join([]string{s.client("node1"), s.client("node2"), s.client("witness")}, ",")
}

// joinAddr is the witness's join endpoint.
func joinAddr() string { return Hosts["witness"] + ":9443" }

// Certs are the TLS flags for name's certificate in host's data dir (the
// admin's is in the witness's).
func (s *Sitekeeper) Certs(host, name string) []string {
	p := filepath.Join(s.Dir, host, "pki")
	return []string{"--etcd-cacert", filepath.Join(p, "ca.crt"), "--etcd-cert", filepath.Join(p, name+".crt"), "--etcd-key", filepath.Join(p, name+".key")}
}

// enroll makes host's certificates once: the witness runs init (the CA,
// its certificates, the admin's, a join token); a node joins with the
// token from its own namespace, once the witness's join endpoint answers.
func (s *Sitekeeper) enroll(host string) error {
	if _, err := os.Stat(filepath.Join(s.Dir, host, "pki", host+".crt")); err == nil {
		return nil // a restart: enrolled already
	}
	if host == "witness" {
		out, err := exec.Command(s.Bin, "init", "--name", "lab", "--node", "witness", "--host", Hosts["witness"], "--data-dir", filepath.Join(s.Dir, "witness")).CombinedOutput()
		if err != nil {
			return fmt.Errorf("init on the witness: %v: %s", err, out)
		}
		s.token = tokenRE.FindString(string(out))
		if s.token == "" {
			return fmt.Errorf("init printed no join token: %s", out)
		}
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("ip", "netns", "exec", s.Lab.NS(host), s.Bin, "join", "--server", "https://"+joinAddr(), "--token", s.token,
			"--node", host, "--host", Hosts[host], "--data-dir", filepath.Join(s.Dir, host)).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("join %s: %v: %s", host, err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

var tokenRE = regexp.MustCompile(`skt1\.[0-9a-f.]+`)

// Start starts (or restarts) host's process: "witness" runs the witness,
// node1 and node2 an agent.
func (s *Sitekeeper) Start(host string) error {
	if s.Procs == nil {
		s.Procs = map[string]*exec.Cmd{}
	}
	ic := fmt.Sprintf("node1=%s,node2=%s,witness=%s", s.peer("node1"), s.peer("node2"), s.peer("witness"))
	log, err := os.OpenFile(filepath.Join(s.Dir, host+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	member := []string{"--peer-url", s.peer(host), "--client-url", s.client(host), "--initial-cluster", ic, "--data-dir", filepath.Join(s.Dir, host)}
	if s.Insecure {
		member = append(member, "--insecure-plaintext")
	} else {
		if err := s.enroll(host); err != nil {
			return err
		}
		member = append(member, s.Certs(host, host)...)
		if host == "witness" {
			member = append(member, "--join-listen", joinAddr())
		}
	}
	if s.ElectionTimeout > 0 {
		member = append(member, "--etcd-election-timeout", s.ElectionTimeout.String())
	}
	var args []string
	if host == "witness" {
		args = append([]string{"witness", "--etcd-name", "witness"}, member...)
	} else {
		args = append([]string{"agent", "--node", host, "--backend", "linux", "--interface", "eth0", "--etcd-member",
			"--lease-ttl", s.LeaseTTL.String(), "--sim-step-latency", s.StepLatency.String()}, member...)
	}
	if s.Resync > 0 && host != "witness" {
		args = append(args, "--sync-period", s.Resync.String())
	}
	if s.Verbose {
		args = append(args, "-vv")
	}
	cmd, err := s.Lab.Start(host, log, s.Bin, args...)
	if err != nil {
		return err
	}
	s.Procs[host] = cmd
	return nil
}

// WitnessLeads waits until the witness holds raft leadership, as it keeps
// doing in steady state (see KeepLeadership): the measurements start from
// there, not from a cluster still settling.
func (s *Sitekeeper) WitnessLeads(ctx context.Context) error {
	for {
		out, err := s.CLI(ctx, "", "member", "list", "-o", "json")
		if err == nil {
			var ms struct {
				Items []struct {
					Name   string `json:"name"`
					Leader bool   `json:"leader"`
				} `json:"items"`
			}
			if json.Unmarshal([]byte(out), &ms) == nil {
				for _, m := range ms.Items {
					if m.Name == "witness" && m.Leader {
						return nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the witness did not take raft leadership: %w (last: %s)", ctx.Err(), out)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ApplyAndSettle applies SiteManifests and waits until the witness leads
// raft: the steady state fault runs start from.
func (s *Sitekeeper) ApplyAndSettle() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.NodesReady(ctx); err != nil {
		return err
	}
	if err := s.Apply(ctx, SiteManifests+ExtraGroups(s.Extra)); err != nil {
		return err
	}
	return s.WitnessLeads(ctx)
}

// Signal sends sig to host's process.
func (s *Sitekeeper) Signal(host string, sig syscall.Signal) error {
	c := s.Procs[host]
	if c == nil || c.Process == nil {
		return fmt.Errorf("no process on %s", host)
	}
	return c.Process.Signal(sig)
}

// Kill kills host's process with SIGKILL and waits until it is gone.
func (s *Sitekeeper) Kill(host string) {
	if c := s.Procs[host]; c != nil && c.Process != nil {
		_ = c.Process.Signal(syscall.SIGCONT)
		_ = c.Process.Kill()
		for i := 0; i < 100 && syscall.Kill(c.Process.Pid, 0) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// StartAll starts the witness and both agents.
func (s *Sitekeeper) StartAll() error {
	for _, h := range []string{"witness", "node1", "node2"} {
		if err := s.Start(h); err != nil {
			return err
		}
	}
	return nil
}

// NodesReady waits until both nodes hold a lease (get nodes says Ready):
// a site applied before its preferred node registered is placed on the
// other one, which is right, but not the start a measurement wants.
func (s *Sitekeeper) NodesReady(ctx context.Context) error {
	for {
		out, err := s.CLI(ctx, "", "get", "nodes", "-o", "json")
		var nodes struct {
			Items []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"items"`
		}
		if err == nil && json.Unmarshal([]byte(out), &nodes) == nil {
			ready := 0
			for _, n := range nodes.Items {
				if n.Status == "Ready" && (n.Name == "node1" || n.Name == "node2") {
					ready++
				}
			}
			if ready == 2 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the nodes did not both register: %s", out)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Apply applies manifests from the client host, retrying until the
// members have formed a cluster or ctx ends.
func (s *Sitekeeper) Apply(ctx context.Context, manifests string) error {
	for {
		out, err := s.CLI(ctx, manifests, "apply", "-f", "-")
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("apply: %v: %s", err, out)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CLI runs a sitekeeper command from the client host.
func (s *Sitekeeper) CLI(ctx context.Context, stdin string, args ...string) (string, error) {
	return s.CLIAs(ctx, "admin", stdin, args...)
}

// CLIAs runs a sitekeeper command from the client host with the
// certificate of user (made by `certs operator` into the witness's pki
// folder; "admin" is init's).
func (s *Sitekeeper) CLIAs(ctx context.Context, user, stdin string, args ...string) (string, error) {
	args = append(args, "--endpoints", s.Endpoints())
	if s.Insecure {
		args = append(args, "--insecure-plaintext")
	} else {
		args = append(args, s.Certs("witness", user)...)
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", s.Lab.NS("client"), s.Bin}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TakedownBudget is the take-down budget node publishes, as `get nodes`
// shows it; zero when the store does not say.
func (s *Sitekeeper) TakedownBudget(node string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := s.CLI(ctx, "", "get", "nodes", "-o", "json")
	if err != nil {
		return 0
	}
	var nodes struct {
		Items []struct {
			Name           string `json:"name"`
			TakedownBudget string `json:"takedownBudget"`
		} `json:"items"`
	}
	if json.Unmarshal([]byte(out), &nodes) != nil {
		return 0
	}
	for _, n := range nodes.Items {
		if n.Name == node {
			d, _ := time.ParseDuration(n.TakedownBudget)
			return d
		}
	}
	return 0
}

// Refusals are the StepFailed events of steps refused because another
// machine (or node) still held the address, as "time node message".
func (s *Sitekeeper) Refusals() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.CLI(ctx, "", "events", "-o", "json")
	if err != nil {
		return nil
	}
	var list struct {
		Items []struct {
			Time    time.Time `json:"time"`
			Reason  string    `json:"reason"`
			Node    string    `json:"node"`
			Message string    `json:"message"`
		} `json:"items"`
	}
	if json.Unmarshal([]byte(out), &list) != nil {
		return nil
	}
	var found []string
	for _, e := range list.Items {
		if e.Reason != "StepFailed" {
			continue
		}
		if strings.Contains(e.Message, "held by another") || strings.Contains(e.Message, "duplicate address") {
			found = append(found, e.Time.Format("15:04:05.000")+" "+e.Node+" "+e.Message)
		}
	}
	return found
}

// Sample is one client request.
type Sample struct {
	At   time.Time
	OK   bool
	Node string // X-Sitekeeper-Node of the answer
}

// Poller is a client fetching http://VIP/ every interval from the client
// host, each request on a new connection, as a browser after a failover.
type Poller struct {
	mu      sync.Mutex
	samples []Sample
	stop    chan struct{}
	done    chan struct{}
}

// Poll starts polling; Stop ends it.
func (l *Lab) Poll(interval time.Duration) *Poller {
	p := &Poller{stop: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DialContext: l.Dialer("client", 300*time.Millisecond), DisableKeepAlives: true}}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s := Sample{At: time.Now()}
			if resp, err := hc.Get("http://" + VIP + "/"); err == nil {
				s.OK = resp.StatusCode == http.StatusOK
				s.Node = resp.Header.Get("X-Sitekeeper-Node")
				resp.Body.Close()
			}
			p.mu.Lock()
			p.samples = append(p.samples, s)
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends polling.
func (p *Poller) Stop() {
	close(p.stop)
	<-p.done
}

// Last returns the latest sample.
func (p *Poller) Last() Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples) == 0 {
		return Sample{}
	}
	return p.samples[len(p.samples)-1]
}

// WaitServed waits until a request started at or after from was answered
// by node (any node when node is ""), and returns when that request
// started.
func (p *Poller) WaitServed(node string, from time.Time, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if s := p.Last(); s.OK && (node == "" || s.Node == node) && !s.At.Before(from) {
			for _, smp := range p.Since(from) {
				if smp.OK && (node == "" || smp.Node == node) {
					return smp.At, nil // the first such answer, not the last
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("the VIP was not served by %s within %s (last answer %+v)", node, within, p.Last())
}

// Since returns the samples taken at or after t.
func (p *Poller) Since(t time.Time) []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Sample
	for _, s := range p.samples {
		if !s.At.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// Outage is the longest time without a good answer in samples: from the
// last good answer before a failure to the first good one after it.
func Outage(samples []Sample) time.Duration {
	var worst time.Duration
	var lastOK time.Time
	failing := false
	for _, s := range samples {
		switch {
		case s.OK && failing:
			if d := s.At.Sub(lastOK); d > worst {
				worst = d
			}
			failing, lastOK = false, s.At
		case s.OK:
			lastOK = s.At
		case !lastOK.IsZero():
			failing = true
		}
	}
	return worst
}

// Checker samples which hosts hold the VIP every 10 ms and remembers any
// moment two held it at once.
type Checker struct {
	w     *Holds
	extra atomic.Bool // also every address of the extra groups
	mu    sync.Mutex
	dual  []string
	seen  map[string]int
	stop  chan struct{}
	done  chan struct{}
	count int
}

// Check starts the dual-holder checker on node1 and node2.
func (l *Lab) Check() (*Checker, error) {
	w, err := l.Watcher("node1", "node2")
	if err != nil {
		return nil, err
	}
	c := &Checker{w: w, seen: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			h := w.Holders(VIP)
			var extra map[string][]string
			if c.extra.Load() {
				extra = w.AllHolders(ExtraPrefix)
			}
			c.mu.Lock()
			c.count++
			for _, host := range h {
				c.seen[host]++
			}
			if len(h) > 1 {
				c.dual = append(c.dual, fmt.Sprintf("%s: %s held by %v", time.Now().Format("15:04:05.000"), VIP, h))
			}
			for ip, hs := range extra {
				if len(hs) > 1 {
					c.dual = append(c.dual, fmt.Sprintf("%s: %s held by %v", time.Now().Format("15:04:05.000"), ip, hs))
				}
			}
			c.mu.Unlock()
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
		}
	}()
	return c, nil
}

// WatchExtra makes every sample check the extra groups' addresses too.
func (c *Checker) WatchExtra() { c.extra.Store(true) }

// Seen is how many samples found host holding the VIP so far.
func (c *Checker) Seen(host string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[host]
}

// Snapshot returns every dual-holding moment so far and the number of
// samples taken, and keeps checking.
func (c *Checker) Snapshot() ([]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.dual), c.count
}

// Stop ends the checker and returns every dual-holding moment and the
// number of samples taken.
func (c *Checker) Stop() ([]string, int) {
	close(c.stop)
	<-c.done
	c.w.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dual, c.count
}
