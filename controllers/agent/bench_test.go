package agent

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// BenchmarkConverge100SimSites: observe, plan and execute from an empty
// simulated node to 100 started sites (100 groups), each really listening.
func BenchmarkConverge100SimSites(b *testing.B) {
	d := groupsOnNode1(b, 100)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w := sim.NewWorld(b.TempDir(), logr.Discard())
		n := w.Node("node1")
		a := &Agent{Node: "node1", Backend: n, Source: staticSource{d}, Log: logr.Discard()}
		b.StartTimer()
		for _, g := range d.Graph.Groups {
			if _, err := a.Reconcile(ctx, g.Name); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		sites, _ := n.ListSites(ctx)
		started := 0
		for _, s := range sites {
			if s.State == backend.SiteStarted {
				started++
			}
		}
		if started != 100 {
			b.Fatalf("%d sites started, want 100", started)
		}
		n.PowerOff()
		w.Close()
		b.StartTimer()
	}
}

// BenchmarkReconcileConvergedGroup: one group's reconcile on a converged
// node holding n groups (fake backend): observe, plan, take-down budget,
// report. It should not grow with n beyond the look at the node.
func BenchmarkReconcileConvergedGroup(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			d := groupsOnNode1(b, n)
			ctx := context.Background()
			a := &Agent{Node: "node1", Backend: fake.New(), Source: staticSource{d}, Log: logr.Discard()}
			for _, g := range d.Graph.Groups {
				if _, err := a.Reconcile(ctx, g.Name); err != nil {
					b.Fatal(err)
				}
			}
			group := d.Graph.Groups[0].Name
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := a.Reconcile(ctx, group); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// groupsOnNode1 is the desired state of n generated groups, all active on
// node1.
func groupsOnNode1(b *testing.B, n int) *plan.Desired {
	b.Helper()
	res := validation.Validate(testmanifests.Objects(n, testmanifests.Options{Net: 2, Port: 18080, Nodes: []string{"node1"}}))
	if len(res.Errors) > 0 {
		b.Fatal(res.Errors[0])
	}
	d := &plan.Desired{Graph: res.Graph, Active: map[string]string{}}
	for _, g := range d.Graph.Groups {
		d.Active[g.Name] = "node1"
	}
	return d
}
