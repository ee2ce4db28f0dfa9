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
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/controllers/agent"
	"github.com/sitekeeper/sitekeeper/controllers/gitops"
	"github.com/sitekeeper/sitekeeper/controllers/placement"
	"github.com/sitekeeper/sitekeeper/controllers/requests"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Store is everything a node reads and writes in the cluster store: the
// union of what its parts declare they need.
type Store interface {
	agent.MemberStore
	placement.Store
	gitops.Store
	gitops.GitStore
	requests.Store
	record.Sink
}

// Folder is a manifest folder a node watches and applies (GitOps).
type Folder = gitops.Source

// Options configure a node.
type Options struct {
	// Name is the node's name, as placement.nodes names it.
	Name     string
	Store    Store
	Backend  backend.Node
	LeaseTTL time.Duration
	// Resync is how often the agent looks at every group even without a
	// change (standby proofs among it); 0 means 30 s.
	Resync time.Duration
	// Folder, when set, is a manifest folder this node watches; only the
	// placement leader applies it, so checkouts at different commits never
	// fight.
	Folder *Folder
	// OnApplied hears each change set of Folder applied by this node.
	OnApplied func(rev string, results []store.ApplyResult, err error)
	// Recorder also hears every event (the live log of `up`); events always
	// go to the store.
	Recorder record.Recorder
	// Metrics counts what the node does (steps, probes, moves, fences,
	// change sets); nil counts nothing.
	Metrics *metrics.Set
	Log     logr.Logger
}

// Runtime is one running node.
type Runtime struct {
	opts   Options
	member *agent.Member
	ctrl   *placement.Controller
	git    *gitops.GitSources
}

// New assembles a node.
func New(o Options) *Runtime {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 2 * time.Second
	}
	// Events outlive the node's context: a take-down's last events are
	// written after the node was told to stop.
	toStore := func(component string) record.Recorder {
		return record.Tee(o.Recorder, o.Metrics, record.Async(context.Background(), o.Store, component))
	}
	// Git sources are fetched and applied by the placement leader alone;
	// they hear its events to tell webhooks of failovers.
	git := &gitops.GitSources{Store: o.Store, Node: o.Name, Log: o.Log.WithName("gitsource"), Recorder: o.Metrics}
	r := &Runtime{opts: o, git: git,
		ctrl:   &placement.Controller{Store: o.Store, Log: o.Log.WithName("placement"), Identity: o.Name, Recorder: record.Tee(toStore(placement.Component), git)},
		member: &agent.Member{Node: o.Name, Store: o.Store, Backend: o.Backend, LeaseTTL: o.LeaseTTL, Resync: o.Resync, Log: o.Log.WithName(o.Name), Recorder: toStore("agent"), Metrics: o.Metrics},
	}
	git.IsLeader = r.ctrl.IsLeader
	return r
}

// Ready says whether the node holds its lease (and so reaches the store),
// and why not: the node's /readyz.
func (r *Runtime) Ready() (bool, string) { return r.member.Holding() }

// Resync makes the node look at every group again now (its backend
// changed under it: a simulated fault).
func (r *Runtime) Resync() { r.member.Rescan() }

// Crash makes the next stop look like a power loss: the lease is left to
// expire instead of being revoked.
func (r *Runtime) Crash() {
	r.member.Crash()
	r.ctrl.Crash()
}

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
	if o.Folder != nil {
		lead := make(chan struct{}, 1)
		gr := &gitops.Reconciler{Store: o.Store, Source: *o.Folder, Node: o.Name, Log: o.Log.WithName("gitops"),
			IsLeader: r.ctrl.IsLeader, Trigger: lead, OnApplied: o.OnApplied, Recorder: o.Metrics}
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
	run(func(ctx context.Context) {
		if err := r.git.Run(ctx); err != nil && ctx.Err() == nil {
			o.Log.Error(err, "Git sources stopped")
		}
	})
	run(func(ctx context.Context) {
		rq := &requests.Runner{Store: o.Store, IsLeader: r.ctrl.IsLeader, Log: o.Log.WithName("requests")}
		_ = rq.Run(ctx)
	})
	run(func(ctx context.Context) {
		if err := r.ctrl.Run(ctx); err != nil && ctx.Err() == nil {
			o.Log.Error(err, "Placement candidate stopped")
		}
	})
	return r.member.Run(ctx)
}
