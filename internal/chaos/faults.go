package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/cli"
	"github.com/sitekeeper/sitekeeper/internal/cluster"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// running is one start of the cluster; a restart fault stops it and
// starts another on the same data folder.
type running struct {
	st       *etcdstore.Store
	world    *sim.World
	endpoint string
	freezer  *freezer
	cancel   context.CancelFunc
	done     chan error
	once     sync.Once
}

// start runs the cluster until stop; objs, when set, are applied first.
func start(ctx context.Context, o Options, objs []v1alpha1.Object) (*running, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{}, 1)
	worlds := make(chan *sim.World, 1)
	go func() {
		r.done <- cluster.RunLocal(ctx, cluster.LocalOptions{DataDir: o.DataDir, Nodes: nodes, Fast: true, Log: o.Log,
			World: func(w *sim.World) { worlds <- w },
			Ready: func(endpoint string, st *etcdstore.Store) error {
				r.st, r.endpoint = st, endpoint
				var err error
				if len(objs) > 0 {
					_, err = st.Apply(ctx, objs, store.ApplyOptions{})
				}
				ready <- struct{}{}
				return err
			}})
	}()
	select {
	case <-ready:
	case err := <-r.done:
		cancel()
		return nil, fmt.Errorf("start the cluster: %w", err)
	}
	r.world = <-worlds
	f, err := newFreezer(strings.TrimPrefix(r.endpoint, "http://"))
	if err != nil {
		r.stop()
		return nil, err
	}
	r.freezer = f
	return r, nil
}

func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		if r.freezer != nil {
			r.freezer.Close()
		}
	})
}

// ackLog remembers every label value an apply reported written, per
// object: each must still be there when the run ends (unless a later
// acknowledged apply changed it), across restarts and frozen stores.
type ackLog struct {
	mu     sync.Mutex
	labels map[v1alpha1.Ref]map[string]string
}

func (a *ackLog) add(ref v1alpha1.Ref, key, value string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.labels == nil {
		a.labels = map[v1alpha1.Ref]map[string]string{}
	}
	if a.labels[ref] == nil {
		a.labels[ref] = map[string]string{}
	}
	a.labels[ref][key] = value
}

func (a *ackLog) missing(ctx context.Context, st *etcdstore.Store) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for ref, labels := range a.labels {
		o, err := st.Get(ctx, ref)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: acknowledged labels unreadable at the end: %v", ref, err))
			continue
		}
		for k, v := range labels {
			if got := o.Meta().Labels[k]; got != v {
				out = append(out, fmt.Sprintf("%s: label %s=%s was acknowledged and is %q at the end", ref, k, v, got))
			}
		}
	}
	return out
}

type frozenResult struct {
	after   time.Duration
	outcome string
	lost    string
}

// applyWhileFrozen applies a label to two objects of group i (its site and
// its address) through a client whose store freezes a moment after the
// apply starts, for longer than the client's request timeout. The apply
// must end (not hang), and the two objects must agree afterwards: both
// changed or neither (an apply is one transaction). When it reported
// success, the change must be there.
func applyWhileFrozen(ctx context.Context, f *freezer, st *etcdstore.Store, acked *ackLog, i, round int, rng *rand.Rand) frozenResult {
	const timeout = time.Second
	client, err := etcdstore.ConnectTLS([]string{f.Addr()}, etcdstore.TLSFiles{}, timeout)
	if err != nil {
		return frozenResult{outcome: "no client: " + err.Error()}
	}
	defer client.Close()
	refs := []v1alpha1.Ref{{Kind: v1alpha1.KindIISSite, Name: fmt.Sprintf("site-%d", i)}, {Kind: v1alpha1.KindIPResource, Name: fmt.Sprintf("vip-%d", i)}}
	var objs []v1alpha1.Object
	for _, ref := range refs {
		o, err := st.Get(ctx, ref)
		if err != nil {
			return frozenResult{outcome: "not read: " + err.Error()}
		}
		c := v1alpha1.DeepCopy(o)
		m := c.Meta()
		m.ResourceVersion, m.UID, m.Generation, m.CreationTimestamp, m.ManagedFields = "", "", 0, nil, nil
		*c.StatusRef() = v1alpha1.Status{}
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels["chaos-freeze"] = fmt.Sprint(round)
		objs = append(objs, c)
	}
	after := time.Duration(rng.Int64N(int64(5 * time.Millisecond)))
	res := frozenResult{after: after.Round(100 * time.Microsecond)}
	done := make(chan error, 1)
	go func() {
		_, err := client.Apply(ctx, objs, store.ApplyOptions{})
		done <- err
	}()
	time.Sleep(after)
	f.Freeze(3 * timeout)
	var applyErr error
	select {
	case applyErr = <-done:
	case <-time.After(15 * time.Second):
		res.lost = fmt.Sprintf("group %d: an apply hung 15 s on a frozen store", i)
		return res
	}
	// A request that timed out in the client is still in the proxy: it
	// reaches the store after the thaw and may commit then (the outcome
	// the CLI calls unknown). Let it land, then read both objects at one
	// revision.
	f.wait()
	client.Close()
	time.Sleep(500 * time.Millisecond)
	snap, err := st.List(ctx)
	if err != nil {
		res.outcome = "not read back: " + err.Error()
		return res
	}
	vals := make([]string, len(refs))
	for _, o := range snap.Objects {
		for j, ref := range refs {
			if v1alpha1.RefOf(o) == ref {
				vals[j] = o.Meta().Labels["chaos-freeze"]
			}
		}
	}
	switch {
	case vals[0] != vals[1]:
		res.lost = fmt.Sprintf("group %d: an apply interrupted by a frozen store was partial: chaos-freeze %q on the site, %q on the address", i, vals[0], vals[1])
	case applyErr == nil && vals[0] != fmt.Sprint(round):
		res.lost = fmt.Sprintf("group %d: an apply reported success while the store froze, and its change is gone", i)
	}
	switch {
	case applyErr == nil:
		res.outcome = "applied"
	case etcdstore.IsTimeout(applyErr):
		res.outcome = "ended with a timeout"
	default:
		res.outcome = "failed: " + applyErr.Error()
	}
	// Whatever the outcome, what is stored now is what must last.
	for _, ref := range refs {
		acked.add(ref, "chaos-freeze", vals[0])
	}
	return res
}

