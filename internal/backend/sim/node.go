package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/probe"
)

type site struct {
	cfg     backend.SiteConfig
	started bool
}

// Node is one simulated Windows node running IIS. It implements
// backend.Node.
type Node struct {
	w    *World
	name string

	mu sync.Mutex
	// powered is read without the node's lock: the world checks it
	// while holding its own (liveOwner), and a node method holding the
	// node's lock takes the world's: locking both ways deadlocked.
	powered atomic.Bool
	sites   map[int64]*site
	// names indexes the sites by their name in lower case (IIS names are
	// case-insensitive), for the lookup every step makes: a scan of
	// thousands per step made a failover's bring-up grow with the square
	// of the sites. Built at the first lookup, kept up to date after it.
	names map[string]*site
	// byKey indexes the sites by the ip:port of their bindings, for the
	// lookup every request makes; nil when the sites changed since.
	byKey     map[string][]*site
	addrs     map[string]backend.Address // ip -> address
	listeners map[string]*listener       // ip:port -> listener
	probe     probe.Network
	// faults are standby faults set by sim commands (standby.go).
	faults map[string]bool
}

var _ backend.StepCoster = (*Node)(nil)

var _ backend.Node = (*Node)(nil)

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// StepCost implements backend.StepCoster: a simulated call costs its
// latency and about a millisecond.
func (n *Node) StepCost() time.Duration { return n.w.latencyOf(n.name) + time.Millisecond }

// Parallelism implements backend.Parallel: the simulated machine takes
// calls for different groups at once, as IIS and the kernel do. With a
// simulated step latency of seconds (a slow Windows node) and hundreds of
// groups, 16 at a time kept a failover waiting on rounds of slow steps.
func (n *Node) Parallelism() int { return 64 }

// StepTimeout implements backend.StepCoster.
func (n *Node) StepTimeout() time.Duration {
	n.w.mu.Lock()
	t := n.w.stepTimeout
	n.w.mu.Unlock()
	if t > 0 {
		return t
	}
	return max(10*time.Second, 5*n.w.latencyOf(n.name))
}

func (n *Node) isPowered() bool { return n.powered.Load() }

// Powered reports whether the node is up.
func (n *Node) Powered() bool { return n.isPowered() }

// checkUp is up() for callers that then take the world's lock (never held
// together with the node's).
func (n *Node) checkUp() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up()
}

func (n *Node) up() error {
	if !n.powered.Load() {
		return fmt.Errorf("%s: %w", n.name, backend.ErrPoweredOff)
	}
	return nil
}

// PowerOff simulates a power loss: listeners close, addresses vanish (they
// were never persisted), volume reservations lapse, IIS stops.
func (n *Node) PowerOff() {
	defer n.w.persist()
	n.mu.Lock()
	n.powered.Store(false)
	for _, s := range n.sites {
		s.started = false
	}
	n.addrs = map[string]backend.Address{}
	ls := n.listeners
	n.listeners = map[string]*listener{}
	n.mu.Unlock()
	for _, l := range ls {
		l.close()
	}
	n.w.mu.Lock()
	for ip, owner := range n.w.addrOwner {
		if owner == n.name {
			delete(n.w.addrOwner, ip)
		}
	}
	for id, owner := range n.w.volOwner {
		if owner == n.name {
			delete(n.w.volOwner, id)
		}
	}
	n.w.mu.Unlock()
}

