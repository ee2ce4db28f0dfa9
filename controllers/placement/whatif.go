package placement

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Fault is one what-if fault: fail-node=NODE, partition-node=NODE,
// drain-node=NODE or fail-site=SITE.
type Fault struct {
	Kind, Target string
}

func (f Fault) String() string { return f.Kind + "=" + f.Target }

// FaultKinds are the faults Simulate knows.
var FaultKinds = []string{"fail-node", "partition-node", "drain-node", "fail-site"}

// ParseFault reads "fail-node=node1".
func ParseFault(s string) (Fault, error) {
	kind, target, ok := strings.Cut(s, "=")
	if !ok || target == "" || !slices.Contains(FaultKinds, kind) {
		return Fault{}, fmt.Errorf("%q: give KIND=NAME, KIND one of %s (fail-node=node1)", s, strings.Join(FaultKinds, ", "))
	}
	return Fault{Kind: kind, Target: target}, nil
}

// Scenario is the cluster as the placement leader sees it: what Simulate
// starts from.
type Scenario struct {
	Graph     *graph.Graph
	Suspended store.Suspensions
	Decisions map[string]store.Decision
	// Reports is group -> node -> that node's report.
	Reports map[string]map[string]store.Report
	// World is everything else the leader decides from (Reports aside).
	World World
}

// ViewOf is the group as Decide sees it (the leader's own reading).
func ViewOf(g *graph.Graph, grp *graph.Group, suspended store.Suspensions) GroupView {
	view := GroupView{Name: grp.Name, Placement: grp.Placement}
	for _, m := range grp.Members {
		view.Members = append(view.Members, m.String())
		o := g.Object(m)
		if !o.PlacementSpec().IsZero() && o.Meta().Generation > view.Generation {
			view.Generation = o.Meta().Generation
		}
		if suspended.Object(m) {
			view.Suspended = true
		}
		if tok := o.Meta().Annotations[v1alpha1.AnnotationSwitchover]; tok > view.SwitchoverToken {
			view.SwitchoverToken = tok
		}
	}
	return view
}

// Outcome is what a group would do under the faults.
type Outcome struct {
	Group string `json:"group"`
	// From is the node serving it before; To the node serving it after
	// ("" when none could).
	From string `json:"from"`
	To   string `json:"to"`
	// Reason and Message are the decision's, as the leader would write it.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// WaitedFor is the take-down budget the move waits out (a node that
	// cannot confirm its release).
	WaitedFor time.Duration `json:"waitedFor,omitempty"`
}

// Moved says the group changes nodes.
func (o Outcome) Moved() bool { return o.From != o.To }

// Simulate applies faults to the scenario and runs the leader's own
// decision (Decide) for every group until it settles: a node that is
// alive releases what it is asked to, one that is not has its take-down
// budget waited out. It changes nothing in sc and reads no clock.
func Simulate(sc Scenario, faults []Fault, now time.Time) ([]Outcome, error) {
	w := sc.World
	w.Live, w.Draining = maps.Clone(w.Live), maps.Clone(w.Draining)
	if w.Draining == nil {
		w.Draining = map[string]bool{}
	}
	w.StartupGrace = false
	reports := map[string]map[string]store.Report{}
	for g, rs := range sc.Reports {
		reports[g] = maps.Clone(rs)
	}
	for _, f := range faults {
		switch f.Kind {
		case "fail-node", "partition-node":
			// Either way its lease expires and it fences itself.
			delete(w.Live, f.Target)
		case "drain-node":
			w.Draining[f.Target] = true
		case "fail-site":
			grp, ok := sc.Graph.GroupOf(v1alpha1.Ref{Kind: v1alpha1.KindIISSite, Name: f.Target})
			if !ok {
				return nil, fmt.Errorf("fail-site=%s: no such site", f.Target)
			}
			active := sc.Decisions[grp.Name].Active
			if reports[grp.Name] == nil {
				reports[grp.Name] = map[string]store.Report{}
			}
			reports[grp.Name][active] = store.Report{Node: active, Group: grp.Name, Active: true, Phase: store.PhaseConverged,
				Message: "IISSite/" + f.Target + " fails its health checks after its local restarts (simulated)"}
		}
	}
	var out []Outcome
	for gi := range sc.Graph.Groups {
		grp := &sc.Graph.Groups[gi]
		view := ViewOf(sc.Graph, grp, sc.Suspended)
		prev, placed := sc.Decisions[grp.Name]
		o := Outcome{Group: grp.Name, From: prev.Active}
		var d *store.Decision
		if placed {
			d = &prev
		}
		gw := w
		gw.Reports = reports[grp.Name]
		if gw.Reports == nil {
			gw.Reports = map[string]store.Report{}
		}
		t := now
		for range 8 {
			next, changes := Decide(view, d, gw, t)
			if len(changes) > 0 && o.Reason == "" {
				o.Reason, o.Message = changes[0].Reason, changes[0].Message
			}
			settled := d != nil && sameDecision(*d, next)
			d = &next
			if settled {
				break
			}
			if next.Target == "" {
				continue // one more look: a switchback may follow
			}
			if gw.Live[next.Releasing] {
				gw.Reports = maps.Clone(gw.Reports)
				gw.Reports[next.Releasing] = store.Report{Node: next.Releasing, Group: grp.Name, Phase: store.PhaseConverged, Released: true, Decided: next.Since}
			} else if next.ReleaseAfter.After(t) {
				o.WaitedFor += next.ReleaseAfter.Sub(t)
				t = next.ReleaseAfter
			}
		}
		o.To = d.Active
		if o.To == "" {
			o.To = d.Target
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b Outcome) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

// ReadScenario reads the scenario from the store the way the leader reads
// its inputs (the same code), for what-if planning against a running
// cluster.
func ReadScenario(ctx context.Context, st Store) (Scenario, error) {
	c := &Controller{Store: st, Log: logr.Discard(), Recorder: record.Discard}
	in, err := c.read(ctx, nil)
	if err != nil {
		return Scenario{}, err
	}
	draining := map[string]bool{}
	for n, p := range in.drains {
		draining[n] = p > 0
	}
	return Scenario{Graph: in.graph, Suspended: in.suspended, Decisions: in.decisions, Reports: in.reports,
		World: World{Live: in.live, SuspendedNodes: in.suspendedNodes, Budgets: in.budgets, Unsafe: in.unsafe, Draining: draining}}, nil
}
