package graph

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
)

func ip(name, addr string) *v1alpha1.IPResource {
	o := &v1alpha1.IPResource{Spec: v1alpha1.IPResourceSpec{Address: addr}}
	o.Kind, o.Metadata.Name = "IPResource", name
	return o
}

func vol(name, root string) *v1alpha1.VolumeResource {
	o := &v1alpha1.VolumeResource{}
	if len(root) == 2 {
		o.Spec.DriveLetter = root
	} else {
		o.Spec.MountPath = root
	}
	o.Kind, o.Metadata.Name = "VolumeResource", name
	return o
}

func site(name, path string, nodes []string, ips ...string) *v1alpha1.IISSite {
	o := &v1alpha1.IISSite{}
	o.Kind, o.Metadata.Name = "IISSite", name
	o.Spec.PhysicalPath = path
	o.Spec.Placement = v1alpha1.Placement{Nodes: nodes}
	for _, r := range ips {
		o.Spec.Bindings = append(o.Spec.Bindings, v1alpha1.Binding{Protocol: "http", IPRef: r, Port: 80})
	}
	return o
}

// summary is "group: members" for each group, in order.
func summary(g *Graph) []string {
	var out []string
	for _, grp := range g.Groups {
		s := grp.Name + ":"
		for _, m := range grp.Members {
			s += " " + m.String()
		}
		out = append(out, s)
	}
	return out
}

func TestGroups(t *testing.T) {
	nodes := []string{"node1", "node2"}
	tests := []struct {
		name string
		objs []v1alpha1.Object
		want []string
	}{
		{"nothing", nil, nil},
		{"one site with its IP and volume",
			[]v1alpha1.Object{ip("vip1", "10.0.0.1/24"), vol("e", "E:"), site("web1", `E:\web1`, nodes, "vip1")},
			[]string{"web1: IISSite/web1 IPResource/vip1 VolumeResource/e"}},
		{"two sites, own IPs and volumes: two groups",
			[]v1alpha1.Object{ip("vip1", "10.0.0.1/24"), ip("vip2", "10.0.0.2/24"), vol("e", "E:"), vol("f", "F:"),
				site("web2", `F:\w`, nodes, "vip2"), site("web1", `E:\w`, nodes, "vip1")},
			[]string{"web1: IISSite/web1 IPResource/vip1 VolumeResource/e", "web2: IISSite/web2 IPResource/vip2 VolumeResource/f"}},
		{"two sites sharing an IP move together",
			[]v1alpha1.Object{ip("vip", "10.0.0.1/24"), vol("e", "E:"), vol("f", "F:"),
				site("b", `F:\w`, nodes, "vip"), site("a", `E:\w`, nodes, "vip")},
			[]string{"a: IISSite/a IISSite/b IPResource/vip VolumeResource/e VolumeResource/f"}},
		{"two sites sharing a volume move together",
			[]v1alpha1.Object{ip("vip1", "10.0.0.1/24"), ip("vip2", "10.0.0.2/24"), vol("e", "E:"),
				site("b", `E:\b`, nodes, "vip2"), site("a", `e:/A`, nodes, "vip1")},
			[]string{"a: IISSite/a IISSite/b IPResource/vip1 IPResource/vip2 VolumeResource/e"}},
		{"the deepest mount holds the path",
			[]v1alpha1.Object{ip("vip1", "10.0.0.1/24"), ip("vip2", "10.0.0.2/24"), vol("c", `C:\ClusterStorage`), vol("v1", `C:\ClusterStorage\v1`),
				site("a", `C:\ClusterStorage\v1\www`, nodes, "vip1"), site("b", `C:\ClusterStorage\other`, nodes, "vip2")},
			[]string{"a: IISSite/a IPResource/vip1 VolumeResource/v1", "b: IISSite/b IPResource/vip2 VolumeResource/c"}},
		{"an unused resource is a group of its own",
			[]v1alpha1.Object{ip("spare", "10.0.0.9/24")},
			[]string{"spare: IPResource/spare"}},
		{"a reference that does not resolve is left out",
			[]v1alpha1.Object{vol("e", "E:"), site("web1", `E:\w`, nodes, "missing")},
			[]string{"web1: IISSite/web1 VolumeResource/e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := Build(tt.objs)
			if diff := cmp.Diff(tt.want, summary(g)); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
			for _, grp := range g.Groups {
				for _, m := range grp.Members {
					if got, ok := g.GroupOf(m); !ok || got.Name != grp.Name {
						t.Errorf("GroupOf(%s) = %v, want %s", m, got, grp.Name)
					}
					if g.Object(m) == nil {
						t.Errorf("Object(%s) = nil", m)
					}
				}
			}
		})
	}
}

func TestGroupPlacementComesFromAMemberThatDeclaresIt(t *testing.T) {
	a := site("a", `E:\a`, nil, "vip")
	b := site("b", `E:\b`, []string{"node2", "node1"}, "vip")
	g := Build([]v1alpha1.Object{ip("vip", "10.0.0.1/24"), vol("e", "E:"), a, b})
	grp, ok := g.Group("a")
	if !ok {
		t.Fatalf("no group a: %v", summary(g))
	}
	if diff := cmp.Diff([]string{"node2", "node1"}, grp.Placement.Nodes); diff != "" {
		t.Errorf("placement (-want +got):\n%s", diff)
	}
}

func TestParseWinPath(t *testing.T) {
	tests := []struct {
		in   string
		want WinPath
		ok   bool
	}{
		{`E:\Web\One`, WinPath{Drive: "E", Parts: []string{"web", "one"}}, true},
		{`e:/web/`, WinPath{Drive: "E", Parts: []string{"web"}}, true},
		{`E:`, WinPath{Drive: "E"}, true},
		{`E:web`, WinPath{}, false},
		{`E:\a\..\b`, WinPath{}, false},
		{`\\server\share`, WinPath{}, false},
		{`web`, WinPath{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseWinPath(tt.in)
		if ok != tt.ok || (ok && !cmp.Equal(tt.want, got)) {
			t.Errorf("ParseWinPath(%q) = %+v, %t; want %+v, %t", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestVolumeIndexFor(t *testing.T) {
	ix := NewVolumeIndex([]*v1alpha1.VolumeResource{vol("e", "E:"), vol("deep", `E:\Sites\Deep`)})
	tests := map[string]string{
		`E:\x`:            "e",
		`e:\sites\deep\a`: "deep",
		`E:\Sites\Deeper`: "e",
		`F:\x`:            "",
		`relative`:        "",
	}
	for path, want := range tests {
		got := ""
		if v := ix.For(path); v != nil {
			got = v.Metadata.Name
		}
		if got != want {
			t.Errorf("For(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestMemoBuildsAgainOnlyOnChange: the same objects give the very same
// graph; a changed object (another value) gives a new one.
func TestMemoBuildsAgainOnlyOnChange(t *testing.T) {
	objs := []v1alpha1.Object{ip("a", "127.0.0.1/32"), site("s1", `C:\a`, []string{"node1"}, "a"), ip("b", "127.0.0.2/32"), site("s2", `C:\b`, []string{"node1"}, "b")}
	var m Memo
	g1 := m.Of(objs)
	if g2 := m.Of(slices.Clone(objs)); g2 != g1 {
		t.Errorf("the same objects built the graph again")
	}
	changed := slices.Clone(objs)
	changed[0] = v1alpha1.DeepCopy(objs[0])
	if g3 := m.Of(changed); g3 == g1 || len(g3.Groups) != 2 {
		t.Errorf("a changed object did not build a new graph (%d groups)", len(g3.Groups))
	}
}
