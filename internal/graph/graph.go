// Package graph derives the dependencies between objects (a site depends on
// the IPResources its bindings name and on the VolumeResource holding its
// physical path) and the resource groups: the connected components, each
// always active on exactly one node.
package graph

import (
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
)

// Coupling is one dependency edge: a site on a resource.
type Coupling struct {
	Site     v1alpha1.Ref
	Resource v1alpha1.Ref
	// Via is "binding" for an IP, "physicalPath" for a volume.
	Via string
}

// Group is one resource group.
type Group struct {
	// Name is the group's key: its first site's name, else its first member's.
	Name string `json:"name"`
	// Members in kind order (sites, IPs, volumes), then by name.
	Members []v1alpha1.Ref `json:"members"`
	// Placement is the placement declared by the group's members (the first
	// that declares one, in member order).
	Placement v1alpha1.Placement `json:"placement"`
	// Couplings are the edges that tie the members together.
	Couplings []Coupling `json:"-"`
}

// Graph is the dependency graph of one set of objects.
type Graph struct {
	Groups  []Group
	groupOf map[v1alpha1.Ref]int
	objects map[v1alpha1.Ref]v1alpha1.Object
}

// GroupOf returns the group holding ref.
func (g *Graph) GroupOf(ref v1alpha1.Ref) (*Group, bool) {
	i, ok := g.groupOf[ref]
	if !ok {
		return nil, false
	}
	return &g.Groups[i], true
}

// Group returns the group named name.
func (g *Graph) Group(name string) (*Group, bool) {
	for i := range g.Groups {
		if g.Groups[i].Name == name {
			return &g.Groups[i], true
		}
	}
	return nil, false
}

// Object returns the object of ref.
func (g *Graph) Object(ref v1alpha1.Ref) v1alpha1.Object { return g.objects[ref] }

// VolumeIndex finds the volume holding a path; build it once per set.
type VolumeIndex struct {
	byRoot map[string]*v1alpha1.VolumeResource
}

