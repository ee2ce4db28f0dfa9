package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/clock"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/store"
	etcdstore "github.com/sitekeeper/sitekeeper/internal/store/etcd"
)

// Controller is the placement leader.
type Controller struct {
	Store    *etcdstore.Store
	Clock    clock.Clock
	Log      logr.Logger
	Identity string
	// OnDecision, when set, hears every decision change (the live log of
	// `sitekeeper up`).
	OnDecision func(group string, c Change)
	// OnLead, when set, is called each time this controller becomes leader.
	OnLead func()
	// Tick re-evaluates on a timer (failure windows, lease expiry).
	Tick time.Duration
	// Grace is how long a new leader waits for a never-placed group's
	// preferred node to register (default 3s: more than a lease TTL).
	Grace time.Duration

	leadingSince time.Time
	// written caches the status last written per key, so that an unchanged
	// status costs no store round trip.
	written map[string]string
	leading atomic.Bool
}

func (c *Controller) grace() time.Duration {
	if c.Grace > 0 {
		return c.Grace
	}
	return 3 * time.Second
}

// IsLeader reports whether this controller leads now.
func (c *Controller) IsLeader() bool { return c.leading.Load() }

// Run campaigns for leadership and, once leader, reconciles until ctx ends
// or leadership is lost (then it campaigns again).
func (c *Controller) Run(ctx context.Context) error {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Tick <= 0 {
		c.Tick = 5 * time.Second
	}
	for ctx.Err() == nil {
		if err := c.lead(ctx); err != nil && ctx.Err() == nil {
			c.Log.Error(err, "Leadership lost; campaigning again", "identity", c.Identity)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return nil
}

func (c *Controller) lead(ctx context.Context) error {
	session, err := concurrency.NewSession(c.Store.Client, concurrency.WithTTL(2), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("election session: %w", err)
	}
	defer session.Close()
	e := concurrency.NewElection(session, store.ElectionPrefix)
	if err := e.Campaign(ctx, c.Identity); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	c.Log.V(1).Info("Elected placement leader", "identity", c.Identity)
	c.leading.Store(true)
	defer c.leading.Store(false)
	if c.OnLead != nil {
		c.OnLead()
	}
	c.written = map[string]string{}
	c.leadingSince = c.Clock.Now()
	changes := c.Store.Changes(ctx, etcdstore.LeaderInputs...)
	tick := time.NewTicker(c.Tick)
	defer tick.Stop()
	// One more look when the start-up grace ends, for groups that waited.
	graceEnd := time.After(c.grace() + 10*time.Millisecond)
	for {
		if err := c.ReconcileAll(ctx, e.Key(), e.Rev()); err != nil && ctx.Err() == nil {
			c.Log.Error(err, "Placement reconcile failed")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-session.Done():
			return fmt.Errorf("election session expired")
		case <-changes:
		case <-tick.C:
		case <-graceEnd:
		}
	}
}

// ReconcileAll decides every group, writes changed decisions and status,
// and finishes deletes that every live node confirmed.
func (c *Controller) ReconcileAll(ctx context.Context, leaderKey string, leaderRev int64) error {
	now := c.Clock.Now()
	snap, err := c.Store.List(ctx)
	if err != nil {
		return err
	}
	nodes, err := etcdstore.GetPrefix[store.NodeInfo](ctx, c.Store, store.Prefix+"nodes/")
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for n := range nodes {
		live[n] = true
	}
	reports, err := etcdstore.GetPrefix[store.Report](ctx, c.Store, store.Prefix+"reports/")
	if err != nil {
		return err
	}
	byGroup := map[string]map[string]store.Report{}
	for _, r := range reports {
		if byGroup[r.Group] == nil {
			byGroup[r.Group] = map[string]store.Report{}
		}
		byGroup[r.Group][r.Node] = r
	}
	decisions, err := c.Store.Decisions(ctx)
	if err != nil {
		return err
	}
	suspended, err := etcdstore.GetPrefix[bool](ctx, c.Store, store.Prefix+"suspend/")
	if err != nil {
		return err
	}
	suspendedNodes := map[string]bool{}
	for k := range suspended {
		if n, ok := strings.CutPrefix(k, "Node/"); ok {
			suspendedNodes[n] = true
		}
	}

	var active, deleting []v1alpha1.Object
	for _, o := range snap.Objects {
		if o.Meta().DeletionTimestamp != nil {
			deleting = append(deleting, o)
		} else {
			active = append(active, o)
		}
	}
	g := graph.Of(active) // validated when stored
	groups := map[string]bool{}
	for gi := range g.Groups {
		grp := &g.Groups[gi]
		groups[grp.Name] = true
	}
	orphans := map[string]store.Decision{}
	for name, d := range decisions {
		if !groups[name] {
			orphans[name] = d
		}
	}
	for gi := range g.Groups {
		grp := &g.Groups[gi]
		view := GroupView{Name: grp.Name, Placement: grp.Placement}
		for _, m := range grp.Members {
			view.Members = append(view.Members, m.String())
			o := g.Object(m)
			if !o.PlacementSpec().IsZero() && o.Meta().Generation > view.Generation {
				view.Generation = o.Meta().Generation
			}
			if suspended[m.Kind+"/"+m.Name] {
				view.Suspended = true
			}
		}
		w := World{Live: live, SuspendedNodes: suspendedNodes, Reports: byGroup[grp.Name], StartupGrace: now.Sub(c.leadingSince) < c.grace()}
		var prev *store.Decision
		if _, ok := decisions[grp.Name]; !ok && len(live) == 0 {
			continue // no node has registered yet: nothing to decide
		}
		if d, ok := decisions[grp.Name]; ok {
			prev = &d
		} else if old, ok := Inherit(view.Members, orphans); ok {
			d := orphans[old]
			delete(orphans, old)
			if err := c.Store.DeleteDecision(ctx, old); err != nil {
				return err
			}
			d.Revision = 0
			prev = &d
			c.Log.Info("Group renamed; keeping its placement", "from", old, "to", grp.Name, "active", d.Active)
		}
		next, changes := Decide(view, prev, w, now)
		if prev == nil || !sameDecision(*prev, next) {
			if prev != nil {
				next.Revision = prev.Revision
			}
			if err := c.Store.PutDecision(ctx, next, leaderKey, leaderRev); err != nil {
				return err
			}
			for _, ch := range changes {
				typ := "Normal"
				if ch.Warning {
					typ = "Warning"
				}
				c.Store.Event(ctx, store.Event{Type: typ, Reason: ch.Reason, Object: "group/" + grp.Name, Node: next.Active, Message: ch.Message})
				c.Log.Info("Placement changed", "group", grp.Name, "reason", ch.Reason, "message", ch.Message)
				if c.OnDecision != nil {
					c.OnDecision(grp.Name, ch)
				}
			}
		}
		for _, m := range grp.Members {
			o := g.Object(m)
			st := ComputeStatus(o, view, next, w, *o.StatusRef(), now)
			key := store.StatusKey(m)
			b, _ := json.Marshal(st)
			if c.written[key] == string(b) {
				continue
			}
			if _, err := c.Store.PutJSON(ctx, key, st); err != nil {
				return err
			}
			c.written[key] = string(b)
		}
	}
	for name := range orphans {
		if err := c.Store.DeleteDecision(ctx, name); err != nil {
			return err
		}
		if _, err := c.Store.Client.Delete(ctx, store.Prefix+"reports/"+name+"/", clientv3.WithPrefix()); err != nil {
			return err
		}
	}
	return c.finishDeletes(ctx, deleting, live)
}

func sameDecision(a, b store.Decision) bool {
	a.Revision, b.Revision = 0, 0
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// finishDeletes removes deleted objects once every live node confirmed they
// are out of service there.
func (c *Controller) finishDeletes(ctx context.Context, deleting []v1alpha1.Object, live map[string]bool) error {
	for _, o := range deleting {
		ref := v1alpha1.RefOf(o)
		acks, err := etcdstore.GetPrefix[bool](ctx, c.Store, store.Prefix+"deleted/"+ref.Kind+"/"+ref.Name+"/")
		if err != nil {
			return err
		}
		done := true
		for n := range live {
			if !acks[n] {
				done = false
			}
		}
		if !done {
			continue
		}
		if err := c.Store.Remove(ctx, ref); err != nil {
			return err
		}
		c.Store.Event(ctx, store.Event{Type: "Normal", Reason: "Deleted", Object: ref.String(), Message: ref.String() + " is out of service on every node and removed"})
	}
	return nil
}
