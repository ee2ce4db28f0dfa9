package agent

import (
	"context"
	"testing"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// BenchmarkConverge100SimSites: observe, plan and execute from an empty
// simulated node to 100 started sites (100 groups), each really listening.
func BenchmarkConverge100SimSites(b *testing.B) {
	objs := testmanifests.Objects(100, testmanifests.Options{Net: 2, Port: 18080, Nodes: []string{"node1"}})
	res := validation.Validate(objs)
	if len(res.Errors) > 0 {
		b.Fatal(res.Errors[0])
	}
	d := &plan.Desired{Graph: res.Graph, Active: map[string]string{}}
	for _, g := range res.Graph.Groups {
		d.Active[g.Name] = "node1"
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w := sim.NewWorld(b.TempDir(), logr.Discard())
		n := w.Node("node1")
		a := &Agent{Node: "node1", Backend: n, Source: staticSource{d}, Log: logr.Discard()}
		b.StartTimer()
		for _, g := range res.Graph.Groups {
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