func rootKey(drive string, parts []string) string {
	return drive + `:\` + strings.Join(parts, `\`)
}

// NewVolumeIndex parses every volume's root once.
func NewVolumeIndex(vols []*v1alpha1.VolumeResource) *VolumeIndex {
	ix := &VolumeIndex{byRoot: map[string]*v1alpha1.VolumeResource{}}
	for _, v := range vols {
		if root, ok := VolumeRoot(v); ok {
			k := rootKey(root.Drive, root.Parts)
			if _, dup := ix.byRoot[k]; !dup {
				ix.byRoot[k] = v
			}
		}
	}
	return ix
}

// For returns the volume holding path, the deepest mount winning, or nil.
func (ix *VolumeIndex) For(path string) *v1alpha1.VolumeResource {
	p, ok := ParseWinPath(path)
	if !ok {
		return nil
	}
	for k := len(p.Parts); k >= 0; k-- {
		if v, ok := ix.byRoot[rootKey(p.Drive, p.Parts[:k])]; ok {
			return v
		}
	}
	return nil
}

// VolumeRoot returns the path where v appears on a node.
func VolumeRoot(v *v1alpha1.VolumeResource) (WinPath, bool) {
	if v.Spec.DriveLetter != "" {
		return ParseWinPath(v.Spec.DriveLetter[:1] + `:\`)
	}
	return ParseWinPath(v.Spec.MountPath)
}

// Of defaults objs in place and derives their graph: for sets that were
// validated when they were stored, where running every rule again would
// be wasted work on a hot path.
func Of(objs []v1alpha1.Object) *Graph {
	for _, o := range objs {
		v1alpha1.Default(o)
	}
	return Build(objs)
}

// Memo remembers the last graph built and the objects it was built from:
// the very same objects (the same values, as a caching store hands out
// for what did not change) give the same graph without building it again.
// A leader or an agent of thousands of groups reads the desired state
// several times a second while little changes; building the graph each
// time was a third of a pass. The graph is shared: read it only.
type Memo struct {
	mu   sync.Mutex
	objs []v1alpha1.Object
	g    *Graph
}

// Of is graph.Of through the memo.
func (m *Memo) Of(objs []v1alpha1.Object) *Graph {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.g != nil && slices.Equal(objs, m.objs) {
		return m.g
	}
	m.g, m.objs = Of(objs), slices.Clone(objs)
	return m.g
}

// Build derives the graph of objs. References that do not resolve are left
// out (validation reports them).
func Build(objs []v1alpha1.Object) *Graph {
	g := &Graph{groupOf: map[v1alpha1.Ref]int{}, objects: map[v1alpha1.Ref]v1alpha1.Object{}}
	var refs []v1alpha1.Ref
	var vols []*v1alpha1.VolumeResource
	for _, o := range objs {
		r := v1alpha1.RefOf(o)
		if _, dup := g.objects[r]; dup {
			continue
		}
		g.objects[r] = o
		refs = append(refs, r)
		if v, ok := o.(*v1alpha1.VolumeResource); ok {
			vols = append(vols, v)
		}
	}
	sortRefs(refs)
	volIndex := NewVolumeIndex(vols)

	parent := map[v1alpha1.Ref]v1alpha1.Ref{}
	var find func(v1alpha1.Ref) v1alpha1.Ref
	find = func(r v1alpha1.Ref) v1alpha1.Ref {
		p, ok := parent[r]
		if !ok || p == r {
			return r
		}
		root := find(p)
		parent[r] = root
		return root
	}
	union := func(a, b v1alpha1.Ref) {
		ra, rb := find(a), find(b)
		if ra != rb {
			parent[rb] = ra
		}
	}
	var edges []Coupling
	for _, r := range refs {
		s, ok := g.objects[r].(*v1alpha1.IISSite)
		if !ok {
			continue
		}
		seen := map[string]bool{}
		for _, b := range s.Spec.Bindings {
			ip := v1alpha1.Ref{Kind: v1alpha1.KindIPResource, Name: b.IPRef}
			if _, ok := g.objects[ip]; !ok || seen[b.IPRef] {
				continue
			}
			seen[b.IPRef] = true
			edges = append(edges, Coupling{Site: r, Resource: ip, Via: "binding"})
			union(r, ip)
		}
		if v := volIndex.For(s.Spec.PhysicalPath); v != nil {
			vr := v1alpha1.RefOf(v)
			edges = append(edges, Coupling{Site: r, Resource: vr, Via: "physicalPath"})
			union(r, vr)
		}
	}
	byRoot := map[v1alpha1.Ref]int{}
	for _, r := range refs {
		root := find(r)
		i, ok := byRoot[root]
		if !ok {
			i = len(g.Groups)
			byRoot[root] = i
			g.Groups = append(g.Groups, Group{})
		}
		g.Groups[i].Members = append(g.Groups[i].Members, r)
		g.groupOf[r] = i
	}
	for _, e := range edges {
		i := g.groupOf[e.Site]
		g.Groups[i].Couplings = append(g.Groups[i].Couplings, e)
	}
	for i := range g.Groups {
		grp := &g.Groups[i]
		grp.Name = grp.Members[0].Name // refs are sorted: a site first if any
		for _, m := range grp.Members {
			if p := g.objects[m].PlacementSpec(); !p.IsZero() {
				grp.Placement = *p
				break
			}
		}
	}
	sort.Slice(g.Groups, func(i, j int) bool { return g.Groups[i].Name < g.Groups[j].Name })
	for i := range g.Groups {
		for _, m := range g.Groups[i].Members {
			g.groupOf[m] = i
		}
	}
	return g
}

func sortRefs(refs []v1alpha1.Ref) {
	sort.Slice(refs, func(i, j int) bool {
		a, b := refs[i], refs[j]
		if a.Kind != b.Kind {
			return v1alpha1.KindOrder(a.Kind) < v1alpha1.KindOrder(b.Kind)
		}
		return a.Name < b.Name
	})
}
