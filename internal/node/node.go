// Package node assembles one Sitekeeper node: the agent that holds the
// node's lease and converges it, the placement candidate that stands for
// election, the manifest folder it watches (GitOps), the event recorder,
// and what it publishes (reports, observed state). `sitekeeper up` runs one
// Runtime per simulated node over the embedded store; `sitekeeper agent`
// runs one. Nothing a node does depends on which command started it.
package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/controllers/agent"
	"github.com/sitekeeper/sitekeeper/controllers/gitops"
	"github.com/sitekeeper/sitekeeper/controllers/placement"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// Folder is a manifest folder a node watches and applies (GitOps).
type Folder = gitops.Source

// Options configure a node.
type Options struct {
	// Name is the node's name, as placement.nodes names it.
	Name    string
	Store   *etcdstore.Store
	Backend backend.Node
	// World, when the backend's IIS is simulated, gets an index page in each
	// empty site folder, so a fresh node serves something and passes its
	// health checks.
	World    *sim.World
	LeaseTTL time.Duration
	// Folder, when set, is a manifest folder this node watches; only the
	// placement leader applies it, so checkouts at different commits never
	// fight.
	Folder *Folder
	// OnApplied hears each change set of Folder applied by this node.
	OnApplied func(rev string, results []store.ApplyResult, err error)
	// Recorder also hears every event (the live log of `up`); events always
	// go to the store.
	Recorder record.Recorder
	Log      logr.Logger
}

// Runtime is one running node.
type Runtime struct {
	opts   Options
	member *agent.Member
	ctrl   *placement.Controller
}

// New assembles a node.
func New(o Options) *Runtime {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 2 * time.Second
	}
	// Events outlive the node's context: a take-down's last events are
	// written after the node was told to stop.
	toStore := func(component string) record.Recorder {
		return record.Tee(o.Recorder, record.Async(context.Background(), o.Store, component))
	}
	return &Runtime{opts: o,
		ctrl:   &placement.Controller{Store: o.Store, Log: o.Log.WithName("placement"), Identity: o.Name, Recorder: toStore(placement.Component)},
		member: &agent.Member{Node: o.Name, Store: o.Store, Backend: o.Backend, LeaseTTL: o.LeaseTTL, Log: o.Log.WithName(o.Name), Recorder: toStore("agent")},
	}
}

// Crash makes the next stop look like a power loss: the lease is left to
// expire instead of being revoked.
func (r *Runtime) Crash() { r.member.Crash() }

// IsLeader reports whether this node's placement candidate leads now.
func (r *Runtime) IsLeader() bool { return r.ctrl.IsLeader() }

// Run runs the node until ctx ends.
func (r *Runtime) Run(ctx context.Context) error {
	o := r.opts
	if o.Folder != nil {
		if fi, err := os.Stat(o.Folder.Dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("manifest folder %s: not a folder", o.Folder.Dir)
		}
	}
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	defer wg.Wait()
	if o.World != nil {
		run(func(ctx context.Context) {
			changes := o.Store.Changes(ctx, store.FamilyObjects) // before the first read: miss nothing
			SeedContent(ctx, o.Store, o.World)
			for range changes {
				SeedContent(ctx, o.Store, o.World)
			}
		})
	}
	if o.Folder != nil {
		lead := make(chan struct{}, 1)
		gr := &gitops.Reconciler{Store: o.Store, Source: *o.Folder, Node: o.Name, Log: o.Log.WithName("gitops"),
			IsLeader: r.ctrl.IsLeader, Trigger: lead, OnApplied: o.OnApplied}
		r.ctrl.OnLead = func() {
			select {
			case lead <- struct{}{}:
			default:
			}
		}
		run(func(ctx context.Context) {
			if err := gr.Run(ctx); err != nil && ctx.Err() == nil {
				o.Log.Error(err, "Folder watch stopped", "dir", o.Folder.Dir)
			}
		})
	}
	run(func(ctx context.Context) { _ = r.ctrl.Run(ctx) })
	return r.member.Run(ctx)
}

// SeedContent writes an index page into each site's folder of the
// simulated storage when the folder is empty, so a fresh demo serves
// something readable and a simulated site answers its health checks.
func SeedContent(ctx context.Context, st interface {
	ListSpecs(context.Context) (store.Snapshot, error)
}, w *sim.World) {
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
