package plan_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// manySites returns n groups, each a site with its own IP and volume.
func manySites(n int) []v1alpha1.Object {
	var objs []v1alpha1.Object
	for i := 0; i < n; i++ {
		ip := &v1alpha1.IPResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIPResource}}
		ip.Metadata.Name = fmt.Sprintf("vip-%d", i)
		ip.Spec.Address = fmt.Sprintf("127.1.%d.%d/32", i/250, i%250+1)
		vol := &v1alpha1.VolumeResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindVolumeResource}}
		vol.Metadata.Name = fmt.Sprintf("vol-%d", i)
		vol.Spec.MountPath = fmt.Sprintf(`C:\ClusterStorage\v%d`, i)
		vol.Spec.Source.SharedDisk = &v1alpha1.SharedDiskSource{UniqueID: fmt.Sprintf("DISK%06d", i)}
		s := &v1alpha1.IISSite{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIISSite}}
		s.Metadata.Name = fmt.Sprintf("site-%d", i)
		s.Metadata.Generation = 1
		s.Spec.SiteID = int64(i + 1)
		s.Spec.PhysicalPath = fmt.Sprintf(`C:\ClusterStorage\v%d\www`, i)
		s.Spec.Bindings = []v1alpha1.Binding{{Protocol: "http", IPRef: ip.Metadata.Name, Port: 8080}}
		s.Spec.Placement.Nodes = []string{"node1", "node2"}
		objs = append(objs, ip, vol, s)
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
