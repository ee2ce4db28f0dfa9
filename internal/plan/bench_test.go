package plan_test

import (
	"context"
	"testing"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// manySites returns n groups, each a site with its own IP and volume.
func manySites(n int) []v1alpha1.Object {
	objs := testmanifests.Objects(n, testmanifests.Options{Net: 1, Port: 8080, Nodes: []string{"node1", "node2"}})
	for _, o := range objs {
		if o.GetKind() == v1alpha1.KindIISSite {
			o.Meta().Generation = 1
		}
	}
	return objs
}

func benchDesired(b *testing.B, n int) (*plan.Desired, plan.Observed) {
	objs := manySites(n)
	res := validation.Validate(objs)
	if len(res.Errors) > 0 {
		b.Fatal(res.Errors[0])
	}
	d := &plan.Desired{Graph: res.Graph, Active: map[string]string{}}
	for _, g := range res.Graph.Groups {
		d.Active[g.Name] = "node1"
	}
	node := fake.New()
	for _, s := range plan.Compute(d, plan.Observed{Node: "node1"}) {
		if err := plan.Execute(context.Background(), node, s); err != nil {
			b.Fatal(err)
		}
	}
	obs, err := plan.Observe(context.Background(), "node1", node)
	if err != nil {
		b.Fatal(err)
	}
	if p := plan.Compute(d, obs); len(p) != 0 {
		b.Fatalf("not converged: %d steps", len(p))
	}
	return d, obs
}

// BenchmarkComputeConverged1000: the plan of a converged node with 1,000 sites.
func BenchmarkComputeConverged1000(b *testing.B) {
	d, obs := benchDesired(b, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p := plan.Compute(d, obs); len(p) != 0 {
			b.Fatal("steps on a converged node")
		}
	}
}

// BenchmarkComputeOneChange1000: the same node after one host-name change.
func BenchmarkComputeOneChange1000(b *testing.B) {
	d, obs := benchDesired(b, 1000)
	obs.Sites[500].Bindings[0].HostName = "changed.example.com"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p := plan.Compute(d, obs); len(p) != 1 {
			b.Fatalf("%d steps, want 1", len(p))
		}
	}
}
