//go:build windows

package windows

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

var (
	iphlpapi = syscall.NewLazyDLL("iphlpapi.dll")
	sendARP  = iphlpapi.NewProc("SendARP")
)

// gratuitousARP announces that ip now lives here. Windows has no arping,
// no user-mode way to send a gratuitous ARP, and its duplicate-address
// probes use sender 0.0.0.0, which update no neighbour's cache. SendARP
// answers from the local cache when it holds the gateway, sending nothing:
// ip.ps1's add has just removed that entry, so this call must put a
// broadcast ARP request on the wire, asking for the gateway with the
// virtual IP as sender (SrcIP). By RFC 826 the gateway, the neighbour whose
// cache matters most, records (ip, this NIC's MAC), and every other
// neighbour that holds an entry for ip updates it. [verify] with the
// conformance kit's packet capture that the request's sender is the VIP.
func gratuitousARP(ip, gateway string) error {
	src, err := netip.ParseAddr(ip)
	if err != nil || !src.Is4() {
		return nil // IPv6 neighbours learn through unsolicited NA, sent by the stack.
	}
	dst := src
	if g, err := netip.ParseAddr(gateway); err == nil && g.Is4() {
		dst = g
	}
	var mac [8]byte
	size := uint32(len(mac))
	s4, d4 := src.As4(), dst.As4()
	r, _, _ := sendARP.Call(uintptr(*(*uint32)(unsafe.Pointer(&d4[0]))), uintptr(*(*uint32)(unsafe.Pointer(&s4[0]))), uintptr(unsafe.Pointer(&mac[0])), uintptr(unsafe.Pointer(&size)))
	if r != 0 && dst != src {
		return fmt.Errorf("SendARP to %s from %s: error %d", dst, src, r)
	}
	return nil
}

// arpWhoHas asks which MAC answers for ip: SendARP with no source address
// sends an ARP request (or answers from the neighbour cache, which a
// standby's check accepts: a cached entry for an address no node serves is
// itself a host that held it within the cache's lifetime).
func arpWhoHas(ip string) (string, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return "", false
	}
	var mac [8]byte
	size := uint32(len(mac))
	d4 := a.As4()
	r, _, _ := sendARP.Call(uintptr(*(*uint32)(unsafe.Pointer(&d4[0]))), 0, uintptr(unsafe.Pointer(&mac[0])), uintptr(unsafe.Pointer(&size)))
	if r != 0 || size < 6 {
		return "", false
	}
	return net.HardwareAddr(mac[:6]).String(), true
}
