// Package validation checks a whole set of objects at once, before anything
// is stored: every rule of the design, every error of the set in one sorted
// list, each ending with its fix. It is pure: no I/O.
package validation

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/diag"
	"github.com/sitekeeper/sitekeeper/internal/graph"
)

var (
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	thumbprintRE = regexp.MustCompile(`^[0-9A-Fa-f]{40}$`)
	hostNameRE   = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	interfaceRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._()#-]{0,63}$`)
	// certStoreRE is a LocalMachine certificate store's name as Windows
	// names them (My, WebHosting, Remote Desktop): it reaches netsh's
	// arguments and a Cert: path, so nothing else passes.
	certStoreRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9 _-]{0,63}$`)
	// appPoolRE is an application pool's name ("ASP.NET v4.0 Classic"):
	// letters, digits, spaces, dots, hyphens, underscores and brackets.
	appPoolRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,63}$`)
	diskIDRE  = regexp.MustCompile(`^[A-Za-z0-9{}:._\\-]{1,256}$`)
)

// Result is the outcome of validating a set.
type Result struct {
	// Errors lists every problem, sorted; empty when the set is valid.
	Errors diag.List
	// Graph is the dependency graph of the set (valid or not).
	Graph *graph.Graph
}

type validator struct {
	partial bool
	objs    []v1alpha1.Object
	index   map[v1alpha1.Object]int
	errs    diag.List
}

// ownText is text Sitekeeper composed (not a user value): never clipped.
type ownText string

func (v *validator) add(o v1alpha1.Object, field, format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = diag.Clip(s)
		}
	}
	v.errs = append(v.errs, diag.Error{
		Kind: o.GetKind(), Name: diag.Clip(o.Meta().Name), Field: field,
		Message: fmt.Sprintf(format, args...), Index: v.index[o],
	})
}

// Validate defaults objs in place and checks them as one set. Errors carry
// the object's position in objs (diag.Error.Index) so that a caller can
// attach the file and line.
func Validate(objs []v1alpha1.Object) Result {
	return validate(objs, false)
}

// ValidatePartial checks objs like Validate, but as part of a set some of
// whose documents could not be read: rules that need the whole set
// (references, a group's missing placement) are skipped, since the missing
// documents may satisfy them.
func ValidatePartial(objs []v1alpha1.Object) Result {
	return validate(objs, true)
}

func validate(objs []v1alpha1.Object, partial bool) Result {
	v := &validator{partial: partial, objs: objs, index: map[v1alpha1.Object]int{}}
	for i, o := range objs {
		v.index[o] = i
		v1alpha1.Default(o)
	}
	v.names()
	ips := map[string]*v1alpha1.IPResource{}
	var vols []*v1alpha1.VolumeResource
	var sites []*v1alpha1.IISSite
	for _, o := range objs {
		switch t := o.(type) {
		case *v1alpha1.IPResource:
			if _, dup := ips[t.Metadata.Name]; !dup {
				ips[t.Metadata.Name] = t
			}
			v.ipResource(t)
		case *v1alpha1.VolumeResource:
			vols = append(vols, t)
			v.volume(t)
		case *v1alpha1.IISSite:
			sites = append(sites, t)
		}
		v.placement(o, o.PlacementSpec(), "spec.placement")
	}
	volIndex := graph.NewVolumeIndex(vols)
	for _, s := range sites {
		v.site(s, ips, volIndex)
	}
	v.duplicateAddresses(ips)
	v.duplicateVolumes(vols)
	v.siteIDs(sites)
	g := graph.Build(objs)
	v.groups(g)
	v.endpoints(sites, ips, g)
	v.errs.Sort()
	return Result{Errors: v.errs, Graph: g}
}

func (v *validator) names() {
	seen := map[v1alpha1.Ref]bool{}
	for _, o := range v.objs {
		name := o.Meta().Name
		switch {
		case name == "":
			v.add(o, "metadata.name", "missing; give the object a name")
			continue
		case !nameRE.MatchString(name):
			what := "names"
			if o.GetKind() == v1alpha1.KindIISSite {
				what = "IIS site names"
			}
			v.add(o, "metadata.name", "%q is not allowed: %s may contain only letters, digits and hyphens (no spaces), at most 63, not starting or ending with a hyphen; rename it", name, what)
		}
		r := v1alpha1.RefOf(o)
		if seen[r] {
			v.add(o, "metadata.name", "another %s is named %q in this set; names must be unique per kind, rename one", o.GetKind(), name)
		}
		seen[r] = true
	}
}

