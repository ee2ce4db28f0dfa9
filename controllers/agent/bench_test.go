package agent

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// BenchmarkConverge100SimSites: observe, plan and execute from an empty
// simulated node to 100 started sites (100 groups), each really listening.
func BenchmarkConverge100SimSites(b *testing.B) {
	var objs []v1alpha1.Object
	for i := 0; i < 100; i++ {
		ip := &v1alpha1.IPResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIPResource}}
		ip.Metadata.Name = fmt.Sprintf("vip-%d", i)
		ip.Spec.Address = fmt.Sprintf("127.2.0.%d/32", i+1)
		s := &v1alpha1.IISSite{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIISSite}}
		s.Metadata.Name = fmt.Sprintf("site-%d", i)
		s.Spec.SiteID = int64(i + 1)
		s.Spec.PhysicalPath = fmt.Sprintf(`C:\ClusterStorage\v%d\www`, i)
		s.Spec.Bindings = []v1alpha1.Binding{{Protocol: "http", IPRef: ip.Metadata.Name, Port: 18080}}
		s.Spec.Placement.Nodes = []string{"node1"}
		vol := &v1alpha1.VolumeResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindVolumeResource}}
		vol.Metadata.Name = fmt.Sprintf("vol-%d", i)
		vol.Spec.MountPath = fmt.Sprintf(`C:\ClusterStorage\v%d`, i)
		vol.Spec.Source.SharedDisk = &v1alpha1.SharedDiskSource{UniqueID: fmt.Sprintf("DISK%04d", i)}
		objs = append(objs, ip, s, vol)
	}
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
