package plan_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func load(t *testing.T) []v1alpha1.Object {
	t.Helper()
	docs, res := manifest.LoadAndValidate([]string{"testdata/web.yaml"}, manifest.Options{})
	if len(res.Errors) > 0 {
		t.Fatalf("testdata invalid: %v", res.Errors)
	}
	return manifest.Objects(docs)
}

func desired(t *testing.T, objs []v1alpha1.Object, active string) *plan.Desired {
	t.Helper()
	res := validation.Validate(objs)
	if len(res.Errors) > 0 {
		t.Fatalf("invalid: %v", res.Errors)
	}
	d := &plan.Desired{Graph: res.Graph, Active: map[string]string{}, Applied: map[string]map[v1alpha1.Ref]plan.Applied{}}
	for _, g := range res.Graph.Groups {
		d.Active[g.Name] = active
	}
	return d
}

func observe(t *testing.T, name string, n *fake.Node) plan.Observed {
	t.Helper()
	o, err := plan.Observe(context.Background(), name, n)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// converge runs the node's plan and records the generations as applied.
func converge(t *testing.T, d *plan.Desired, name string, n *fake.Node) {
	t.Helper()
	for _, s := range plan.Compute(d, observe(t, name, n)) {
		if err := plan.Execute(context.Background(), n, s); err != nil {
			t.Fatal(err)
		}
	}
	n.TakeCalls()
	if d.Applied[name] == nil {
		d.Applied[name] = map[v1alpha1.Ref]plan.Applied{}
	}
	for _, g := range d.Graph.Groups {
		for _, m := range g.Members {
			d.Applied[name][m] = plan.Applied{Generation: d.Graph.Object(m).Meta().Generation, Active: d.Active[g.Name] == name}
		}
	}
	if p := plan.Compute(d, observe(t, name, n)); len(p) != 0 {
		t.Fatalf("not converged after executing the plan:\n%s", p)
	}
}

func site(objs []v1alpha1.Object) *v1alpha1.IISSite {
	for _, o := range objs {
		if s, ok := o.(*v1alpha1.IISSite); ok {
			return s
		}
	}
	return nil
}

func golden(t *testing.T, name string, got plan.Plan) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("plan differs from %s (-want +got):\n%s", path, diff)
	}
}

func actions(p plan.Plan) []string {
	var out []string
	for _, s := range p {
		out = append(out, s.Node+" "+string(s.Action)+" "+s.Target)
	}
	return out
}

func TestPlans(t *testing.T) {
	tests := []struct {
		name string
		// change edits the spec or the node after both nodes converged
		// with the group active on node1.
		change func(objs []v1alpha1.Object, n1, n2 *fake.Node, d *plan.Desired)
		want   []string
	}{
		{
			name: "converged",
			want: nil,
		},
		{
			name: "hostname-change",
			change: func(objs []v1alpha1.Object, _, _ *fake.Node, _ *plan.Desired) {
				s := site(objs)
				s.Spec.Bindings[0].HostName = "shop.example.com"
				s.Metadata.Generation = 2
			},
			want: []string{"node1 UpdateBindings IISSite/WebSite1", "node2 UpdateBindings IISSite/WebSite1"},
		},
		{
			name: "path-change",
			change: func(objs []v1alpha1.Object, _, _ *fake.Node, _ *plan.Desired) {
				s := site(objs)
				s.Spec.PhysicalPath = `E:\sites\v2`
				s.Metadata.Generation = 2
			},
			want: []string{"node1 SetPhysicalPath IISSite/WebSite1", "node2 SetPhysicalPath IISSite/WebSite1"},
		},
		{
			name: "rename",
			change: func(objs []v1alpha1.Object, _, _ *fake.Node, _ *plan.Desired) {
				s := site(objs)
				s.Metadata.Name = "Shop"
				s.Metadata.Generation = 2
			},
			want: []string{"node1 RenameSite IISSite/Shop", "node2 RenameSite IISSite/Shop"},
		},
		{
			name: "switchover",
			change: func(_ []v1alpha1.Object, _, _ *fake.Node, d *plan.Desired) {
				d.Active["WebSite1"] = "node2"
			},
			want: []string{
				"node1 StopSite IISSite/WebSite1", "node1 RemoveAddress IPResource/vip-web1", "node1 VolumeOffline VolumeResource/vol-web1",
				"node2 VolumeOnline VolumeResource/vol-web1", "node2 AddAddress IPResource/vip-web1", "node2 StartSite IISSite/WebSite1",
			},
		},
		{
			name: "drift",
			change: func(_ []v1alpha1.Object, n1, _ *fake.Node, _ *plan.Desired) {
				s := n1.Sites[2]
				s.State = backend.SiteStopped
				s.AutoStart = true
				s.Bindings[0].Port = 8081
				delete(n1.Addrs, "127.0.10.1")
				n1.Vols["Mirror:E"] = backend.Volume{ID: backend.VolumeID{Kind: "Mirror", ID: "E"}, Root: `E:\`}
			},
			want: []string{
				"node1 VolumeOnline VolumeResource/vol-web1", "node1 AddAddress IPResource/vip-web1",
				"node1 UpdateBindings IISSite/WebSite1", "node1 SetAutoStart IISSite/WebSite1", "node1 StartSite IISSite/WebSite1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := load(t)
			d := desired(t, objs, "node1")
			n1, n2 := fake.New(), fake.New()
			converge(t, d, "node1", n1)
			converge(t, d, "node2", n2)
			if tt.change != nil {
				tt.change(objs, n1, n2, d)
				active := d.Active["WebSite1"]
				d2 := desired(t, objs, active)
				d2.Applied = d.Applied
				d = d2
			}
			got := plan.ComputeCluster(d, []plan.Observed{observe(t, "node1", n1), observe(t, "node2", n2)})
			if diff := cmp.Diff(tt.want, actions(got)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			golden(t, tt.name, got)
		})
	}
}

func TestFreshNodes(t *testing.T) {
	objs := load(t)
	d := desired(t, objs, "node1")
	active := plan.Compute(d, plan.Observed{Node: "node1"})
	if diff := cmp.Diff([]string{"node1 VolumeOnline VolumeResource/vol-web1", "node1 AddAddress IPResource/vip-web1", "node1 CreateSite IISSite/WebSite1", "node1 StartSite IISSite/WebSite1"}, actions(active)); diff != "" {
		t.Errorf("fresh active node (-want +got):\n%s", diff)
	}
	golden(t, "fresh-active", active)
	standby := plan.Compute(d, plan.Observed{Node: "node2"})
	if diff := cmp.Diff([]string{"node2 CreateSite IISSite/WebSite1"}, actions(standby)); diff != "" {
		t.Errorf("new standby node (-want +got):\n%s", diff)
	}
	if standby[0].Site.AutoStart {
		t.Errorf("standby instance created with serverAutoStart=true")
	}
	golden(t, "new-standby", standby)
}

func TestFailedStepStopsNothingElseRuns(t *testing.T) {
	objs := load(t)
	d := desired(t, objs, "node1")
	n := fake.New()
	n.Fail["AddAddress"] = backend.ErrAddressInUse
	var ran []string
	for _, s := range plan.Compute(d, observe(t, "node1", n)) {
		if err := plan.Execute(context.Background(), n, s); err != nil {
			break
		}
		ran = append(ran, string(s.Action))
	}
	if diff := cmp.Diff([]string{"BringOnline Mirror:E", "AddAddress 127.0.10.1/32"}, n.TakeCalls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"VolumeOnline"}, ran); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}