func (v *validator) placement(o v1alpha1.Object, p *v1alpha1.Placement, field string) {
	if p.Nodes != nil && len(p.Nodes) == 0 {
		// Written as "nodes: []": not a placement left out, but one that
		// names no node.
		v.add(o, field+".nodes", "empty; list the nodes that may serve it, highest priority first")
		return
	}
	if p.IsZero() {
		return // inherited from the group; groups() checks one is declared
	}
	if len(p.Nodes) == 0 {
		v.add(o, field+".nodes", "empty; list the nodes that may serve it, highest priority first")
	}
	seen := map[string]bool{}
	for i, n := range p.Nodes {
		f := fmt.Sprintf("%s.nodes[%d]", field, i)
		if !nameRE.MatchString(n) {
			v.add(o, f, "%q is not a valid node name; use the node's host name (letters, digits, hyphens)", n)
		}
		if seen[strings.ToLower(n)] {
			v.add(o, f, "node %q is listed twice; list each node once", n)
		}
		seen[strings.ToLower(n)] = true
	}
	switch p.Switchback {
	case v1alpha1.SwitchbackManual, v1alpha1.SwitchbackAutomatic:
	default:
		v.add(o, field+".switchback", "%q is not a switchback policy; use Manual or Automatic", p.Switchback)
	}
	if p.ActiveNode != "" && !seen[strings.ToLower(p.ActiveNode)] {
		v.add(o, field+".activeNode", "%q is not one of placement.nodes; name one of %s or add it to the list", p.ActiveNode, strings.Join(p.Nodes, ", "))
	}
	if p.MaxFailures < 0 {
		v.add(o, field+".maxFailures", "must be positive; remove it for the default of %d", v1alpha1.DefaultMaxFailures)
	}
	if p.SwitchbackAfter != nil && p.SwitchbackAfter.Duration < 0 {
		v.add(o, field+".switchbackAfter", "must not be negative; 0 (the default) switches back at once, 10m waits ten minutes of the first node being up")
	}
	if p.FailureWindow != nil && p.FailureWindow.Duration <= 0 {
		v.add(o, field+".failureWindow", "must be a positive duration; remove it for the default of 1h")
	}
}

func (v *validator) ipResource(ip *v1alpha1.IPResource) {
	s := ip.Spec
	switch {
	case s.Address == "" && len(s.Addresses) == 0:
		v.add(ip, "spec.address", "missing; set address (a virtual IP) or addresses (one real IP per node)")
	case s.Address != "" && len(s.Addresses) > 0:
		v.add(ip, "spec.addresses", "set together with address; keep address for a virtual IP or addresses for real-IP mode, not both")
	}
	if s.Address != "" {
		if _, err := parseAddress(s.Address); err != nil {
			v.add(ip, "spec.address", "%q %v", s.Address, err)
		}
	}
	for _, node := range slices.Sorted(maps.Keys(s.Addresses)) {
		if _, err := parseAddress(s.Addresses[node]); err != nil {
			v.add(ip, fmt.Sprintf("spec.addresses[%q]", node), "%q %v", s.Addresses[node], err)
		}
	}
	if s.Interface != "" && !interfaceRE.MatchString(s.Interface) {
		v.add(ip, "spec.interface", "%q is not a valid interface alias; use the name Get-NetAdapter shows", s.Interface)
	}
	for _, node := range slices.Sorted(maps.Keys(s.Interfaces)) {
		if !interfaceRE.MatchString(s.Interfaces[node]) {
			v.add(ip, fmt.Sprintf("spec.interfaces[%q]", node), "%q is not a valid interface alias; use the name Get-NetAdapter shows", s.Interfaces[node])
		}
	}
}

func parseAddress(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("is not an address in CIDR form; write it like 10.0.0.50/24")
	}
	if p.Addr().IsUnspecified() || p.Addr().IsMulticast() {
		return p, fmt.Errorf("cannot be assigned to a node; use a unicast address")
	}
	return p, nil
}

