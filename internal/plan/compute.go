package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// Desired is what should be true everywhere.
type Desired struct {
	// Graph holds the valid, defaulted objects and their groups.
	Graph *graph.Graph
	// Active maps a group name to the node that should serve it; a group
	// missing or mapped to "" is served nowhere.
	Active map[string]string
	// Moving maps a group to the node it moves to, while its old node
	// releases it (for the reason of the take-down steps).
	Moving map[string]string
	// Deleting lists objects being removed: taken out of service and
	// deleted on every node. They are not in Graph.
	Deleting []Deletion
	// Applied maps node -> object ref -> what was last converged there, so
	// a difference on a converged object reads as drift.
	Applied map[string]map[v1alpha1.Ref]Applied
	// Suspended groups get no steps at all.
	Suspended map[string]bool
	// Decided says, per group, when and why the leader last placed it
	// (for the failover timings in events; it changes no step).
	Decided map[string]Decided
	// Epoch changes when every group must be looked at again (a node fenced
	// itself or came back): it changes no step either.
	Epoch uint64
}

// Decided is the leader's last placement decision of a group.
type Decided struct {
	// Reason is a v1alpha1 reason constant; Message says it for a person.
	Reason, Message string
	At              time.Time
}

// Applied is what a node last converged for an object.
type Applied struct {
	// Generation of the spec converged.
	Generation int64 `json:"generation"`
	// Active is true when the object's group was active on the node.
	Active bool `json:"active"`
}

// Deletion is an object being removed and the group it was in.
type Deletion struct {
	Object v1alpha1.Object
	Group  string
}

// Observed is what one node has now.
type Observed struct {
	Node      string            `json:"node"`
	Sites     []backend.Site    `json:"sites"`
	Addresses []backend.Address `json:"addresses"`
	Volumes   []backend.Volume  `json:"volumes"`
}

// observedIndex finds observed things by identity.
type observedIndex struct {
	byID   map[int64]*backend.Site
	byName map[string]*backend.Site
	addrs  map[string]backend.Address
	vols   map[string]backend.Volume
}

func index(o Observed) observedIndex {
	ix := observedIndex{byID: map[int64]*backend.Site{}, byName: map[string]*backend.Site{}, addrs: map[string]backend.Address{}, vols: map[string]backend.Volume{}}
	for i := range o.Sites {
		s := &o.Sites[i]
		ix.byID[s.ID] = s
		ix.byName[strings.ToLower(s.Name)] = s
	}
	for _, a := range o.Addresses {
		ix.addrs[a.IP()] = a
	}
	for _, v := range o.Volumes {
		ix.vols[v.ID.String()] = v
	}
	return ix
}

// Compute returns the steps one node takes: take-downs first (sites
// stopped, addresses removed, volumes released), then for each group active
// here volume online, address add, site create/update, site start, then the
// configuration of standby instances.
func Compute(d *Desired, o Observed) Plan {
	return computeNode(d, o, nil)
}

// ComputeGroup is Compute restricted to one group (and to the objects being
// deleted that belonged to it, named by group).
func ComputeGroup(d *Desired, o Observed, group string) Plan {
	return computeNode(d, o, map[string]bool{group: true})
}

// ComputeGroups is Compute restricted to the named groups, in one pass
// over the node: a batch of a thousand groups costs one look at the node
// and one walk of the desired state, not a thousand. Each step carries its
// group; a group's steps keep their order.
func ComputeGroups(d *Desired, o Observed, groups map[string]bool) Plan {
	return computeNode(d, o, groups)
}

// ComputeCluster returns every node's steps, all take-downs of every node
// before any bring-up, so that a moving group is fully released by its old
// node before the new one takes it.
func ComputeCluster(d *Desired, nodes []Observed) Plan {
	var down, up Plan
	for _, o := range nodes {
		for _, s := range Compute(d, o) {
			if s.Action.TakesDown() {
				down = append(down, s)
			} else {
				up = append(up, s)
			}
		}
	}
	return append(down, up...)
}