// PowerOn boots the node: IIS starts the sites whose serverAutoStart is
// true, as the real one does; a protected site stays stopped.
func (n *Node) PowerOn() {
	defer n.w.persist()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.powered.Store(true)
	var ids []int64
	for id, s := range n.sites {
		if s.cfg.AutoStart {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := n.sites[id]
		if err := n.checkStartable(s); err != nil {
			n.w.log.Info("Auto-start failed", "node", n.name, "site", s.cfg.Name, "error", err.Error())
			continue
		}
		s.started = true
		if err := n.syncKeysLocked(keysOf(s)); err != nil {
			s.started = false
			if rerr := n.syncKeysLocked(keysOf(s)); rerr != nil {
				err = errors.Join(err, rerr)
			}
			n.w.log.Info("Auto-start failed", "node", n.name, "site", s.cfg.Name, "error", err.Error())
		}
	}
}

// ListSites returns every site.
func (n *Node) ListSites(ctx context.Context) ([]backend.Site, error) {
	if err := n.w.delay(ctx, n.name); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.up(); err != nil {
		return nil, err
	}
	out := make([]backend.Site, 0, len(n.sites))
	for _, s := range n.sites {
		st := backend.SiteStopped
		if s.started {
			st = backend.SiteStarted
		}
		cfg := s.cfg
		cfg.Bindings = slices.Clone(cfg.Bindings)
		out = append(out, backend.Site{SiteConfig: cfg, State: st})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (n *Node) byName(name string) (*site, error) {
	if n.names == nil {
		n.names = make(map[string]*site, len(n.sites))
		for _, s := range n.sites {
			n.names[strings.ToLower(s.cfg.Name)] = s
		}
	}
	if s, ok := n.names[strings.ToLower(name)]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("site %q: %w (IIS: Cannot find SITE object with identifier %q, 0x80070490)", name, backend.ErrNotFound, name)
}

// CreateSite creates a stopped site.
func (n *Node) CreateSite(ctx context.Context, cfg backend.SiteConfig) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	defer n.w.persist()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.up(); err != nil {
		return err
	}
	if _, ok := n.sites[cfg.ID]; ok {
		return fmt.Errorf("create site %q: id %d: %w (IIS: Failed to add duplicate collection element, 0x800700b7)", cfg.Name, cfg.ID, backend.ErrExists)
	}
	if _, err := n.byName(cfg.Name); err == nil {
		return fmt.Errorf("create site %q: name: %w (IIS: Failed to add duplicate collection element, 0x800700b7)", cfg.Name, backend.ErrExists)
	}
	for _, b := range cfg.Bindings {
		if err := n.w.checkBinding(b); err != nil {
			return fmt.Errorf("create site %q: %w", cfg.Name, err)
		}
	}
	cfg.Bindings = slices.Clone(cfg.Bindings)
	backend.SortBindings(cfg.Bindings)
	n.sites[cfg.ID] = &site{cfg: cfg}
	n.byKey = nil
	n.names[strings.ToLower(cfg.Name)] = n.sites[cfg.ID] // byName above built names
	return nil
}

func (w *World) checkBinding(b backend.Binding) error {
	a, err := netip.ParseAddr(b.IP)
	if w.anyAddress && err == nil {
		return nil
	}
	if err != nil || !a.Is4() || !a.IsLoopback() {
		return fmt.Errorf("binding %s: %w: the simulator serves loopback addresses (127.0.0.0/8) only; use one such as 127.0.10.1", b, backend.ErrUnsupported)
	}
	return nil
}

// UpdateBindings adds and removes bindings in one commit; a started site
// keeps running and serves the new set at once, as IIS does.
func (n *Node) UpdateBindings(ctx context.Context, name string, add, remove []backend.Binding) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	for _, b := range add {
		if err := n.w.checkBinding(b); err != nil {
			return fmt.Errorf("update bindings of %q: %w", name, err)
		}
	}
	return n.withSite(name, func(s *site) error {
		old := s.cfg.Bindings
		next := make([]backend.Binding, 0, len(old)+len(add))
		drop := map[string]bool{}
		for _, b := range remove {
			drop[b.Key()] = true
		}
		for _, b := range old {
			if !drop[b.Key()] {
				next = append(next, b)
			}
		}
		next = append(next, add...)
		backend.SortBindings(next)
		s.cfg.Bindings = next
		n.byKey = nil
		if !s.started {
			return nil
		}
		if err := n.checkStartable(s); err != nil {
			s.cfg.Bindings = old
			n.byKey = nil
			return fmt.Errorf("update bindings of %q: %w", name, err)
		}
		if err := n.syncListenersLocked(); err != nil {
			s.cfg.Bindings = old
			n.byKey = nil
			if rerr := n.syncListenersLocked(); rerr != nil {
				err = errors.Join(err, fmt.Errorf("listen again on the old bindings: %w", rerr))
			}
			return fmt.Errorf("update bindings of %q: %w", name, err)
		}
		return nil
	})
}

// SetPhysicalPath changes the site's root folder.
func (n *Node) SetPhysicalPath(ctx context.Context, name, path string) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	if err := n.edit(name, func(s *site) { s.cfg.PhysicalPath = path }); err != nil {
		return err
	}
	n.w.seedIndex(n.name, name, path)
	return nil
}

// SetAppPool changes the site's application pool.
func (n *Node) SetAppPool(ctx context.Context, name, pool string) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	return n.edit(name, func(s *site) { s.cfg.AppPool = pool })
}

