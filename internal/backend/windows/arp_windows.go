//go:build windows

package windows

import (
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"
)

var (
	iphlpapi = syscall.NewLazyDLL("iphlpapi.dll")
	sendARP  = iphlpapi.NewProc("SendARP")
)

// gratuitousARP announces that ip now lives here. Windows has no arping
// and its duplicate-address probes use sender 0.0.0.0, which neighbours
// ignore; SendARP with the virtual IP as source sends a broadcast ARP
// request whose sender is (ip, this NIC's MAC), and every neighbour holding
// an entry for ip updates it (RFC 826). The request asks for the gateway,
// the neighbour whose cache matters most. [verify] on a real network that
// the router refreshes its entry.
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
