// Package cluster runs the embedded default on one machine: an etcd member
// inside the process and one node runtime per simulated node (each with its
// agent and placement candidate, as on a real cluster), with fault
// injection through the store.
package cluster

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/node"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// LocalOptions configure RunLocal.
type LocalOptions struct {
	DataDir  string
	Listen   string
	Nodes    []string
	LeaseTTL time.Duration
	Fast     bool // test tuning of the embedded etcd
	Verbose  bool
	Log      logr.Logger
	// Ready is called once the store answers, with its endpoint and the
	// store client.
	Ready func(endpoint string, s *etcdstore.Store) error
	// Recorder hears every node's events (the live log).
	Recorder record.Recorder
	// Folder, when set, is the manifest folder every node watches (the
	// placement leader applies it).
	Folder *node.Folder
	// OnApplied hears each change set of Folder.
	OnApplied func(rev string, results []store.ApplyResult, err error)
	// StepLatency makes every simulated backend call of a node take that
	// long (key "" for every node).
	StepLatency map[string]time.Duration
	// World, when set, is handed the simulated machines once they exist
	// (a fault run samples them and changes their latency).
	World func(*sim.World)
	// Metrics counts what every node does; nil counts nothing.
	Metrics *metrics.Set
	// Started, when set, is handed the running cluster once its nodes
	// were started (the dashboard asks it whether they are ready).
	Started func(*Local)
}

// Local is a running embedded cluster.
type Local struct {
	opts   LocalOptions
	server *etcdstore.Server
	Store  *etcdstore.Store
	World  *sim.World

	mu    sync.Mutex
	nodes map[string]*running
	views map[string]*partitionable // each node's view of the store
}

type running struct {
	rt     *node.Runtime
	cancel context.CancelFunc
	done   chan struct{}
}

// RunLocal runs the embedded default until ctx ends.
func RunLocal(ctx context.Context, o LocalOptions) error {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 2 * time.Second
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", o.DataDir, err)
	}
	srv, err := etcdstore.StartServer(ctx, etcdstore.ServerOptions{DataDir: filepath.Join(o.DataDir, "etcd"), ClientAddr: o.Listen, Fast: o.Fast, Verbose: o.Verbose, Log: o.Log})
	if err != nil {
		return err
	}
	defer srv.Close()
	st := srv.Connect()
	defer st.Close()
	st.SetLog(o.Log.WithName("store"))
	l := &Local{opts: o, server: srv, Store: st, World: sim.NewWorld(filepath.Join(o.DataDir, "sim"), o.Log.WithName("sim")),
		nodes: map[string]*running{}, views: map[string]*partitionable{}}
	l.World.SeedIndexPages()
	for n, d := range o.StepLatency {
		l.World.SetStepLatency(n, d)
	}
	if o.World != nil {
		o.World(l.World)
	}
	if o.Ready != nil {
		if err := o.Ready(srv.Endpoint, st); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	simState, _ := st.SimCommands(ctx)
	for _, n := range o.Nodes {
		sn := l.World.Node(n)
		sn.SetFaults(simState[n].Faults)
		if c, ok := simState[n]; ok && !c.Powered {
			sn.PowerOff() // stays down across restarts until heal-node
			continue
		}
		if !sn.Powered() {
			sn.PowerOn()
		}
		l.startNode(ctx, n)
	}
	wg.Add(1)
	go func() { defer wg.Done(); l.watchSim(ctx) }()
	if o.Started != nil {
		o.Started(l)
	}
	<-ctx.Done()
	l.mu.Lock()
	var waits []chan struct{}
	for _, r := range l.nodes {
		// The simulated machines stay as they are (below), serving: a
		// node that handed its groups over on the way out (a lease
		// revoke) let a node not yet stopped take them while the first
		// machine still held them (found by the fault run's restarts).
		// The leases run out instead; an up started again within them
		// adopts what the machines hold.
		r.rt.Crash()
		r.cancel()
		waits = append(waits, r.done)
	}
	l.mu.Unlock()
	for _, w := range waits {
		<-w
	}
	// The simulated machines are frozen as they are, not powered off: a
	// later `up` on the same data dir finds them serving as before.
	l.World.Detach()
	l.World.Close()
	wg.Wait()
	return nil
}

// startNode runs one simulated node's runtime, as `sitekeeper agent` would
// on a machine of its own.
func (l *Local) startNode(ctx context.Context, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.nodes[name]; ok {
		return
	}
	nctx, cancel := context.WithCancel(ctx)
	view, ok := l.views[name]
	if !ok {
		view = newPartitionable(l.Store, name)
		l.views[name] = view
	}
	rt := node.New(node.Options{Name: name, Store: view, Backend: l.World.Node(name), LeaseTTL: l.opts.LeaseTTL,
		Folder: l.opts.Folder, OnApplied: l.opts.OnApplied, Recorder: l.opts.Recorder, Metrics: l.opts.Metrics, Log: l.opts.Log})
	r := &running{rt: rt, cancel: cancel, done: make(chan struct{})}
	l.nodes[name] = r
	go func() {
		defer close(r.done)
		if err := rt.Run(nctx); err != nil && nctx.Err() == nil {
			l.opts.Log.Error(err, "Node stopped", "node", name)
		}
	}()
}

// Ready says whether every running node holds its lease, and names those
// that do not: the readiness of `up` (a simulated node that lost power is
// not running).
func (l *Local) Ready() (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.nodes) == 0 {
		return false, "no node is running"
	}
	var why []string
	for _, name := range slices.Sorted(maps.Keys(l.nodes)) {
		if ok, reason := l.nodes[name].rt.Ready(); !ok {
			why = append(why, name+": "+reason)
		}
	}
	if len(why) > 0 {
		return false, strings.Join(why, "; ")
	}
	return true, ""
}

// powerOff simulates a power loss: the node stops at once (no lease
// revoke: the lease must expire), listeners and addresses vanish.
func (l *Local) powerOff(name string) {
	l.mu.Lock()
	r, ok := l.nodes[name]
	delete(l.nodes, name)
	l.mu.Unlock()
	l.World.Node(name).PowerOff()
	if ok {
		r.rt.Crash()
		r.cancel()
		<-r.done
	}
}

func (l *Local) watchSim(ctx context.Context) {
	for ev := range l.Store.WatchSim(ctx) {
		name, c := ev.Node, ev.Command
		if !slices.Contains(l.opts.Nodes, name) {
			continue
		}
		n := l.World.Node(name)
		l.mu.Lock()
		view := l.views[name]
		r := l.nodes[name]
		l.mu.Unlock()
		n.SetFaults(c.Faults)
		if r != nil {
			r.rt.Resync() // its standbys prove themselves again
		}
		switch {
		case c.Partitioned && view != nil:
			l.opts.Log.Info("Simulated: node cut off from the store; it keeps running and serving", "node", name)
			view.setCut(true)
		case c.Powered && view != nil && view.cut.Load():
			l.opts.Log.Info("Simulated: partition healed", "node", name)
			view.setCut(false)
		case c.StopSite != "":
			err := n.StopSite(ctx, c.StopSite)
			l.opts.Log.Info("Simulated: site stopped behind sitekeeper's back", "node", name, "site", c.StopSite, "error", errString(err))
		case !c.Powered && n.Powered():
			l.opts.Log.Info("Simulated: node lost power", "node", name)
			l.powerOff(name)
		case c.Powered && !n.Powered():
			l.opts.Log.Info("Simulated: node boots", "node", name)
			n.PowerOn()
			l.startNode(ctx, name)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
