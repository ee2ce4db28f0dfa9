//go:build linux

// Command bench-failover measures the outage a client sees when the active
// node dies (kill -9), for keepalived and for Sitekeeper, in the same
// network namespaces (hack/netns), with the same virtual IP and the same
// client polling it every 20 ms. Run it as root: `make bench-failover`.
//
// Each run builds a fresh lab, waits for a steady state, kills the active
// node's process and times the gap until the client is answered by the
// other node. The checker samples both nodes' addresses every 10 ms and
// counts runs in which both held the VIP at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sitekeeper/sitekeeper/hack/netns"
)

type system struct {
	name  string
	setup func(lab *netns.Lab, dir string) (kill func(), err error)
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "serve" {
		serve(os.Args[2])
		return
	}
	runs := flag.Int("runs", 20, "runs per system")
	bin := flag.String("sitekeeper", "bin/sitekeeper", "the sitekeeper binary")
	only := flag.String("only", "", "run only systems whose name contains this")
	flag.Parse()
	if err := netns.Available(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-failover:", err)
		os.Exit(1)
	}
	self, _ := os.Executable()
	abs, _ := filepath.Abs(*bin)
	systems := []system{
		{"keepalived, defaults (advert_int 1)", keepalived(self, "advert_int 1")},
		{"keepalived, fastest sensible (VRRPv3, advert_int 0.1)", keepalived(self, "advert_int 0.1")},
		{"Sitekeeper, defaults (lease 2s)", sitekeeperSystem(abs, 2*time.Second, 0, 0)},
		{"Sitekeeper, lease 1s", sitekeeperSystem(abs, time.Second, 300*time.Millisecond, 0)},
		{"Sitekeeper, defaults, every backend step 1s", sitekeeperSystem(abs, 2*time.Second, 0, time.Second)},
	}
	fmt.Printf("| system | outage p50 | outage max | runs with the VIP on both nodes |\n| --- | --- | --- | --- |\n")
	for _, s := range systems {
		if *only != "" && !strings.Contains(s.name, *only) {
			continue
		}
		var outages []time.Duration
		dualRuns, failed := 0, 0
		for i := 0; i < *runs; i++ {
			o, dual, err := measure(s)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s run %d: %v\n", s.name, i+1, err)
				failed++
				continue
			}
			outages = append(outages, o)
			if dual {
				dualRuns++
			}
		}
		if len(outages) == 0 {
			fmt.Printf("| %s | - | - | - (all %d runs failed) |\n", s.name, failed)
			continue
		}
		sort.Slice(outages, func(i, j int) bool { return outages[i] < outages[j] })
		note := ""
		if failed > 0 {
			note = fmt.Sprintf(" (%d runs failed)", failed)
		}
		fmt.Printf("| %s | %s | %s | %d of %d%s |\n", s.name, outages[len(outages)/2].Round(time.Millisecond), outages[len(outages)-1].Round(time.Millisecond), dualRuns, len(outages), note)
	}
}

func measure(s system) (time.Duration, bool, error) {
	lab, err := netns.New()
	if err != nil {
		return 0, false, err
	}
	defer lab.Close()
	dir, err := os.MkdirTemp("", "bench-failover-")
	if err != nil {
		return 0, false, err
	}
	defer os.RemoveAll(dir)
	checker, err := lab.Check()
	if err != nil {
		return 0, false, err
	}
	kill, err := s.setup(lab, dir)
	if err != nil {
		checker.Stop()
		return 0, false, err
	}
	poll := lab.Poll(20 * time.Millisecond)
	defer poll.Stop()
	if _, err := poll.WaitServed("node1", time.Now(), 60*time.Second); err != nil {
		checker.Stop()
		return 0, false, err
	}
	time.Sleep(3 * time.Second) // steady state: leases renewed, adverts flowing
	at := time.Now()
	kill()
	first, err := poll.WaitServed("node2", at, 60*time.Second)
	dual, _ := checker.Stop()
	if err != nil {
		return 0, len(dual) > 0, err
	}
	return first.Sub(at), len(dual) > 0, nil
}

// keepalived runs keepalived on node1 (priority 150) and node2 (100), and
// a web server on each answering on every address, as keepalived users do.
func keepalived(self, advert string) func(lab *netns.Lab, dir string) (func(), error) {
	return func(lab *netns.Lab, dir string) (func(), error) {
		version := ""
		if strings.Contains(advert, ".") {
			version = "vrrp_version 3\n"
		}
		var kill func()
		for _, n := range []struct {
			host string
			prio int
		}{{"node1", 150}, {"node2", 100}} {
			conf := fmt.Sprintf(`global_defs {
  %senable_script_security
}
vrrp_instance web {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  %s
  virtual_ipaddress {
    %s/24 dev eth0
  }
}
`, version, n.prio, advert, netns.VIP)
			path := filepath.Join(dir, n.host+".conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				return nil, err
			}
			log, err := os.Create(filepath.Join(dir, n.host+".log"))
			if err != nil {
				return nil, err
			}
			web, err := lab.Start(n.host, log, self, "serve", n.host)
			if err != nil {
				return nil, err
			}
			ka, err := lab.Start(n.host, log, "keepalived", "--dont-fork", "--log-console", "--no-syslog", "-f", path,
				"-p", filepath.Join(dir, n.host+".pid"), "-r", filepath.Join(dir, n.host+".vrrp.pid"), "-c", filepath.Join(dir, n.host+".chk.pid"))
			if err != nil {
				return nil, err
			}
			if n.host == "node1" {
				// The node dies: keepalived and the web server, both -9.
				// Children first: keepalived's VRRP worker gets SIGTERM
				// when its parent dies and would resign gracefully (a
				// priority-0 advert), which a dead node never does.
				kill = func() {
					killChildren(ka.Process.Pid)
					_ = ka.Process.Signal(syscall.SIGKILL)
					_ = web.Process.Signal(syscall.SIGKILL)
				}
			}
		}
		return kill, nil
	}
}

// killChildren kills the processes whose parent is pid (keepalived forks
// its VRRP worker).
func killChildren(pid int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(f) > 1 && f[1] == fmt.Sprint(pid) {
			var child int
			fmt.Sscan(e.Name(), &child)
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
	}
}

func sitekeeperSystem(bin string, lease, election, stepLatency time.Duration) func(lab *netns.Lab, dir string) (func(), error) {
	return func(lab *netns.Lab, dir string) (func(), error) {
		sk := &netns.Sitekeeper{Lab: lab, Bin: bin, Dir: dir, LeaseTTL: lease, ElectionTimeout: election, StepLatency: stepLatency}
		if err := sk.StartAll(); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := sk.Apply(ctx, netns.SiteManifests); err != nil {
			return nil, err
		}
		if err := sk.WitnessLeads(ctx); err != nil {
			return nil, err
		}
		return func() { sk.Kill("node1") }, nil
	}
}

// serve answers every request with 200 and the node's name, on port 80 of
// every address.
func serve(node string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Sitekeeper-Node", node)
		fmt.Fprintf(w, "Hello from %s\n", node)
	})
	srv := &http.Server{Addr: ":80", Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
