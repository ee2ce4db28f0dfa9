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
		out = append(out, backend.Address{CIDR: fmt.Sprintf("%s/%d", strings.TrimSuffix(w.IP, "%"), w.PrefixLength), Interface: w.Alias})
	}
	return out, nil
}

// AddAddress implements backend.Addresses: New-NetIPAddress in the
// ActiveStore with SkipAsSource, wait out duplicate address detection, then
// announce the move with a gratuitous ARP (Windows' own DAD probes do not
// refresh neighbours' caches).
func (b *Backend) AddAddress(ctx context.Context, a backend.Address) error {
	req, err := addRequest(a, int(b.dadTimeout.Milliseconds()))
	if err != nil {
		return err
	}
	var res addedAddress
	if err := runScript(ctx, b.scripts, scriptIP, req, &res); err != nil {
		return fmt.Errorf("add address %s: %w", a.CIDR, err)
	}
	b.announceMove(req.IP, res.Gateway)
	return nil
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
	if err := runScript(ctx, b.scripts, scriptIP, ipRequest{Op: "remove", IP: a.IP()}, nil); err != nil {
		return fmt.Errorf("remove address %s: %w", a.CIDR, err)
	}
	return nil
}
