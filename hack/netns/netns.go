//go:build linux

// Package netns builds a small lab of Linux network namespaces for the
// end-to-end cluster tests and the failover benchmark: hosts node1, node2,
// witness and client, each with eth0 on one bridge (itself in a namespace
// of its own, so the host's network is never touched), processes started
// inside them, links cut and healed, and a look at each host's addresses.
// Close removes every namespace, and with them every process's network,
// address and link it made.
package netns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Hosts of the lab and their addresses on 10.77.0.0/24.
var Hosts = map[string]string{"node1": "10.77.0.1", "node2": "10.77.0.2", "witness": "10.77.0.3", "client": "10.77.0.10"}

// VIP is the virtual IP the tests move between node1 and node2.
const VIP = "10.77.0.100"

// Lab is one set of namespaces; names carry a per-process prefix so two
// labs never collide.
type Lab struct {
	prefix string
	mu     sync.Mutex
	procs  []*exec.Cmd
	closed bool
}

func run(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Available says why namespaces cannot be made here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("network namespaces need root (running as uid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("iproute2's ip command is missing: %w", err)
	}
	probe := fmt.Sprintf("skprobe%d", os.Getpid())
	if err := run("netns", "add", probe); err != nil {
		return fmt.Errorf("cannot create a network namespace: %w", err)
	}
	_ = run("netns", "del", probe)
	return nil
}

// NS is the full namespace name of host.
func (l *Lab) NS(host string) string { return l.prefix + host }

// New builds the lab. On error everything made so far is removed.
func New() (*Lab, error) {
	l := &Lab{prefix: fmt.Sprintf("sk%d-", os.Getpid())}
	if err := l.build(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lab) build() error {
	sw := l.NS("sw")
	if err := run("netns", "add", sw); err != nil {
		return err
	}
	if err := run("-n", sw, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := run("-n", sw, "link", "set", "br0", "up"); err != nil {
		return err
	}
	for _, h := range []string{"node1", "node2", "witness", "client"} {
		ns := l.NS(h)
		port := "p-" + h
		steps := [][]string{
			{"netns", "add", ns},
			{"link", "add", port, "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", sw, "link", "set", port, "master", "br0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
			{"-n", ns, "addr", "add", Hosts[h] + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
		}
		for _, s := range steps {
			if err := run(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Start runs a program inside host's namespace (ip netns exec replaces
// itself with it, so the PID is the program's); its output goes to log.
func (l *Lab) Start(host string, log *os.File, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.NS(host), name}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, host, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	go func() { _ = cmd.Wait() }()
	return cmd, nil
}

// Cut takes host's link down (a partition); Heal brings it back.
func (l *Lab) Cut(host string) error  { return run("-n", l.NS(host), "link", "set", "eth0", "down") }
func (l *Lab) Heal(host string) error { return run("-n", l.NS(host), "link", "set", "eth0", "up") }

// Squat puts cidr on host's eth0 by hand, as a machine outside the cluster
// that claims an address would; Unsquat removes it.
func (l *Lab) Squat(host, cidr string) error {
	return run("-n", l.NS(host), "addr", "add", cidr, "dev", "eth0")
}

// Unsquat removes an address Squat added.
func (l *Lab) Unsquat(host, cidr string) error {
	return run("-n", l.NS(host), "addr", "del", cidr, "dev", "eth0")
}

// CutStore cuts host off from the other store members and nothing else: a
// blackhole route to each other member's address. The node keeps running
// and keeps answering clients on its VIP (and ARP, which is not routed);
// its member loses the others, so its lease stops renewing and it must
// fence itself. HealStore ends it.
func (l *Lab) CutStore(host string) error { return l.storeRoutes(host, "add") }

// HealStore ends a store partition.
func (l *Lab) HealStore(host string) error { return l.storeRoutes(host, "del") }

func (l *Lab) storeRoutes(host, verb string) error {
	for _, m := range []string{"node1", "node2", "witness"} {
		if m == host {
			continue
		}
		if err := run("-n", l.NS(host), "route", verb, "blackhole", Hosts[m]+"/32"); err != nil {
			return err
		}
	}
	return nil
}

// Holds reports whether host has ip on any interface, read with netlink in
// its namespace (no process started: cheap enough to sample every 10 ms).
type Holds struct {
	handles map[string]*netlink.Handle
}

// Watcher opens netlink handles into hosts' namespaces.
func (l *Lab) Watcher(hosts ...string) (*Holds, error) {
	h := &Holds{handles: map[string]*netlink.Handle{}}
	for _, host := range hosts {
		ns, err := netns.GetFromName(l.NS(host))
		if err != nil {
			return nil, err
		}
		hd, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			return nil, err
		}
		h.handles[host] = hd
	}
	return h, nil
}

// Holders lists the hosts holding ip now.
func (h *Holds) Holders(ip string) []string {
	want := netip.MustParseAddr(ip)
	var out []string
	for host, hd := range h.handles {
		addrs, err := hd.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == want {
				out = append(out, host)
			}
		}
	}
	return out
}

// AllHolders lists, for every IPv4 address a watched host holds whose
// text starts with prefix, the hosts holding it: one dump per host.
func (h *Holds) AllHolders(prefix string) map[string][]string {
	out := map[string][]string{}
	for host, hd := range h.handles {
		addrs, err := hd.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ip := a.IP.String(); strings.HasPrefix(ip, prefix) {
				out[ip] = append(out[ip], host)
			}
		}
	}
	return out
}

// Close releases the handles.
func (h *Holds) Close() {
	for _, hd := range h.handles {
		hd.Close()
	}
}

// Dialer returns a DialContext that opens sockets inside host's namespace:
// the socket is created on a thread switched into it, and stays there.
func (l *Lab) Dialer(host string, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			orig, err := netns.Get()
			if err != nil {
				ch <- result{err: err}
				return
			}
			defer orig.Close()
			target, err := netns.GetFromName(l.NS(host))
			if err != nil {
				ch <- result{err: err}
				runtime.UnlockOSThread()
				return
			}
			defer target.Close()
			if err := netns.Set(target); err != nil {
				ch <- result{err: err}
				return // the thread is in an unknown namespace: let it die locked
			}
			c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// Close kills every process started and deletes every namespace (which
// takes their links and addresses with them). Safe to call twice.
func (l *Lab) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	procs := l.procs
	l.mu.Unlock()
	for _, p := range procs {
		if p.Process != nil {
			_ = p.Process.Signal(syscall.SIGCONT)
			_ = p.Process.Kill()
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, h := range []string{"node1", "node2", "witness", "client", "sw"} {
		_ = run("netns", "del", l.NS(h))
	}
}

// Leftovers lists namespaces of this process's prefix still present.
func (l *Lab) Leftovers() []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var left []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], l.prefix) {
			left = append(left, f[0])
		}
	}
	return left
}
