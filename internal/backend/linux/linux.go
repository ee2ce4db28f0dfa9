//go:build linux

package linux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
)

// Node is a Linux host: real addresses, simulated IIS.
type Node struct {
	*sim.Node
	opt Options

	mu   sync.Mutex
	held map[string]backend.Address // by bare IP: the addresses we added
	// leaseUntil is when the node's lease could first run out, as the
	// agent last said (LeaseRenewed, HoldUntil); zero before the first.
	leaseUntil time.Time
	// renewed is closed (and replaced) when leaseUntil moves.
	renewed chan struct{}
}

// writeStall is how long an address write may take before it is taken
// for one made by a process that was frozen or starved in between: the
// lifetime it gave counts from when the kernel ran it, which may be after
// the lease ran out, so the address is removed again at once. A thawed
// agent whose renewal was mid-write put back, for a tenth of a second, an
// address that had expired while it was stopped and that the other node
// held by then (found by the network-namespace fault run with 200 groups).
// A lifetime written in time ends at most this long after the deadline it
// was cut to, and the agent's deadlines stop 100 ms short of the lease's
// earliest expiry (a netlink write takes well under a millisecond).
const writeStall = 100 * time.Millisecond

// addLifetime is the lifetime, in whole seconds, of an address added at
// now: the backend's own, shortened so that it ends by the time the lease
// could run out. ok is false when not even one second fits (the renewal
// is late).
func addLifetime(now, leaseUntil time.Time, lifetime time.Duration) (secs int, ok bool) {
	secs = int(lifetime / time.Second)
	if leaseUntil.IsZero() {
		return secs, true // not following a lease (yet)
	}
	if fit := int(leaseUntil.Sub(now) / time.Second); fit < secs {
		secs = fit
	}
	return secs, secs >= 1
}

// wroteLate says whether a write begun at began and ended at ended may
// have given an address a lifetime past leaseUntil.
func wroteLate(began, ended, leaseUntil time.Time) bool {
	return ended.Sub(began) > writeStall || (!leaseUntil.IsZero() && ended.After(leaseUntil))
}

// replaceInTime writes na (its lifetime set, counted from began) and takes
// it back at once when the write came too late for leaseUntil (wroteLate):
// the kernel creates an address it is asked to replace, so a late write may
// have put back one that expired meanwhile. late says it was taken back.
func replaceInTime(l netlink.Link, na *netlink.Addr, began, leaseUntil time.Time) (late bool, err error) {
	if err := netlink.AddrReplace(l, na); err != nil {
		return false, err
	}
	if !wroteLate(began, time.Now(), leaseUntil) {
		return false, nil
	}
	_ = netlink.AddrDel(l, na)
	return true, nil
}

var (
	_ backend.Node           = (*Node)(nil)
	_ backend.LeaseFollower  = (*Node)(nil)
	_ backend.StandbyChecker = (*Node)(nil)
)

// New wraps a simulated node whose world allows any address.
func New(n *sim.Node, o Options) (*Node, error) {
	if o.Interface == "" {
		return nil, errors.New("the Linux backend needs --interface (the interface virtual IPs go on)")
	}
	if _, err := netlink.LinkByName(o.Interface); err != nil {
		return nil, fmt.Errorf("interface %q: %w", o.Interface, err)
	}
	if o.Lifetime < time.Second {
		o.Lifetime = time.Second
	}
	if o.ProbeFor == 0 {
		o.ProbeFor = 3 * time.Second
	}
	return &Node{Node: n, opt: o, held: map[string]backend.Address{}, renewed: make(chan struct{})}, nil
}

func (n *Node) link(a backend.Address) (netlink.Link, string, error) {
	name := a.Interface
	if name == "" {
		name = n.opt.Interface
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, name, fmt.Errorf("interface %q: %w", name, err)
	}
	return l, name, nil
}

// resolve finds a's interface and renders it as a netlink address with
// the lifetime.
func (n *Node) resolve(a backend.Address) (netlink.Link, string, *netlink.Addr, netip.Prefix, error) {
	l, ifname, err := n.link(a)
	if err != nil {
		return nil, ifname, nil, netip.Prefix{}, err
	}
	na, p, err := n.addr(a)
	return l, ifname, na, p, err
}