func (v *validator) volume(vol *v1alpha1.VolumeResource) {
	s := vol.Spec
	switch {
	case s.DriveLetter == "" && s.MountPath == "":
		v.add(vol, "spec.driveLetter", "missing; set driveLetter (\"E\") or mountPath")
	case s.DriveLetter != "" && s.MountPath != "":
		v.add(vol, "spec.mountPath", "set together with driveLetter; keep one")
	case s.DriveLetter != "":
		if len(s.DriveLetter) != 1 || !isLetter(s.DriveLetter[0]) {
			v.add(vol, "spec.driveLetter", "%q is not a drive letter; write one letter such as \"E\"", s.DriveLetter)
		} else if l := strings.ToUpper(s.DriveLetter); l == "A" || l == "B" || l == "C" {
			v.add(vol, "spec.driveLetter", "%s: is a system drive and cannot move between nodes; put site content on its own volume", l)
		}
	default:
		p, ok := graph.ParseWinPath(s.MountPath)
		if bad := badPathChars(s.MountPath); bad != "" {
			v.add(vol, "spec.mountPath", "%q contains %s, which Windows does not allow in a path; rename the folder", s.MountPath, bad)
		} else if !ok {
			v.add(vol, "spec.mountPath", "%q is not an absolute Windows path without \"..\"; write it like C:\\ClusterStorage\\web", s.MountPath)
		} else if len(p.Parts) == 0 {
			v.add(vol, "spec.mountPath", "%q is a whole drive; use driveLetter for it", s.MountPath)
		}
	}
	src := s.Source
	switch {
	case src.SharedDisk == nil && src.Mirror == nil:
		v.add(vol, "spec.source", "missing; set sharedDisk (a disk all nodes reach) or mirror (a replicated volume)")
	case src.SharedDisk != nil && src.Mirror != nil:
		v.add(vol, "spec.source", "sharedDisk and mirror are both set; keep one")
	case src.SharedDisk != nil:
		d := src.SharedDisk
		if d.UniqueID == "" && d.SerialNumber == "" {
			v.add(vol, "spec.source.sharedDisk", "needs uniqueId or serialNumber (disk numbers change between boots); copy it from Get-Disk")
		}
		for f, val := range map[string]string{"uniqueId": d.UniqueID, "serialNumber": d.SerialNumber} {
			if val != "" && !diskIDRE.MatchString(val) {
				v.add(vol, "spec.source.sharedDisk."+f, "%q has characters a disk identity never has; copy it from Get-Disk", val)
			}
		}
	case src.Mirror != nil:
		if l := src.Mirror.Volume; len(l) != 1 || !isLetter(l[0]) {
			v.add(vol, "spec.source.mirror.volume", "%q is not a drive letter; write the mirrored volume's letter such as \"E\"", l)
		}
	}
}