// SetAutoStart sets serverAutoStart.
func (n *Node) SetAutoStart(ctx context.Context, name string, on bool) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	return n.edit(name, func(s *site) { s.cfg.AutoStart = on })
}

func (n *Node) edit(name string, f func(*site)) error {
	return n.withSite(name, func(s *site) error { f(s); return nil })
}

// withSite runs f on the named site with the node locked and up, then
// schedules a save: the preamble of every change to one site.
func (n *Node) withSite(name string, f func(*site) error) error {
	defer n.w.persist()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.up(); err != nil {
		return err
	}
	s, err := n.byName(name)
	if err != nil {
		return err
	}
	return f(s)
}

// RenameSite renames a site, keeping its ID.
func (n *Node) RenameSite(ctx context.Context, from, to string) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	return n.withSite(from, func(s *site) error {
		if o, err := n.byName(to); err == nil && o != s {
			return fmt.Errorf("rename site %q to %q: %w", from, to, backend.ErrExists)
		}
		delete(n.names, strings.ToLower(s.cfg.Name))
		s.cfg.Name = to
		n.names[strings.ToLower(to)] = s
		return nil
	})
}

// StartSite starts a site: its addresses must be on the node and no other
// started site may hold one of its ip:port:hostName.
func (n *Node) StartSite(ctx context.Context, name string) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	var path string
	err := n.withSite(name, func(s *site) error {
		path = s.cfg.PhysicalPath
		if s.started {
			return nil
		}
		if err := n.checkStartable(s); err != nil {
			return fmt.Errorf("start site %q: %w", name, err)
		}
		s.started = true
		if err := n.syncKeysLocked(keysOf(s)); err != nil {
			s.started = false
			if rerr := n.syncKeysLocked(keysOf(s)); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return fmt.Errorf("start site %q: %w", name, err)
		}
		return nil
	})
	if err == nil {
		n.w.seedIndex(n.name, name, path)
	}
	return err
}

func (n *Node) checkStartable(s *site) error {
	for _, b := range s.cfg.Bindings {
		if _, ok := n.addrs[b.IP]; !ok {
			return fmt.Errorf("binding %s: %w (IIS: The requested address is not valid in its context)", b, backend.ErrAddressNotHeld)
		}
		n.indexLocked()
		for _, o := range n.byKey[bindingKey(b)] {
			if o == s || !o.started {
				continue
			}
			for _, ob := range o.cfg.Bindings {
				sameSocket := ob.IP == b.IP && ob.Port == b.Port
				if sameSocket && (strings.EqualFold(ob.HostName, b.HostName) || ob.Protocol != b.Protocol) {
					return fmt.Errorf("binding %s is held by started site %q: %w (IIS: Cannot create a file when that file already exists, 0x800700b7)", b, o.cfg.Name, backend.ErrBindingConflict)
				}
			}
		}
	}
	return nil
}

// StopSite stops a site.
func (n *Node) StopSite(ctx context.Context, name string) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	return n.withSite(name, func(s *site) error {
		s.started = false
		return n.syncKeysLocked(keysOf(s))
	})
}

// DeleteSite deletes a site (stopping it first).
func (n *Node) DeleteSite(ctx context.Context, name string) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	return n.withSite(name, func(s *site) error {
		delete(n.sites, s.cfg.ID)
		delete(n.names, strings.ToLower(s.cfg.Name))
		return n.syncListenersLocked()
	})
}

// ListAddresses returns the addresses the node holds.
func (n *Node) ListAddresses(ctx context.Context) ([]backend.Address, error) {
	if err := n.w.delay(ctx, n.name); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.up(); err != nil {
		return nil, err
	}
	out := make([]backend.Address, 0, len(n.addrs))
	for _, a := range n.addrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CIDR < out[j].CIDR })
	return out, nil
}

// AddAddress adds a loopback address; it fails when another live node
// holds it (duplicate address detection).
func (n *Node) AddAddress(ctx context.Context, a backend.Address) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	return n.HoldAddress(a)
}