func (n *Node) addr(a backend.Address) (*netlink.Addr, netip.Prefix, error) {
	p, err := netip.ParsePrefix(a.CIDR)
	if err != nil {
		return nil, p, fmt.Errorf("address %q: %w", a.CIDR, err)
	}
	secs := int(n.opt.Lifetime / time.Second)
	na := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, ValidLft: secs, PreferedLft: secs}
	return na, p, nil
}

// ListAddresses implements backend.Addresses: what the kernel has on the
// default interface and on every interface an added address named.
func (n *Node) ListAddresses(ctx context.Context) ([]backend.Address, error) {
	simAddrs, err := n.Node.ListAddresses(ctx)
	if err != nil {
		return nil, err // a powered-off simulated node
	}
	names := map[string]bool{n.opt.Interface: true}
	n.mu.Lock()
	for _, a := range n.held {
		if a.Interface != "" {
			names[a.Interface] = true
		}
	}
	n.mu.Unlock()
	var out []backend.Address
	timed := map[string]bool{} // addresses with a finite lifetime: ours
	for name := range names {
		l, err := netlink.LinkByName(name)
		if err != nil {
			continue
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", name, err)
		}
		for _, a := range addrs {
			ones, _ := a.Mask.Size()
			ip, _ := netip.AddrFromSlice(a.IP)
			iface := ""
			if name != n.opt.Interface {
				iface = name
			}
			out = append(out, backend.Address{CIDR: netip.PrefixFrom(ip.Unmap(), ones).String(), Interface: iface})
			if a.ValidLft > 0 && uint32(a.ValidLft) != ^uint32(0) {
				timed[ip.Unmap().String()] = true
			}
		}
	}
	if err := n.syncSim(ctx, out, simAddrs, timed); err != nil {
		// The kernel's list is right; the simulated IIS would listen on
		// the wrong addresses, so the look fails and is retried.
		return nil, fmt.Errorf("sync the simulated IIS's addresses with the kernel's: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CIDR < out[j].CIDR })
	return out, nil
}

// syncSim keeps the simulated IIS's view of held addresses equal to the
// kernel's for the addresses we manage: one may have expired by lifetime,
// or survived an agent restart. An address with a finite lifetime is one
// this backend added (the host's own addresses have none): a restarted
// agent adopts it, so its lease keeps it alive, or its plan removes it.
func (n *Node) syncSim(ctx context.Context, have, simAddrs []backend.Address, timed map[string]bool) error {
	var errs []error
	onLink := map[string]backend.Address{}
	for _, a := range have {
		onLink[a.IP()] = a
	}
	simHas := map[string]bool{}
	for _, a := range simAddrs {
		simHas[a.IP()] = true
		if _, ok := onLink[a.IP()]; !ok {
			if err := n.Node.ReleaseAddress(a); err != nil {
				errs = append(errs, fmt.Errorf("stop listening on %s: %w", a.IP(), err))
			}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for ip := range n.held {
		if _, ok := onLink[ip]; !ok {
			delete(n.held, ip)
		}
	}
	for ip, a := range onLink {
		if _, ours := n.held[ip]; !ours && timed[ip] {
			n.held[ip] = a
		}
		if _, ours := n.held[ip]; ours && !simHas[ip] {
			if err := n.Node.HoldAddress(a); err != nil {
				errs = append(errs, fmt.Errorf("listen on %s: %w", ip, err))
			}
		}
	}
	return errors.Join(errs...)
}

// AddAddress implements backend.Addresses: probe, add with a lifetime,
// announce, then let the simulated IIS listen on it.
func (n *Node) AddAddress(ctx context.Context, a backend.Address) error {
	l, ifname, na, p, err := n.resolve(a)
	if err != nil {
		return err
	}
	if !n.present(l, p) {
		if err := n.waitFree(ctx, ifname, p.Addr()); err != nil {
			return fmt.Errorf("add address %s: %w", a.CIDR, err)
		}
	}
	n.mu.Lock()
	until, began := n.leaseUntil, time.Now()
	secs, ok := addLifetime(began, until, n.opt.Lifetime)
	for waited := time.Duration(0); !ok; {
		// Not a whole second of lease left: the next renewal (due
		// within a third of the TTL) gives one; a node that cannot
		// renew fences, which ends ctx.
		renewed := n.renewed
		n.mu.Unlock()
		if waited > 2*n.opt.Lifetime {
			return fmt.Errorf("add address %s: the lease has not been renewed for %s: %w", a.CIDR, waited.Round(time.Millisecond), backend.ErrLeaseInDoubt)
		}
		t0 := time.Now()
		select {
		case <-ctx.Done():
			return fmt.Errorf("add address %s: waiting for a lease renewal: %w (%w)", a.CIDR, backend.ErrLeaseInDoubt, ctx.Err())
		case <-renewed:
		case <-time.After(100 * time.Millisecond):
		}
		waited += time.Since(t0)
		n.mu.Lock()
		until, began = n.leaseUntil, time.Now()
		secs, ok = addLifetime(began, until, n.opt.Lifetime)
	}
	na.ValidLft, na.PreferedLft = secs, secs
	late, err := replaceInTime(l, na, began, until)
	if late {
		n.mu.Unlock()
		return fmt.Errorf("add address %s: the write took %s (the process was frozen or starved), so its lifetime could outlive the lease; removed again: %w", a.CIDR, time.Since(began).Round(time.Millisecond), backend.ErrLeaseInDoubt)
	}
	if err == nil {
		n.held[p.Addr().String()] = a
	}
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("add address %s to %s: %w", a.CIDR, ifname, err)
	}
	if err := announce(ifname, p.Addr(), 2); err != nil {
		n.opt.Log.Error(err, "Gratuitous ARP failed; neighbours learn the move when their cache entry ages out", "address", a.CIDR)
	}
	return n.Node.AddAddress(ctx, a)
}

func (n *Node) present(l netlink.Link, p netip.Prefix) bool {
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.Addr() {
			return true
		}
	}
	return false
}

// waitFree probes until no other machine answers for ip; one still
// answering after ProbeFor is ErrAddressInUse.
func (n *Node) waitFree(ctx context.Context, ifname string, ip netip.Addr) error {
	deadline := time.Now().Add(n.opt.ProbeFor)
	for {
		mac, err := probe(ifname, ip, 100*time.Millisecond)
		if errors.Is(err, errNoAnswer) {
			return nil
		}
		if err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s still answers for %s", backend.ErrAddressInUse, mac, ip)
		}
		n.opt.Log.V(1).Info("Address still held elsewhere; waiting", "address", ip.String(), "holder", mac.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RemoveAddress implements backend.Addresses; an absent address is fine.
func (n *Node) RemoveAddress(ctx context.Context, a backend.Address) error {
	if err := n.Node.RemoveAddress(ctx, a); err != nil && !errors.Is(err, backend.ErrPoweredOff) {
		return err
	}
	l, ifname, na, p, err := n.resolve(a)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.held, p.Addr().String())
	if err := netlink.AddrDel(l, na); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("remove address %s from %s: %w", a.CIDR, ifname, err)
	}
	return nil
}

// LeaseRenewed implements backend.LeaseFollower: the addresses we hold get
// a fresh lifetime. One that expired is not put back here: the renewal may
// be of a new lease taken after a fence (a frozen agent thawed), and the
// group may already serve from another node. The agent's reconcile adds it
// again, through the fence gate and the duplicate-address probe, when the
// group is still active here.
func (n *Node) LeaseRenewed() {
	// Lifetimes count whole seconds, rounded down: half a second of room
	// gives every address written in the first half second the full
	// lifetime (without it, the first address got none at all), and none
	// written later than that outlives the lease.
	n.hold(time.Now().Add(n.opt.Lifetime + 500*time.Millisecond))
}

// HoldUntil implements backend.LeaseFollower: when a renewal is late, the
// addresses live on up to just short of when the lease could expire, so a
// renewal delayed by an etcd election (the witness lost) does not let them
// expire before the agent's own fence deadline.
func (n *Node) HoldUntil(until time.Time) { n.hold(until) }

// hold gives every address held a lifetime that ends by until. Each
// lifetime is counted from its own write: with hundreds of addresses the
// last were written a noticeable time after the first, and a lifetime of
// the full length from then outlived the lease, so a frozen node kept an
// address for a moment after the other node took it over (found by the
// network-namespace fault run with 200 groups). The interface's addresses
// are listed once, not once per address.
func (n *Node) hold(until time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.leaseUntil = until
	close(n.renewed)
	n.renewed = make(chan struct{})
	present := map[string]map[netip.Addr]bool{}
	for _, a := range n.held {
		l, ifname, na, p, err := n.resolve(a)
		if err != nil {
			continue
		}
		have, ok := present[ifname]
		if !ok {
			have = addrsOn(l)
			present[ifname] = have
		}
		if !have[p.Addr()] {
			n.opt.Log.Info("Address expired between lease renewals; left for the agent to add again if its group is still active here", "address", a.CIDR, "interface", ifname)
			delete(n.held, p.Addr().String())
			continue
		}
		began := time.Now()
		secs := int(until.Sub(began) / time.Second)
		if secs < 1 {
			continue // whole seconds: its current lifetime ends sooner anyway
		}
		na.ValidLft, na.PreferedLft = secs, secs
		late, err := replaceInTime(l, na, began, until)
		if err != nil {
			n.opt.Log.Error(err, "Could not renew address lifetime", "address", a.CIDR)
			continue
		}
		// Taken back: the agent adds it again if its group is still
		// active here.
		if late {
			delete(n.held, p.Addr().String())
			n.opt.Log.Info("Address lifetime written late (the process was frozen or starved); removed, for the agent to add again if its group is still active here", "address", a.CIDR, "took", time.Since(began).String())
		}
	}
}

// addrsOn is the set of addresses on l now.
func addrsOn(l netlink.Link) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out[ip.Unmap()] = true
		}
	}
	return out
}

