// Package cluster runs the embedded default on one machine: an etcd member
// inside the process, the placement controller, and one agent per
// simulated node, with fault injection through the store.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/controllers/agent"
	"github.com/sitekeeper/sitekeeper/controllers/placement"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/store"
	etcdstore "github.com/sitekeeper/sitekeeper/internal/store/etcd"
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
	// OnDecision hears placement changes (the live log).
	OnDecision func(group string, c placement.Change)
	// Run, when set, runs beside the cluster with its store (the folder
	// watch of GitOps) until the cluster stops.
	Run func(ctx context.Context, st *etcdstore.Store)
}

// Local is a running embedded cluster.
type Local struct {
	opts   LocalOptions
	server *etcdstore.Server
	Store  *etcdstore.Store
	World  *sim.World

	mu      sync.Mutex
	members map[string]context.CancelFunc
	agents  map[string]*agent.Member
	done    map[string]chan struct{}
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
	st, err := etcdstore.Connect([]string{srv.Endpoint})
	if err != nil {
		return err
	}
	defer st.Close()
	l := &Local{opts: o, server: srv, Store: st, World: sim.NewWorld(filepath.Join(o.DataDir, "sim"), o.Log.WithName("sim")),
		members: map[string]context.CancelFunc{}, agents: map[string]*agent.Member{}, done: map[string]chan struct{}{}}
	if o.Ready != nil {
		if err := o.Ready(srv.Endpoint, st); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	ctrl := &placement.Controller{Store: st, Log: o.Log.WithName("placement"), Identity: "up", OnDecision: o.OnDecision}
	wg.Add(1)
	go func() { defer wg.Done(); _ = ctrl.Run(ctx) }()
	simState, _ := etcdstore.GetPrefix[store.SimCommand](ctx, st, store.Prefix+"sim/")
	for _, n := range o.Nodes {
		node := l.World.Node(n)
		if c, ok := simState[n]; ok && !c.Powered {
			node.PowerOff() // stays down across restarts until heal-node
			continue
		}
		if !node.Powered() {
			node.PowerOn()
		}
		l.startMember(ctx, n)
	}
	wg.Add(1)
	go func() { defer wg.Done(); l.watchSim(ctx) }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		changes := st.Changes(ctx, "objects/") // before the first read: miss nothing
		SeedContent(ctx, st, l.World)
		for range changes {
			SeedContent(ctx, st, l.World)
		}
	}()
	if o.Run != nil {
		wg.Add(1)
		go func() { defer wg.Done(); o.Run(ctx, st) }()
	}
	<-ctx.Done()
	l.mu.Lock()
	var waits []chan struct{}
	for n, cancel := range l.members {
		cancel()
		waits = append(waits, l.done[n])
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

func (l *Local) startMember(ctx context.Context, node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, running := l.members[node]; running {
		return
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.members[node], l.done[node] = cancel, done
	n := l.World.Node(node)
	m := &agent.Member{Node: node, Store: l.Store, Backend: n, LeaseTTL: l.opts.LeaseTTL, Log: l.opts.Log.WithName(node),
		OnObserved: func(o plan.Observed) { l.publishObserved(mctx, o) }}
	l.agents[node] = m
	go func() {
		defer close(done)
		if err := m.Run(mctx); err != nil && mctx.Err() == nil {
			l.opts.Log.Error(err, "Agent stopped", "node", node)
		}
	}()
}

// powerOff simulates a power loss: the agent stops at once (no lease
// revoke: the lease must expire), listeners and addresses vanish.
func (l *Local) powerOff(node string) {
	l.mu.Lock()
	cancel, ok := l.members[node]
	done := l.done[node]
	m := l.agents[node]
	delete(l.members, node)
	l.mu.Unlock()
	l.World.Node(node).PowerOff()
	if ok {
		m.Crash()
		cancel()
		<-done
	}
}

func (l *Local) watchSim(ctx context.Context) {
	for resp := range l.Store.Client.Watch(ctx, store.Prefix+"sim/", clientv3.WithPrefix()) {
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypePut {
				continue
			}
			node := strings.TrimPrefix(string(ev.Kv.Key), store.Prefix+"sim/")
			var c store.SimCommand
			if json.Unmarshal(ev.Kv.Value, &c) != nil || !slices.Contains(l.opts.Nodes, node) {
				continue
			}
			n := l.World.Node(node)
			switch {
			case c.StopSite != "":
				err := n.StopSite(ctx, c.StopSite)
				l.opts.Log.Info("Simulated: site stopped behind sitekeeper's back", "node", node, "site", c.StopSite, "error", errString(err))
			case !c.Powered && n.Powered():
				l.opts.Log.Info("Simulated: node lost power", "node", node)
				l.powerOff(node)
			case c.Powered && !n.Powered():
				l.opts.Log.Info("Simulated: node boots", "node", node)
				n.PowerOn()
				l.startMember(ctx, node)
			}
		}
	}
}

// publishObserved stores what a node has, for `sitekeeper plan` against
// the cluster.
func (l *Local) publishObserved(ctx context.Context, o plan.Observed) {
	_, _ = l.Store.PutJSON(ctx, store.Prefix+"observed/"+o.Node, o)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// SeedContent writes an index page into each site's folder of the
// simulated storage when the folder is empty, so a fresh demo serves
// something readable and a simulated site answers its health checks.
func SeedContent(ctx context.Context, st *etcdstore.Store, w *sim.World) {
	snap, err := st.ListSpecs(ctx)
	if err != nil {
		return
	}
	var vols []*v1alpha1.VolumeResource
	var sites []*v1alpha1.IISSite
	for _, o := range snap.Objects {
		switch t := o.(type) {
		case *v1alpha1.VolumeResource:
			vols = append(vols, t)
		case *v1alpha1.IISSite:
			sites = append(sites, t)
		}
	}
	volIndex := graph.NewVolumeIndex(vols)
	for _, s := range sites {
		v := volIndex.For(s.Spec.PhysicalPath)
		if v == nil {
			continue
		}
		rv := plan.RenderVolume(v)
		// Keep the path's own spelling: the simulator's disk is case-sensitive.
		rest := strings.ReplaceAll(s.Spec.PhysicalPath, "/", `\`)[len(strings.TrimRight(rv.Root, `\`)):]
		dir := filepath.Join(append([]string{w.VolumeDir(rv.ID)}, strings.FieldsFunc(rest, func(r rune) bool { return r == '\\' })...)...)
		index := filepath.Join(dir, "index.html")
		if _, err := os.Stat(index); err == nil {
			continue
		}
		if os.MkdirAll(dir, 0o755) == nil {
			_ = os.WriteFile(index, []byte(fmt.Sprintf("Hello from %s\n", s.Metadata.Name)), 0o644)
		}
	}
}