type builder struct {
	d     *Desired
	node  string
	ix    observedIndex
	down  Plan
	up    Plan
	stand Plan
}

func computeNode(d *Desired, o Observed, only map[string]bool) Plan {
	b := &builder{d: d, node: o.Node, ix: index(o)}
	claimed := map[int64]bool{}
	for gi := range d.Graph.Groups {
		for _, m := range d.Graph.Groups[gi].Members {
			if s, ok := d.Graph.Object(m).(*v1alpha1.IISSite); ok {
				claimed[s.Spec.SiteID] = true
			}
		}
	}
	for _, del := range d.Deleting {
		if only != nil && !only[del.Group] {
			continue
		}
		if s, ok := del.Object.(*v1alpha1.IISSite); ok && claimed[s.Spec.SiteID] {
			// A desired site has its ID: the object was renamed (a delete and
			// a create in the manifests); its IIS site is renamed, not deleted.
			continue
		}
		b.remove(del.Object, del.Group, "deleted: taking it out of service on every node")
	}
	for gi := range d.Graph.Groups {
		g := &d.Graph.Groups[gi]
		if only != nil && !only[g.Name] {
			continue
		}
		if d.Suspended[g.Name] {
			continue
		}
		if !slices.ContainsFunc(g.Placement.Nodes, func(n string) bool { return strings.EqualFold(n, b.node) }) {
			for _, m := range g.Members {
				b.remove(d.Graph.Object(m), g.Name, fmt.Sprintf("%s is not in the placement of group %s", b.node, g.Name))
			}
			continue
		}
		if active := d.Active[g.Name]; strings.EqualFold(active, b.node) {
			b.bringUp(g)
		} else {
			b.takeDown(g, active)
		}
	}
	out := append(b.down, b.up...)
	return append(out, b.stand...)
}

func (b *builder) step(s Step) Step {
	s.Node = b.node
	return s
}

// converged reports whether o's current generation was converged here.
func (b *builder) converged(o v1alpha1.Object) bool {
	a, ok := b.d.Applied[b.node][v1alpha1.RefOf(o)]
	return ok && a.Generation == o.Meta().Generation
}

// wasActive reports whether o was converged here as active, so that a
// stopped site or a missing address is drift rather than a move.
func (b *builder) wasActive(o v1alpha1.Object) bool {
	a, ok := b.d.Applied[b.node][v1alpha1.RefOf(o)]
	return ok && a.Active && a.Generation == o.Meta().Generation
}

// members returns the group's objects by kind.
func (b *builder) members(g *graph.Group) (sites []*v1alpha1.IISSite, ips []*v1alpha1.IPResource, vols []*v1alpha1.VolumeResource) {
	for _, m := range g.Members {
		switch o := b.d.Graph.Object(m).(type) {
		case *v1alpha1.IISSite:
			sites = append(sites, o)
		case *v1alpha1.IPResource:
			ips = append(ips, o)
		case *v1alpha1.VolumeResource:
			vols = append(vols, o)
		}
	}
	return
}

func (b *builder) bringUp(g *graph.Group) {
	sites, ips, vols := b.members(g)
	here := fmt.Sprintf("group %s is active here", g.Name)
	for _, v := range vols {
		want := RenderVolume(v)
		if obs, ok := b.ix.vols[want.ID.String()]; !ok || !obs.Online {
			reason := here
			if b.wasActive(v) {
				reason = "volume went offline outside sitekeeper; " + here
			}
			b.up = append(b.up, b.step(Step{Action: VolumeOnline, Target: ref(v), Group: g.Name, Reason: reason, Volume: &want}))
		}
	}
	for _, ip := range ips {
		want, ok := RenderAddress(ip, b.node)
		if !ok {
			continue
		}
		if _, held := b.ix.addrs[want.IP()]; !held {
			reason := here
			if b.wasActive(ip) {
				reason = "address removed outside sitekeeper; " + here
			}
			b.up = append(b.up, b.step(Step{Action: AddAddress, Target: ref(ip), Group: g.Name, Reason: reason, Address: &want}))
		}
	}
	for _, s := range sites {
		b.up = append(b.up, b.configure(s, g)...)
	}
	for _, s := range sites {
		obs := b.observedSite(s)
		if obs == nil || obs.State != backend.SiteStarted {
			reason := here
			if obs != nil && b.wasActive(s) {
				reason = "site stopped outside sitekeeper; " + here
			}
			b.up = append(b.up, b.step(Step{Action: StartSite, Target: ref(s), Group: g.Name, Reason: reason, SiteName: s.Metadata.Name}))
		}
	}
}