// restartDamages are the files Sitekeeper writes itself, damaged while the
// cluster is down: each must be noticed and rebuilt from the store.
var restartDamages = []struct {
	name string
	do   func(dataDir string) error
}{
	{"the simulator's state torn in half", func(d string) error {
		return truncateHalf(filepath.Join(d, "sim", "state.json"))
	}},
	{"the simulator's state emptied", func(d string) error {
		return os.WriteFile(filepath.Join(d, "sim", "state.json"), nil, 0o644)
	}},
	{"the simulator's state garbled", func(d string) error {
		return os.WriteFile(filepath.Join(d, "sim", "state.json"), bytes.Repeat([]byte{0xA5}, 4096), 0o644)
	}},
}

func truncateHalf(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.Truncate(path, st.Size()/2)
}

// flagExtremes runs commands against the cluster with flag values out of
// range: each must be a usage error (exit 2), within seconds, never a
// panic, a hang or a command that goes ahead. It returns what was not.
func flagExtremes(ctx context.Context, endpoint string) []string {
	dir, err := os.MkdirTemp("", "sitekeeper-flags-")
	if err != nil {
		return []string{err.Error()}
	}
	defer os.RemoveAll(dir)
	ep := []string{"--endpoints", endpoint}
	up := []string{"--data-dir", filepath.Join(dir, "up"), "--listen", "127.0.0.1:0", "--nodes", "x1"}
	agent := []string{"--data-dir", filepath.Join(dir, "agent"), "--node", "x1", "--endpoints", endpoint}
	cases := []struct {
		flag string
		args []string
	}{
		{"--request-timeout", append([]string{"get", "sites", "--request-timeout", "1ns"}, ep...)},
		{"--request-timeout", append([]string{"get", "sites", "--request-timeout", "100000h"}, ep...)},
		{"--request-timeout", append([]string{"apply", "-f", "-", "--request-timeout", "-1s"}, ep...)},
		{"--timeout", append([]string{"switchover", "group", "site-0", "--to", "node2", "--wait", "--timeout", "-1s"}, ep...)},
		{"--since", append([]string{"events", "--since", "-5m"}, ep...)},
		{"--lease-ttl", append([]string{"up", "--lease-ttl", "1ns"}, up...)},
		{"--lease-ttl", append([]string{"up", "--lease-ttl", "1500ms"}, up...)},
		{"--lease-ttl", append([]string{"up", "--lease-ttl", "87600h"}, up...)},
		{"--sim-step-latency", append([]string{"up", "--sim-step-latency", "-1s"}, up...)},
		{"--resync", append([]string{"up", "-f", dir, "--resync", "1ns"}, up...)},
		{"--lease-ttl", append([]string{"agent", "--lease-ttl", "0s"}, agent...)},
		{"--etcd-election-timeout", []string{"witness", "--etcd-election-timeout", "1ns", "--data-dir", filepath.Join(dir, "w"),
			"--peer-url", "http://127.0.0.1:1", "--client-url", "http://127.0.0.1:2", "--initial-cluster", "witness=http://127.0.0.1:1", "--insecure-plaintext"}},
	}
	var bad []string
	for _, c := range cases {
		code, out := runCLI(ctx, c.args)
		if code != cli.ExitUsage || !strings.Contains(out, c.flag) {
			bad = append(bad, fmt.Sprintf("sitekeeper %s: exit %d, want a usage error (2) naming %s: %s", strings.Join(c.args, " "), code, c.flag, strings.TrimSpace(out)))
		}
	}
	return bad
}

// runCLI runs one command in this process, a panic counted as exit -1
// and a command still running after 5 s as -2.
func runCLI(ctx context.Context, args []string) (code int, out string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var buf bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	res := make(chan int, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(w, "panic: %v", r)
				res <- -1
			}
		}()
		res <- cli.Run(ctx, args, strings.NewReader(""), w, w)
	}()
	select {
	case code = <-res:
	case <-ctx.Done():
		code = -2
		<-res
	}
	mu.Lock()
	defer mu.Unlock()
	return code, buf.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
