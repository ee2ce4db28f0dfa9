package placement

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// settled runs the real leader on env until nothing changes, with every
// live node releasing what it is asked to.
func (e *env) settle() {
	e.t.Helper()
	for range 6 {
		e.mustReconcile()
		ds, _ := e.st.Decisions(context.Background())
		live, _ := e.st.Nodes(context.Background())
		for g, d := range ds {
			if d.Target != "" {
				if _, ok := live[d.Releasing]; ok {
					e.report(d.Releasing, g, false)
				}
			} else if d.Active != "" {
				e.report(d.Active, g, true)
			}
		}
		e.clk.Advance(time.Second)
	}
}

func actives(t *testing.T, e *env) map[string]string {
	t.Helper()
	ds, _ := e.st.Decisions(context.Background())
	out := map[string]string{}
	for g, d := range ds {
		out[g] = d.Active
	}
	return out
}

// What-if and reality: the same faults, simulated from the store and then
// made for real on the leader, end with every group on the same node.
func TestSimulateAgreesWithTheLeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []string
		real   func(e *env)
		want   map[string]string
	}{
		{"fail-node", []string{"fail-node=node1"}, func(e *env) { e.st.Expire("node1") },
			map[string]string{"site-0": "node2", "site-1": "node2", "site-2": "node2"}},
		{"drain-node", []string{"drain-node=node2"}, func(e *env) { _ = e.st.SetDrain(context.Background(), "node2", 10) },
			map[string]string{"site-0": "node1", "site-1": "node3", "site-2": "node1"}},
		{"fail-site", []string{"fail-site=site-0"}, func(e *env) {
			_ = e.st.PutReport(context.Background(), store.Report{Node: "node1", Group: "site-0", Active: true, Phase: store.PhaseConverged, Message: "probe failed"})
		}, map[string]string{"site-0": "node2", "site-1": "node2", "site-2": "node1"}},
		{"two nodes at once", []string{"fail-node=node1", "partition-node=node2"}, func(e *env) { e.st.Expire("node1"); e.st.Expire("node2") },
			map[string]string{"site-0": "node3", "site-1": "node3", "site-2": "node3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := testmanifests.Objects(3, testmanifests.Options{Net: 90, Port: 8080, Nodes: []string{"node1", "node2", "node3"}})
			// site-1 prefers node2, then node3.
			for _, o := range objs {
				if s, ok := o.(*v1alpha1.IISSite); ok && s.Metadata.Name == "site-1" {
					s.Spec.Placement.Nodes = []string{"node2", "node3", "node1"}
				}
			}
			e := newEnv(t, objs, "node1", "node2", "node3")
			e.settle()
			sc, err := ReadScenario(context.Background(), e.st)
			if err != nil {
				t.Fatal(err)
			}
			var faults []Fault
			for _, f := range tc.faults {
				ft, err := ParseFault(f)
				if err != nil {
					t.Fatal(err)
				}
				faults = append(faults, ft)
			}
			outs, err := Simulate(sc, faults, e.clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			predicted := map[string]string{}
			for _, o := range outs {
				predicted[o.Group] = o.To
			}
			tc.real(e)
			e.settle()
			if diff := cmp.Diff(tc.want, predicted); diff != "" {
				t.Errorf("what-if (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(predicted, actives(t, e)); diff != "" {
				t.Errorf("what-if and the leader disagree (-what-if +leader):\n%s", diff)
			}
		})
	}
}

func TestSimulateSaysWhyAndWaits(t *testing.T) {
	objs := testmanifests.Objects(1, testmanifests.Options{Net: 90, Port: 8080, Nodes: []string{"node1", "node2"}})
	e := newEnv(t, objs, "node1", "node2")
	e.settle()
	sc, err := ReadScenario(context.Background(), e.st)
	if err != nil {
		t.Fatal(err)
	}
	sc.World.Budgets = map[string]time.Duration{"node1": 1500 * time.Millisecond}
	outs, err := Simulate(sc, []Fault{{"fail-node", "node1"}}, e.clk.Now())
	if err != nil || len(outs) != 1 {
		t.Fatalf("%v %v", outs, err)
	}
	if o := outs[0]; o.From != "node1" || o.To != "node2" || o.Reason != v1alpha1.ReasonFailedOver || o.WaitedFor != 1500*time.Millisecond {
		t.Fatalf("outcome %+v, want node1 -> node2, FailedOver, after node1's 1.5s take-down budget", o)
	}
	outs, _ = Simulate(sc, []Fault{{"fail-node", "node1"}, {"fail-node", "node2"}}, e.clk.Now())
	if o := outs[0]; o.To != "" || o.Reason != v1alpha1.ReasonNoHealthyNode {
		t.Fatalf("both nodes down: %+v, want no node and NoHealthyNode", o)
	}
	if _, err := ParseFault("explode=node1"); err == nil {
		t.Fatal("an unknown fault was accepted")
	}
	// The scenario itself is not changed.
	if !sc.World.Live["node1"] {
		t.Fatal("Simulate changed the scenario it was given")
	}
}