// HoldAddress is AddAddress without the simulated step latency: the
// bookkeeping of a backend that keeps the simulated IIS in step with
// addresses it manages itself (the Linux backend, with real ones). Paying
// the latency once per address there made a node with hundreds of
// addresses take minutes to look at itself.
func (n *Node) HoldAddress(a backend.Address) error {
	defer n.w.persist()
	p, err := netip.ParsePrefix(a.CIDR)
	if err != nil {
		return fmt.Errorf("add address %q: %w", a.CIDR, err)
	}
	if !n.w.anyAddress && (!p.Addr().Is4() || !p.Addr().IsLoopback()) {
		return fmt.Errorf("add address %s: %w: the simulator only holds loopback addresses (127.0.0.0/8); use one such as 127.0.10.1/32", a.CIDR, backend.ErrUnsupported)
	}
	ip := p.Addr().String()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.up(); err != nil {
		return err
	}
	n.w.mu.Lock()
	owner, held := n.w.liveOwner(n.w.addrOwner, ip)
	if held && owner != n.name {
		n.w.mu.Unlock()
		return fmt.Errorf("add address %s: %w (duplicate address detected: %s holds it)", a.CIDR, backend.ErrAddressInUse, owner)
	}
	n.w.addrOwner[ip] = n.name
	n.w.mu.Unlock()
	n.addrs[ip] = a
	return nil
}

// RemoveAddress removes an address; removing an absent one is no error.
func (n *Node) RemoveAddress(ctx context.Context, a backend.Address) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	return n.ReleaseAddress(a)
}

// ReleaseAddress is RemoveAddress without the simulated step latency (see
// HoldAddress).
func (n *Node) ReleaseAddress(a backend.Address) error {
	defer n.w.persist()
	p, err := netip.ParsePrefix(a.CIDR)
	if err != nil {
		return fmt.Errorf("remove address %q: %w", a.CIDR, err)
	}
	ip := p.Addr().String()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.up(); err != nil {
		return err
	}
	delete(n.addrs, ip)
	n.w.mu.Lock()
	if n.w.addrOwner[ip] == n.name {
		delete(n.w.addrOwner, ip)
	}
	n.w.mu.Unlock()
	// A started site whose address left stops listening there, as HTTP.sys does.
	var keys []string
	for key := range n.listeners {
		if host, _, err := net.SplitHostPort(key); err == nil && host == ip {
			keys = append(keys, key)
		}
	}
	return n.syncKeysLocked(keys)
}

// ListVolumes returns every volume known in the world; Online when this
// node holds it.
func (n *Node) ListVolumes(ctx context.Context) ([]backend.Volume, error) {
	if err := n.w.delay(ctx, n.name); err != nil {
		return nil, err
	}
	if err := n.checkUp(); err != nil {
		return nil, err
	}
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	out := make([]backend.Volume, 0, len(n.w.volRoots))
	for id, root := range n.w.volRoots {
		kind, ident, _ := strings.Cut(id, ":")
		owner, ok := n.w.liveOwner(n.w.volOwner, id)
		out = append(out, backend.Volume{ID: backend.VolumeID{Kind: kind, ID: ident}, Root: root, Online: ok && owner == n.name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out, nil
}

// BringOnline mounts a volume at root on this node; it fails while another
// live node holds it (a shared disk's reservation, a mirror's locked target).
func (n *Node) BringOnline(ctx context.Context, id backend.VolumeID, root string) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	defer n.w.persist()
	if err := n.checkUp(); err != nil {
		return err
	}
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	key := id.String()
	if owner, ok := n.w.liveOwner(n.w.volOwner, key); ok && owner != n.name {
		what := "reserved by"
		if id.Kind == backend.VolumeMirror {
			what = "the mirror source is on"
		}
		return fmt.Errorf("bring volume %s online: %w (%s %s)", id, backend.ErrVolumeReserved, what, owner)
	}
	n.w.volOwner[key] = n.name
	if old, ok := n.w.volRoots[key]; !ok || old != root {
		// Rebuilt at the next look-up only when a root changed: bringing
		// thousands of volumes online must not rebuild it thousands of
		// times.
		n.w.volRoots[key] = root
		n.w.rootIndex = nil
	}
	return os.MkdirAll(n.w.VolumeDir(id), 0o755)
}

// TakeOffline releases a volume held by this node.
func (n *Node) TakeOffline(ctx context.Context, id backend.VolumeID) error {
	if err := n.w.delay(ctx, n.name); err != nil {
		return err
	}
	defer n.w.persist()
	if err := n.checkUp(); err != nil {
		return err
	}
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	if n.w.volOwner[id.String()] == n.name {
		delete(n.w.volOwner, id.String())
	}
	return nil
}

// Probe checks a binding over the network.
func (n *Node) Probe(ctx context.Context, b backend.Binding, path string, timeout time.Duration) error {
	return n.probe.Probe(ctx, b, path, timeout)
}
