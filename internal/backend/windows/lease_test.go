package windows

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// ipHost answers ip.ps1 as a node does: add succeeds, list shows what
// listed holds, extend reports the addresses in gone as missing; every
// extend request is sent on extends.
func ipHost(t *testing.T, listed []map[string]any, gone map[string]bool, extends chan<- ipRequest) *fakeHost {
	f := &fakeHost{t: t}
	f.handle = func(r hostRequest) answer {
		var req ipRequest
		_ = json.Unmarshal(r.Request, &req)
		switch req.Op {
		case "add":
			return answer{reply: reply(map[string]any{"interfaceAlias": "Ethernet0", "gateway": "10.0.0.1"})}
		case "list":
			return answer{reply: reply(map[string]any{"addresses": listed})}
		case "extend":
			var missing []string
			for _, ip := range req.IPs {
				if gone[ip] {
					missing = append(missing, ip)
				}
			}
			extends <- req
			return answer{reply: reply(map[string]any{"missing": missing})}
		}
		return answer{reply: reply(nil)}
	}
	return f
}

func leaseBackend(t *testing.T, f *fakeHost) *Backend {
	b, err := New(Options{Scripts: &Host{Start: f.start, Log: logr.Discard()}, Runner: NewReplay(), DataDir: t.TempDir(), Log: logr.Discard(),
		Lifetime: 2 * time.Second, Announce: func(string, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func nextExtend(t *testing.T, extends <-chan ipRequest) ipRequest {
	t.Helper()
	select {
	case req := <-extends:
		return req
	case <-time.After(5 * time.Second):
		t.Fatal("no extend request after the lease renewal")
		return ipRequest{}
	}
}

// TestAddressesFollowTheLease: an address is added with a lifetime, each
// renewal extends every held address in one request, one that expired
// meanwhile is let go, and a removed one is no longer extended.
func TestAddressesFollowTheLease(t *testing.T) {
	extends := make(chan ipRequest, 10)
	gone := map[string]bool{}
	f := ipHost(t, nil, gone, extends)
	b := leaseBackend(t, f)
	ctx := context.Background()
	for _, cidr := range []string{"10.0.0.50/24", "10.0.0.51/24", "10.0.0.52/24"} {
		if err := b.AddAddress(ctx, backend.Address{CIDR: cidr}); err != nil {
			t.Fatal(err)
		}
	}
	var add ipRequest
	_ = json.Unmarshal(f.requests[0].Request, &add)
	if add.ValidLifetimeSec != 2 || add.NotAfterUnixMs != 0 {
		t.Errorf("added with a lifetime of %d s, not after %d; want 2 s and no deadline before the first renewal", add.ValidLifetimeSec, add.NotAfterUnixMs)
	}
	if err := b.RemoveAddress(ctx, backend.Address{CIDR: "10.0.0.52/24"}); err != nil {
		t.Fatal(err)
	}
	gone["10.0.0.51"] = true
	b.LeaseRenewed()
	req := nextExtend(t, extends)
	if diff := cmp.Diff([]string{"10.0.0.50", "10.0.0.51"}, req.IPs); diff != "" || req.ValidLifetimeSec != 2 {
		t.Errorf("extend %v with %d s (-want +got ips):\n%s", req.IPs, req.ValidLifetimeSec, diff)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !cmp.Equal(b.lease.heldAddresses(), []string{"10.0.0.50"}) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.lease.heldAddresses(); !cmp.Equal(got, []string{"10.0.0.50"}) {
		t.Errorf("held after the extend: %v, want the expired one let go", got)
	}
	// A late renewal holds them up to the lease's earliest expiry only,
	// and says when that is, for the script to count what is left of it
	// when it runs.
	until := time.Now().Add(1500 * time.Millisecond)
	b.HoldUntil(until)
	if req := nextExtend(t, extends); req.ValidLifetimeSec != 1 || req.ValidUntilUnixMs != until.UnixMilli() {
		t.Errorf("late renewal: extended by %d s until %d, want 1 s until %d", req.ValidLifetimeSec, req.ValidUntilUnixMs, until.UnixMilli())
	}
	// An add asked now must not run after that: the script refuses it.
	n := len(f.requests)
	if err := b.AddAddress(ctx, backend.Address{CIDR: "10.0.0.53/24"}); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(f.requests[n].Request, &add)
	if add.NotAfterUnixMs != until.UnixMilli() {
		t.Errorf("add after a renewal: not after %d, want %d (when the lease could run out)", add.NotAfterUnixMs, until.UnixMilli())
	}
}

// TestRenewalNeverWaitsOnTheHost: a host that hangs never delays the
// renewal loop; the extension waits beside it, bounded by its deadline.
func TestRenewalNeverWaitsOnTheHost(t *testing.T) {
	f := &fakeHost{t: t}
	f.handle = func(r hostRequest) answer {
		if strings.Contains(string(r.Request), `"extend"`) {
			return answer{hang: true}
		}
		return answer{reply: reply(map[string]any{"gateway": "10.0.0.1"})}
	}
	b := leaseBackend(t, f)
	if err := b.AddAddress(context.Background(), backend.Address{CIDR: "10.0.0.50/24"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 5 {
		b.LeaseRenewed()
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Errorf("five renewals took %s with the host hanging", took)
	}
}

// TestListAdoptsLeasedAddressesAndStripsZones: after a restart, an address
// with a lifetime (only Sitekeeper adds those) is held again and renewed;
// a link-local address's zone is not part of its name.
func TestListAdoptsLeasedAddressesAndStripsZones(t *testing.T) {
	extends := make(chan ipRequest, 10)
	listed := []map[string]any{
		{"ip": "10.0.0.50", "prefixLength": 24, "interfaceAlias": "Ethernet0", "state": "Preferred", "validLifetimeSec": 1},
		{"ip": "10.0.0.11", "prefixLength": 24, "interfaceAlias": "Ethernet0", "state": "Preferred", "validLifetimeSec": -1},
		{"ip": "fe80::1%12", "prefixLength": 64, "interfaceAlias": "Ethernet0", "state": "Preferred"},
	}
	b := leaseBackend(t, ipHost(t, listed, nil, extends))
	got, err := b.ListAddresses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.Address{{CIDR: "10.0.0.50/24", Interface: "Ethernet0"}, {CIDR: "10.0.0.11/24", Interface: "Ethernet0"}, {CIDR: "fe80::1/64", Interface: "Ethernet0"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	if held := b.lease.heldAddresses(); !cmp.Equal(held, []string{"10.0.0.50"}) {
		t.Errorf("adopted %v, want only the address with a lifetime", held)
	}
}

// TestDHCPInterfaceIsRefused: ip.ps1 refuses to add a VIP on an interface
// with DHCP on (New-NetIPAddress would turn DHCP off); the error needs a
// human and names the fix.
func TestDHCPInterfaceIsRefused(t *testing.T) {
	msg := `interface "Ethernet0" has DHCP enabled for IPv4, and adding 10.0.0.50 would silently turn it off: give the interface a static address`
	b, _, _ := newTestBackend(t, psRec(scriptIP, failure("DhcpEnabled", msg), 1))
	err := b.AddAddress(context.Background(), backend.Address{CIDR: "10.0.0.50/24"})
	if !backend.NeedsHuman(err) || !errors.Is(err, backend.ErrUnsupported) || !strings.Contains(err.Error(), "DHCP enabled") {
		t.Errorf("err = %v, want a needs-a-human error naming DHCP", err)
	}
	text, _ := scriptFS.ReadFile("scripts/ip.ps1")
	if !strings.Contains(string(text), "Assert-Static $alias $req.ip") {
		t.Errorf("ip.ps1 does not check DHCP before adding an address")
	}
}
