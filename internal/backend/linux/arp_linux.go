//go:build linux

package linux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

const ethPArp = 0x0806

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// arpFrame builds an Ethernet frame carrying an ARP request.
func arpFrame(dst, src net.HardwareAddr, senderIP, targetIP netip.Addr) []byte {
	f := make([]byte, 42)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], ethPArp)
	binary.BigEndian.PutUint16(f[14:16], 1)      // hardware: Ethernet
	binary.BigEndian.PutUint16(f[16:18], 0x0800) // protocol: IPv4
	f[18], f[19] = 6, 4
	binary.BigEndian.PutUint16(f[20:22], 1) // request
	copy(f[22:28], src)
	s4, t4 := senderIP.As4(), targetIP.As4()
	copy(f[28:32], s4[:])
	// target hardware address stays zero
	copy(f[38:42], t4[:])
	return f
}

func packetSocket(ifi *net.Interface) (int, *unix.SockaddrLinklayer, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(ethPArp)))
	if err != nil {
		return -1, nil, fmt.Errorf("ARP socket: %w", err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(ethPArp), Ifindex: ifi.Index, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethPArp), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("bind ARP socket to %s: %w", ifi.Name, err)
	}
	return fd, sa, nil
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// announce sends gratuitous ARP requests (sender and target both ip), so
// that neighbours and switches learn at once that ip now lives at this
// interface's MAC; without it a client keeps the old MAC for tens of
// seconds.
func announce(ifname string, ip netip.Addr, count int) error {
	if !ip.Is4() {
		return nil // IPv6 neighbours learn through the kernel's unsolicited NA.
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	fd, sa, err := packetSocket(ifi)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	frame := arpFrame(broadcast, ifi.HardwareAddr, ip, ip)
	for i := 0; i < count; i++ {
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			return fmt.Errorf("send gratuitous ARP for %s on %s: %w", ip, ifname, err)
		}
		if i+1 < count {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// errNoAnswer: nobody answered the probe.
var errNoAnswer = errors.New("no answer")

// probe asks who holds ip (an RFC 5227 probe: sender address 0.0.0.0, so no
// neighbour's cache changes) and returns the MAC that answered within wait.
func probe(ifname string, ip netip.Addr, wait time.Duration) (net.HardwareAddr, error) {
	macs, err := ask(ifname, ip, wait, true)
	if err != nil {
		return nil, err
	}
	return macs[0], nil
}

// holders sends the same probe and returns every MAC that answered within
// wait, each once: two hosts answering for one address is a conflict even
// when one of them should hold it.
func holders(ifname string, ip netip.Addr, wait time.Duration) ([]net.HardwareAddr, error) {
	macs, err := ask(ifname, ip, wait, false)
	if errors.Is(err, errNoAnswer) {
		return nil, nil
	}
	return macs, err
}

// ask probes for ip and collects the MACs answering until wait ends, or
// until the first when first is set; none is errNoAnswer.
func ask(ifname string, ip netip.Addr, wait time.Duration, first bool) ([]net.HardwareAddr, error) {
	if !ip.Is4() {
		return nil, errNoAnswer
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, sa, err := packetSocket(ifi)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, arpFrame(broadcast, ifi.HardwareAddr, netip.IPv4Unspecified(), ip), 0, sa); err != nil {
		return nil, fmt.Errorf("send ARP probe for %s on %s: %w", ip, ifname, err)
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 128)
	want := ip.As4()
	var macs []net.HardwareAddr
	for {
		left := time.Until(deadline)
		if left <= 0 {
			if len(macs) == 0 {
				return nil, errNoAnswer
			}
			return macs, nil
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, err
		}
		if n == 0 {
			continue
		}
		m, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err != nil || m < 42 {
			continue
		}
		// Any ARP packet whose sender is ip, from another MAC, is a holder.
		sender := net.HardwareAddr(append([]byte(nil), buf[22:28]...))
		if binary.BigEndian.Uint16(buf[12:14]) != ethPArp || [4]byte(buf[28:32]) != want || sender.String() == ifi.HardwareAddr.String() {
			continue
		}
		if !slices.ContainsFunc(macs, func(h net.HardwareAddr) bool { return h.String() == sender.String() }) {
			macs = append(macs, sender)
		}
		if first {
			return macs, nil
		}
	}
}