// standbyProbeWait is how long a standby's probe listens for answers: a
// host on the segment answers an ARP request in well under a millisecond,
// and every address of a pass is probed at once.
const standbyProbeWait = 100 * time.Millisecond

// CheckStandby implements backend.StandbyChecker: the simulated machine's
// checks, then an ARP probe of each address. An answer from any host is a
// conflict while no node serves the group; while one does, its answer is
// expected and a second host answering is the conflict. (A third host that
// answers alone while the serving node's address is down looks like the
// serving node here; the bring-up's own probe refuses it.)
func (n *Node) CheckStandby(ctx context.Context, need backend.StandbyNeeds) []string {
	out := n.Node.CheckStandby(ctx, need)
	problems := make([]string, len(need.Addresses))
	var wg sync.WaitGroup
	for i, a := range need.Addresses {
		_, ifname, _, p, err := n.resolve(a)
		if err != nil {
			problems[i] = fmt.Sprintf("address %s cannot be probed: %v", a.IP(), err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			problems[i] = addressProblem(p.Addr(), need.ServedBy, ifname)
		}()
	}
	wg.Wait()
	for _, p := range problems {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func addressProblem(ip netip.Addr, servedBy, ifname string) string {
	macs, err := holders(ifname, ip, standbyProbeWait)
	if err != nil {
		return fmt.Sprintf("address %s cannot be probed on %s: %v", ip, ifname, err)
	}
	var names []string
	for _, m := range macs {
		names = append(names, m.String())
	}
	switch {
	case servedBy == "" && len(macs) > 0:
		return fmt.Sprintf("address %s is answered by %s while no node serves the group: another host holds it", ip, strings.Join(names, ", "))
	case len(macs) > 1:
		return fmt.Sprintf("address %s is answered by %d hosts (%s) while %s serves the group: another host holds it too", ip, len(macs), strings.Join(names, ", "), servedBy)
	}
	return ""
}