func (b *builder) takeDown(g *graph.Group, active string) {
	sites, ips, vols := b.members(g)
	why := fmt.Sprintf("group %s is active on %s", g.Name, active)
	switch {
	case active == "" && b.d.Moving[g.Name] != "":
		why = fmt.Sprintf("group %s moves to %s", g.Name, b.d.Moving[g.Name])
	case active == "":
		why = fmt.Sprintf("group %s has no active node", g.Name)
	}
	for _, s := range sites {
		if obs := b.observedSite(s); obs != nil && obs.State == backend.SiteStarted {
			b.down = append(b.down, b.step(Step{Action: StopSite, Target: ref(s), Group: g.Name, Reason: why, SiteName: obs.Name}))
		}
	}
	for _, ip := range ips {
		if a, ok := RenderAddress(ip, b.node); ok {
			if held, ok := b.ix.addrs[a.IP()]; ok {
				b.down = append(b.down, b.step(Step{Action: RemoveAddress, Target: ref(ip), Group: g.Name, Reason: why, Address: &held}))
			}
		}
	}
	for _, v := range vols {
		want := RenderVolume(v)
		if obs, ok := b.ix.vols[want.ID.String()]; ok && obs.Online {
			b.down = append(b.down, b.step(Step{Action: VolumeOffline, Target: ref(v), Group: g.Name, Reason: why, Volume: &want}))
		}
	}
	for _, s := range sites {
		b.stand = append(b.stand, b.configure(s, g)...)
	}
}

// remove takes obj out of service on this node and deletes a site.
func (b *builder) remove(obj v1alpha1.Object, group, why string) {
	switch o := obj.(type) {
	case *v1alpha1.IISSite:
		if obs := b.observedSite(o); obs != nil {
			if obs.State == backend.SiteStarted {
				b.down = append(b.down, b.step(Step{Action: StopSite, Target: ref(o), Group: group, Reason: why, SiteName: obs.Name}))
			}
			b.down = append(b.down, b.step(Step{Action: DeleteSite, Target: ref(o), Group: group, Reason: why, SiteName: obs.Name}))
		}
	case *v1alpha1.IPResource:
		for _, n := range append([]string{b.node}, o.Spec.Placement.Nodes...) {
			if a, ok := RenderAddress(o, n); ok {
				if held, ok := b.ix.addrs[a.IP()]; ok {
					b.down = append(b.down, b.step(Step{Action: RemoveAddress, Target: ref(o), Group: group, Reason: why, Address: &held}))
					break
				}
			}
		}
	case *v1alpha1.VolumeResource:
		want := RenderVolume(o)
		if obs, ok := b.ix.vols[want.ID.String()]; ok && obs.Online {
			b.down = append(b.down, b.step(Step{Action: VolumeOffline, Target: ref(o), Group: group, Reason: why, Volume: &want}))
		}
	}
}

func (b *builder) observedSite(s *v1alpha1.IISSite) *backend.Site {
	if o, ok := b.ix.byID[s.Spec.SiteID]; ok {
		return o
	}
	return nil
}

