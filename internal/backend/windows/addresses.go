package windows

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// addressStates are CIM's AddressState values, by number.
var addressStates = []string{"Invalid", "Tentative", "Duplicate", "Deprecated", "Preferred"}

type wireAddress struct {
	IP           string `json:"ip"`
	PrefixLength int    `json:"prefixLength"`
	Alias        string `json:"interfaceAlias"`
	State        enum   `json:"state"`
	SkipAsSource bool   `json:"skipAsSource"`
	// ValidLifetimeSec is what is left of a finite lifetime; -1 (or
	// absent) is infinite.
	ValidLifetimeSec int `json:"validLifetimeSec"`
}

// held reports whether the node answers for the address: Tentative is
// still in duplicate address detection, Duplicate and Invalid are not used.
func (w wireAddress) held() bool {
	switch w.State.name(addressStates) {
	case "Preferred", "Deprecated":
		return true
	}
	return false
}

type ipRequest struct {
	Op           string `json:"op"`
	IP           string `json:"ip,omitempty"`
	PrefixLength int    `json:"prefixLength,omitempty"`
	Alias        string `json:"interfaceAlias,omitempty"`
	TimeoutMs    int    `json:"timeoutMs,omitempty"`
	// ValidLifetimeSec, with add and extend, is the address's lifetime
	// (0: it never expires).
	ValidLifetimeSec int      `json:"validLifetimeSec,omitempty"`
	IPs              []string `json:"ips,omitempty"` // extend
	// ValidUntilUnixMs, with extend, is when the lease could run out: the
	// script cuts the lifetime to what is left of it when it runs, not
	// when it was asked (a request that waited behind a slow step on the
	// host would otherwise outlive the lease by that wait).
	ValidUntilUnixMs int64 `json:"validUntilUnixMs,omitempty"`
	// NotAfterUnixMs, with add, is when the lease could run out, as the
	// agent last heard: an add that runs later (it waited on the host,
	// or the agent was frozen after asking) is refused, LeaseInDoubt.
	NotAfterUnixMs int64 `json:"notAfterUnixMs,omitempty"`
}

// addRequest validates a and renders ip.ps1's add request.
func addRequest(a backend.Address, timeoutMs int) (ipRequest, error) {
	p, err := netip.ParsePrefix(a.CIDR)
	if err != nil {
		addr, err2 := netip.ParseAddr(a.CIDR)
		if err2 != nil {
			return ipRequest{}, fmt.Errorf("address %q: %w", a.CIDR, err)
		}
		p = netip.PrefixFrom(addr, addr.BitLen())
	}
	return ipRequest{Op: "add", IP: p.Addr().String(), PrefixLength: p.Bits(), Alias: a.Interface, TimeoutMs: timeoutMs}, nil
}

// ListAddresses implements backend.Addresses: the addresses in the
// ActiveStore that the node answers for.
func (b *Backend) ListAddresses(ctx context.Context) ([]backend.Address, error) {
	var res struct {
		Addresses list[wireAddress] `json:"addresses"`
	}
	if err := runScript(ctx, b.scripts, scriptIP, ipRequest{Op: "list"}, &res); err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []backend.Address
	for _, w := range res.Addresses {
		if !w.held() {
			continue
		}
		ip, _, _ := strings.Cut(w.IP, "%") // a link-local address's zone: fe80::1%12
		if w.ValidLifetimeSec > 0 {
			// Only Sitekeeper adds addresses with a lifetime: one found
			// after a restart is adopted, and renewed with the lease.
			b.lease.hold(ip)
		}
		out = append(out, backend.Address{CIDR: fmt.Sprintf("%s/%d", ip, w.PrefixLength), Interface: w.Alias})
	}
	return out, nil
}

// AddAddress implements backend.Addresses: New-NetIPAddress in the
// ActiveStore with SkipAsSource, wait out duplicate address detection, then
// announce the move with a gratuitous ARP (Windows' own DAD probes do not
// refresh neighbours' caches).
func (b *Backend) AddAddress(ctx context.Context, a backend.Address) error {
	return b.runOne(ctx, backend.GroupOp{Action: "AddAddress", Address: &a})
}

// addRequest is ip.ps1's add of a, with the lifetime the lease allows.
func (b *Backend) addRequest(a backend.Address) (ipRequest, error) {
	req, err := addRequest(a, int(b.dadTimeout.Milliseconds()))
	req.ValidLifetimeSec = b.lease.lifetimeSec()
	if until := b.lease.deadline(); !until.IsZero() {
		req.NotAfterUnixMs = until.UnixMilli()
	}
	return req, err
}

// added is what follows an address's add: it is held (renewed with the
// lease), and the network hears that it moved here.
func (b *Backend) added(req ipRequest, res addedAddress) {
	b.lease.hold(req.IP)
	b.announceMove(req.IP, res.Gateway)
}

// addedAddress is ip.ps1's answer to add: where the address went.
type addedAddress struct {
	Alias   string `json:"interfaceAlias"`
	Gateway string `json:"gateway"`
}

// announceMove tells the network that ip is here now.
func (b *Backend) announceMove(ip, gateway string) {
	if b.announce == nil {
		return
	}
	if err := b.announce(ip, gateway); err != nil {
		// The address serves; a neighbour with a stale cache entry
		// learns the move when its entry ages out.
		b.log.Error(err, "Could not announce address move", "address", ip, "gateway", gateway)
	}
}

// RemoveAddress implements backend.Addresses; an absent address is no error.
func (b *Backend) RemoveAddress(ctx context.Context, a backend.Address) error {
	return b.runOne(ctx, backend.GroupOp{Action: "RemoveAddress", Address: &a})
}