func (v *validator) site(s *v1alpha1.IISSite, ips map[string]*v1alpha1.IPResource, vols *graph.VolumeIndex) {
	spec := s.Spec
	if spec.SiteID < 1 || spec.SiteID > 4294967295 {
		v.add(s, "spec.siteID", "must be between 1 and 4294967295; give the site the ID it has (or will have) in IIS")
	}
	if len(spec.Bindings) == 0 {
		v.add(s, "spec.bindings", "empty; add at least one binding on a protected IP")
	}
	web, ftp := false, false
	firstAt := map[string]int{}
	for i, b := range spec.Bindings {
		f := fmt.Sprintf("spec.bindings[%d]", i)
		key := strings.ToLower(fmt.Sprintf("%s %s %d %s", b.Protocol, b.IPRef, b.Port, b.HostName))
		if j, dup := firstAt[key]; dup {
			v.add(s, f, "the same binding as bindings[%d]; IIS refuses a duplicate entry in a site's bindings, remove one", j)
		} else {
			firstAt[key] = i
		}
		switch b.Protocol {
		case v1alpha1.ProtocolHTTP, v1alpha1.ProtocolHTTPS:
			web = true
		case v1alpha1.ProtocolFTP:
			ftp = true
		default:
			v.add(s, f+".protocol", "%q is not supported; use http, https or ftp", b.Protocol)
		}
		switch {
		case b.IPRef == "" || b.IPRef == "*":
			v.add(s, f+".ipRef", "a binding on all unassigned addresses (\"*\") cannot fail over; bind it to a protected IP by naming an IPResource")
		case ips[b.IPRef] == nil && !v.partial:
			v.add(s, f+".ipRef", "IPResource %q not found; declare it or fix the name", b.IPRef)
		}
		if b.Port < 1 || b.Port > 65535 {
			v.add(s, f+".port", "%d is not a TCP port; use 1-65535", b.Port)
		}
		if b.HostName != "" && !hostNameRE.MatchString(b.HostName) {
			v.add(s, f+".hostName", "%q is not a valid host name; use letters, digits, hyphens and dots", b.HostName)
		}
		if b.Protocol == v1alpha1.ProtocolHTTPS {
			if b.Certificate == nil || b.Certificate.Thumbprint == "" {
				v.add(s, f+".certificate.thumbprint", "https needs a server certificate; set the thumbprint of a certificate imported on every node")
			}
		} else if b.Certificate != nil {
			v.add(s, f+".certificate", "only https bindings take a certificate; remove it (FTP sites set ftp.certificate)")
		}
		if b.Certificate != nil && b.Certificate.Thumbprint != "" && !thumbprintRE.MatchString(b.Certificate.Thumbprint) {
			v.add(s, f+".certificate.thumbprint", "%q is not 40 hex characters; copy the certificate's SHA-1 thumbprint without spaces", b.Certificate.Thumbprint)
		}
		if b.Certificate != nil {
			v.certStore(s, f+".certificate.store", b.Certificate.Store)
		}
		if b.SSLFlags != 0 {
			if b.Protocol != v1alpha1.ProtocolHTTPS {
				v.add(s, f+".sslFlags", "only https bindings take sslFlags; remove it")
			} else if b.SSLFlags < 0 || b.SSLFlags > 3 {
				v.add(s, f+".sslFlags", "%d is not an IIS sslFlags value; use 1 (SNI), 2 (central store) or 3", b.SSLFlags)
			} else if b.SSLFlags&1 != 0 && b.HostName == "" {
				v.add(s, f+".hostName", "SNI (sslFlags 1) needs a host name; set hostName or clear sslFlags")
			}
		}
		if b.Protocol == v1alpha1.ProtocolFTP && spec.FTP != nil && spec.FTP.SSL == v1alpha1.FTPSSLImplicit && b.Port != v1alpha1.DefaultFTPImplicitPort {
			v.add(s, f+".port", "implicit FTPS listens on port 990, not %d; set port 990 or use ssl: Explicit", b.Port)
		}
	}
	if web && ftp {
		v.add(s, "spec.bindings", "mixes http/https and ftp; a site's bindings are all http/https or all ftp, so split it into two sites")
	}
	if spec.FTP != nil {
		switch {
		case web && !ftp:
			v.add(s, "spec.ftp", "FTP settings on a web site; remove ftp or use ftp bindings")
		}
		switch spec.FTP.SSL {
		case v1alpha1.FTPSSLNone, v1alpha1.FTPSSLExplicit, v1alpha1.FTPSSLImplicit:
		default:
			v.add(s, "spec.ftp.ssl", "%q is not an FTP SSL mode; use None, Explicit or Implicit", spec.FTP.SSL)
		}
		c := spec.FTP.Certificate
		if spec.FTP.SSL != v1alpha1.FTPSSLNone && (c == nil || c.Thumbprint == "") {
			v.add(s, "spec.ftp.certificate.thumbprint", "FTP with SSL needs a server certificate; set the thumbprint of a certificate imported on every node")
		}
		if c != nil && c.Thumbprint != "" && !thumbprintRE.MatchString(c.Thumbprint) {
			v.add(s, "spec.ftp.certificate.thumbprint", "%q is not 40 hex characters; copy the certificate's SHA-1 thumbprint without spaces", c.Thumbprint)
		}
		if c != nil {
			v.certStore(s, "spec.ftp.certificate.store", c.Store)
		}
	}
	switch {
	case spec.PhysicalPath == "":
		v.add(s, "spec.physicalPath", "missing; set the site's root folder on a protected volume")
	case badPathChars(spec.PhysicalPath) != "":
		v.add(s, "spec.physicalPath", "%q contains %s, which Windows does not allow in a path; rename the folder", spec.PhysicalPath, badPathChars(spec.PhysicalPath))
	case graph.HasDotDot(spec.PhysicalPath):
		v.add(s, "spec.physicalPath", "%q contains \"..\" or \".\"; write the full path to the folder", spec.PhysicalPath)
	default:
		if _, ok := graph.ParseWinPath(spec.PhysicalPath); !ok {
			v.add(s, "spec.physicalPath", "%q is not an absolute Windows path; write it like E:\\sites\\%s", spec.PhysicalPath, s.Metadata.Name)
		} else if vols.For(spec.PhysicalPath) == nil && !v.partial {
			v.add(s, "spec.physicalPath", "%q does not lie on any VolumeResource, so it would not move with the site; declare a VolumeResource for its drive or mount path", spec.PhysicalPath)
		}
	}
	if spec.AppPool != "" && !appPoolRE.MatchString(spec.AppPool) {
		v.add(s, "spec.appPool", "%q is not an application pool name Sitekeeper accepts: letters, digits, spaces, dots, hyphens, underscores and brackets, at most 64, starting with a letter or digit", spec.AppPool)
	}
	h := spec.Health
	if h.Interval.Duration <= 0 || h.Timeout.Duration <= 0 {
		v.add(s, "spec.health", "interval and timeout must be positive durations; remove them for the defaults")
	} else if h.Timeout.Duration > h.Interval.Duration {
		v.add(s, "spec.health.timeout", "%s is longer than the interval %s; make it shorter", h.Timeout.Duration, h.Interval.Duration)
	}
	if h.FailureThreshold < 1 {
		v.add(s, "spec.health.failureThreshold", "must be at least 1; remove it for the default of %d", v1alpha1.DefaultFailureThreshold)
	}
	if !strings.HasPrefix(h.Path, "/") {
		v.add(s, "spec.health.path", "%q must start with \"/\"; write it like /health", h.Path)
	}
}