// configure returns the steps that make the node's instance of s match its
// spec: create (stopped), rename, bindings, path, app pool, auto-start.
func (b *builder) configure(s *v1alpha1.IISSite, g *graph.Group) Plan {
	want := RenderSite(s, b.d.Graph, b.node)
	obs := b.observedSite(s)
	target := ref(s)
	drift := b.converged(s)
	var steps Plan
	if other, ok := b.ix.byName[strings.ToLower(want.Name)]; ok && (obs == nil || other.ID != obs.ID) {
		// Another IIS site holds this name with a different ID: IIS keeps
		// names unique, so it must go before ours can exist.
		steps = append(steps, b.step(Step{Action: DeleteSite, Target: target, Group: g.Name, SiteName: other.Name,
			Reason: fmt.Sprintf("an IIS site named %s has ID %d, not %d", other.Name, other.ID, want.ID)}))
	}
	if obs == nil {
		reason := fmt.Sprintf("site %s (ID %d) does not exist on %s", want.Name, want.ID, b.node)
		if drift {
			reason = "site deleted outside sitekeeper"
		}
		cfg := want
		return append(steps, b.step(Step{Action: CreateSite, Target: target, Group: g.Name, Reason: reason, SiteName: want.Name, Site: &cfg}))
	}
	cause := func(what string) string {
		if drift {
			return what + " changed outside sitekeeper: "
		}
		return fmt.Sprintf("spec changed (generation %d): ", s.Metadata.Generation)
	}
	name := obs.Name
	if obs.Name != want.Name {
		steps = append(steps, b.step(Step{Action: RenameSite, Target: target, Group: g.Name, SiteName: name, NewName: want.Name,
			Reason: fmt.Sprintf("%s%s → %s (same site ID %d)", cause("name"), obs.Name, want.Name, want.ID)}))
		name = want.Name
	}
	if add, remove := diffBindings(want.Bindings, obs.Bindings); len(add)+len(remove) > 0 {
		steps = append(steps, b.step(Step{Action: UpdateBindings, Target: target, Group: g.Name, SiteName: name, Add: add, Remove: remove,
			Reason: cause("bindings") + describeBindings(add, remove, drift)}))
	}
	if !strings.EqualFold(obs.PhysicalPath, want.PhysicalPath) {
		steps = append(steps, b.step(Step{Action: SetPhysicalPath, Target: target, Group: g.Name, SiteName: name, Value: want.PhysicalPath,
			Reason: fmt.Sprintf("%s%s → %s", cause("physical path"), obs.PhysicalPath, want.PhysicalPath)}))
	}
	if !strings.EqualFold(obs.AppPool, want.AppPool) {
		steps = append(steps, b.step(Step{Action: SetAppPool, Target: target, Group: g.Name, SiteName: name, Value: want.AppPool,
			Reason: fmt.Sprintf("%s%s → %s", cause("app pool"), obs.AppPool, want.AppPool)}))
	}
	if obs.AutoStart {
		steps = append(steps, b.step(Step{Action: SetAutoStart, Target: target, Group: g.Name, SiteName: name, AutoStart: false,
			Reason: "serverAutoStart is true; a protected site must not start by itself when a node boots"}))
	}
	return steps
}

func diffBindings(want, have []backend.Binding) (add, remove []backend.Binding) {
	haveKeys := map[string]bool{}
	for _, b := range have {
		haveKeys[b.Key()] = true
	}
	wantKeys := map[string]bool{}
	for _, b := range want {
		wantKeys[b.Key()] = true
		if !haveKeys[b.Key()] {
			add = append(add, b)
		}
	}
	for _, b := range have {
		if !wantKeys[b.Key()] {
			remove = append(remove, b)
		}
	}
	return add, remove
}