// certStore checks a certificate's store name (empty is the default, My).
func (v *validator) certStore(o v1alpha1.Object, field, store string) {
	if store != "" && !certStoreRE.MatchString(store) {
		v.add(o, field, "%q is not a certificate store name: use the LocalMachine store's name as certlm.msc shows it (My, WebHosting), letters, digits, spaces, '_' and '-' only", store)
	}
}

func (v *validator) duplicateAddresses(ips map[string]*v1alpha1.IPResource) {
	owner := map[string]*v1alpha1.IPResource{}
	for _, name := range slices.Sorted(maps.Keys(ips)) {
		ip := ips[name]
		var addrs []string
		if ip.Spec.Address != "" {
			addrs = append(addrs, ip.Spec.Address)
		}
		for _, n := range slices.Sorted(maps.Keys(ip.Spec.Addresses)) {
			addrs = append(addrs, ip.Spec.Addresses[n])
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				continue
			}
			key := p.Addr().String()
			if o, dup := owner[key]; dup && o != ip {
				v.add(ip, "spec.address", "%s is already protected by IPResource %q; one address belongs to one IPResource, so bind both sites to that one", key, o.Metadata.Name)
			}
			owner[key] = ip
		}
	}
}

func (v *validator) duplicateVolumes(vols []*v1alpha1.VolumeResource) {
	seen := map[string]*v1alpha1.VolumeResource{}
	for _, vol := range vols {
		root, ok := graph.VolumeRoot(vol)
		if !ok {
			continue
		}
		key := root.Drive + `:\` + strings.Join(root.Parts, `\`)
		if o, dup := seen[key]; dup {
			v.add(vol, "spec", "mounts on %s like VolumeResource %q; each volume needs its own drive letter or mount path", key, o.Metadata.Name)
			continue
		}
		seen[key] = vol
	}
}

func (v *validator) siteIDs(sites []*v1alpha1.IISSite) {
	seen := map[int64]*v1alpha1.IISSite{}
	for _, s := range sites {
		if s.Spec.SiteID < 1 {
			continue
		}
		if o, dup := seen[s.Spec.SiteID]; dup {
			v.add(s, "spec.siteID", "%d is already the ID of IISSite %q; IIS site IDs are unique, give this site another", s.Spec.SiteID, o.Metadata.Name)
			continue
		}
		seen[s.Spec.SiteID] = s
	}
}

// writtenEmpty reports whether a member of grp wrote "nodes: []".
func writtenEmpty(g *graph.Graph, grp *graph.Group) bool {
	for _, m := range grp.Members {
		if p := g.Object(m).PlacementSpec(); p.Nodes != nil && len(p.Nodes) == 0 {
			return true
		}
	}
	return false
}

// groups checks that the members of every resource group share one
// placement, naming what couples them.
func (v *validator) groups(g *graph.Graph) {
	for gi := range g.Groups {
		grp := &g.Groups[gi]
		if grp.Placement.IsZero() {
			if v.partial || writtenEmpty(g, grp) {
				continue // placement() named the empty list
			}
			o := g.Object(grp.Members[0])
			v.add(o, "spec.placement", "missing for resource group %q; declare the nodes that may serve it on at least one member", grp.Name)
			continue
		}
		var first v1alpha1.Object
		for _, m := range grp.Members {
			o := g.Object(m)
			p := o.PlacementSpec()
			if p.IsZero() {
				continue
			}
			if first == nil {
				first = o
				continue
			}
			if !samePlacement(*p, *first.PlacementSpec()) {
				v.add(o, "spec.placement", "differs from %s's, but they are in one resource group (%s) and always move together; give them the same placement, or give each site its own IP and volume", v1alpha1.RefOf(first), ownText(CouplingText(grp)))
			}
		}
	}
}

func samePlacement(a, b v1alpha1.Placement) bool {
	if len(a.Nodes) != len(b.Nodes) || a.Switchback != b.Switchback || a.ActiveNode != b.ActiveNode || a.MaxFailures != b.MaxFailures {
		return false
	}
	for i := range a.Nodes {
		if !strings.EqualFold(a.Nodes[i], b.Nodes[i]) {
			return false
		}
	}
	return sameDuration(a.FailureWindow, b.FailureWindow) && sameDuration(a.SwitchbackAfter, b.SwitchbackAfter)
}

func sameDuration(a, b *v1alpha1.Duration) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Duration == b.Duration)
}

// CouplingText explains what ties a group's members together, for errors
// and describe: "IISSite/a and IISSite/b share IPResource/vip".
func CouplingText(g *graph.Group) string {
	users := map[v1alpha1.Ref][]string{}
	var order []v1alpha1.Ref
	for _, c := range g.Couplings {
		if _, ok := users[c.Resource]; !ok {
			order = append(order, c.Resource)
		}
		users[c.Resource] = append(users[c.Resource], c.Site.String())
	}
	var parts []string
	for _, r := range order {
		what := "IP"
		if r.Kind == v1alpha1.KindVolumeResource {
			what = "volume"
		}
		if len(users[r]) > 1 {
			parts = append(parts, fmt.Sprintf("%s share %s %s", strings.Join(users[r], " and "), what, r))
		} else {
			parts = append(parts, fmt.Sprintf("%s uses %s %s", users[r][0], what, r))
		}
	}
	return strings.Join(parts, "; ")
}

// endpoints refuses two sites claiming the same ip:port:hostName on a node.
func (v *validator) endpoints(sites []*v1alpha1.IISSite, ips map[string]*v1alpha1.IPResource, g *graph.Graph) {
	type claim struct {
		site  *v1alpha1.IISSite
		field string
	}
	claims := map[string]claim{}
	for _, s := range sites {
		grp, ok := g.GroupOf(v1alpha1.RefOf(s))
		if !ok {
			continue
		}
		for i, b := range s.Spec.Bindings {
			ip := ips[b.IPRef]
			if ip == nil {
				continue
			}
			for _, node := range grp.Placement.Nodes {
				addr := AddressOn(ip, node)
				if addr == "" {
					if len(ip.Spec.Addresses) > 0 && ip.Spec.Address == "" {
						f := fmt.Sprintf("spec.addresses[%q]", node)
						if _, reported := claims["missing/"+ip.Metadata.Name+"/"+node]; !reported {
							claims["missing/"+ip.Metadata.Name+"/"+node] = claim{}
							v.add(ip, f, "missing: real-IP mode needs an address for every node of the placement, and %s is one; add its address", node)
						}
					}
					continue
				}
				key := fmt.Sprintf("%s|%s:%d:%s", strings.ToLower(node), addr, b.Port, strings.ToLower(b.HostName))
				f := fmt.Sprintf("spec.bindings[%d]", i)
				if c, dup := claims[key]; dup && c.site != s {
					v.add(s, f, "binding %q (ip:port:hostName) on node %s is already claimed by IISSite %q (%s); change the port, host name or IP", fmt.Sprintf("%s:%d:%s", addr, b.Port, b.HostName), node, c.site.Metadata.Name, c.field)
					break
				} else if !dup {
					claims[key] = claim{site: s, field: f}
				}
			}
		}
	}
}

// AddressOn returns the bare IP an IPResource has on node: the virtual
// address, or the node's own address in real-IP mode; "" when none.
func AddressOn(ip *v1alpha1.IPResource, node string) string {
	a := ip.Spec.Address
	if a == "" {
		for n, addr := range ip.Spec.Addresses {
			if strings.EqualFold(n, node) {
				a = addr
			}
		}
	}
	p, err := netip.ParsePrefix(a)
	if err != nil {
		return ""
	}
	return p.Addr().String()
}

func isLetter(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') }

// badPathChars names the first character Windows forbids in a path (beyond
// the drive's colon): " < > | * ? and control characters such as a newline.
func badPathChars(p string) string {
	for i, r := range p {
		if r < 0x20 || strings.ContainsRune(`"<>|*?`, r) || (r == ':' && i != 1) {
			return fmt.Sprintf("%q", string(r))
		}
	}
	return ""
}