// describeBindings names a change: "port 8080 → 8081" for one binding
// changed in one field, else the bindings added and removed. Drift reads
// from the spec to what was found; a spec change from what is there to the
// spec.
func describeBindings(add, remove []backend.Binding, drift bool) string {
	if len(add) == 1 && len(remove) == 1 {
		a, r := add[0], remove[0]
		if drift {
			a, r = r, a
		}
		var parts []string
		field := func(name, from, to string) {
			if from != to {
				parts = append(parts, fmt.Sprintf("%s %s → %s", name, orNone(from), orNone(to)))
			}
		}
		field("protocol", r.Protocol, a.Protocol)
		field("ip", r.IP, a.IP)
		field("port", fmt.Sprint(r.Port), fmt.Sprint(a.Port))
		field("hostName", r.HostName, a.HostName)
		field("certificate", r.CertHash, a.CertHash)
		field("certificate store", r.CertStore, a.CertStore)
		field("sslFlags", fmt.Sprint(r.SSLFlags), fmt.Sprint(a.SSLFlags))
		return r.String() + ": " + strings.Join(parts, ", ")
	}
	var parts []string
	for _, b := range add {
		parts = append(parts, "+"+b.String())
	}
	for _, b := range remove {
		parts = append(parts, "-"+b.String())
	}
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func ref(o v1alpha1.Object) string { return v1alpha1.RefOf(o).String() }

// RenderSite renders s's IIS configuration for node: bindings on the
// node's address of each IPResource, serverAutoStart off.
func RenderSite(s *v1alpha1.IISSite, g *graph.Graph, node string) backend.SiteConfig {
	cfg := backend.SiteConfig{ID: s.Spec.SiteID, Name: s.Metadata.Name, PhysicalPath: s.Spec.PhysicalPath, AppPool: s.Spec.AppPool}
	if s.Spec.FTP != nil {
		cfg.FTPSSL = string(s.Spec.FTP.SSL)
		if c := s.Spec.FTP.Certificate; c != nil {
			cfg.FTPCertHash, cfg.FTPCertStore = strings.ToUpper(c.Thumbprint), c.Store
		}
	}
	for _, b := range s.Spec.Bindings {
		ip, _ := g.Object(v1alpha1.Ref{Kind: v1alpha1.KindIPResource, Name: b.IPRef}).(*v1alpha1.IPResource)
		rb := backend.Binding{Protocol: string(b.Protocol), Port: b.Port, HostName: b.HostName, SSLFlags: b.SSLFlags}
		if ip != nil {
			rb.IP = validation.AddressOn(ip, node)
		}
		if b.Certificate != nil {
			rb.CertHash = strings.ToUpper(b.Certificate.Thumbprint)
			rb.CertStore = b.Certificate.Store
		}
		cfg.Bindings = append(cfg.Bindings, rb)
	}
	backend.SortBindings(cfg.Bindings)
	return cfg
}

// RenderAddress renders ip's address on node; ok is false when the node
// has none (real-IP mode without an entry).
func RenderAddress(ip *v1alpha1.IPResource, node string) (backend.Address, bool) {
	cidr := ip.Spec.Address
	if cidr == "" {
		for n, a := range ip.Spec.Addresses {
			if strings.EqualFold(n, node) {
				cidr = a
			}
		}
	}
	if cidr == "" {
		return backend.Address{}, false
	}
	iface := ip.Spec.Interface
	for n, i := range ip.Spec.Interfaces {
		if strings.EqualFold(n, node) {
			iface = i
		}
	}
	return backend.Address{CIDR: cidr, Interface: iface}, true
}

// RenderVolume renders v's identity and mount root.
func RenderVolume(v *v1alpha1.VolumeResource) backend.Volume {
	var id backend.VolumeID
	switch src := v.Spec.Source; {
	case src.SharedDisk != nil && src.SharedDisk.UniqueID != "":
		id = backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: src.SharedDisk.UniqueID}
	case src.SharedDisk != nil:
		id = backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: "serial:" + src.SharedDisk.SerialNumber}
	case src.Mirror != nil:
		id = backend.VolumeID{Kind: backend.VolumeMirror, ID: strings.ToUpper(src.Mirror.Volume)}
	}
	root := v.Spec.MountPath
	if v.Spec.DriveLetter != "" {
		root = strings.ToUpper(v.Spec.DriveLetter) + `:\`
	}
	return backend.Volume{ID: id, Root: root}
}
