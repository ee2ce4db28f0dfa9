// Command scale measures how Sitekeeper's cost grows with the work, the
// way a hosting provider uses it: one folder of N groups (an IPResource, a
// VolumeResource and an IISSite each, primaries alternating between two
// nodes, health every 5 s) through `sitekeeper up -f DIR --nodes
// node1,node2`, then `sim fail-node node1`. For each N it prints one line:
// time until every site is served, time until every group node1 held
// serves from node2, RSS and idle CPU of `up`.
//
//	go run ./hack/scale -groups 1,100,1000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	netpkg "net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

func main() {
	bin := flag.String("sitekeeper", "bin/sitekeeper", "the sitekeeper binary")
	groups := flag.String("groups", "1,100,1000", "group counts to measure, comma-separated")
	within := flag.Duration("within", 3*time.Minute, "give up on a figure after this long")
	flag.StringVar(&pprofAddr, "pprof", "", "serve up's profiles on this loopback address (SITEKEEPER_PPROF)")
	flag.DurationVar(&hold, "hold", 0, "keep up running this long after the figures, to profile it")
	flag.StringVar(&logTo, "log", "", "write up's log, at -v, to this file (for a timeline of the failover)")
	flag.IntVar(&idleTrace, "idle-trace", 0, "before the failover, print up's CPU for this many 10 s windows after all are served (how it settles)")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fail(err)
	}
	for _, f := range strings.Split(*groups, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fail(fmt.Errorf("-groups %q: want positive counts", *groups))
		}
		line, err := measure(abs, n, *within)
		if err != nil {
			fmt.Printf("groups %d: %v\n", n, err)
			continue
		}
		fmt.Println(line)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}

var (
	pprofAddr string
	hold      time.Duration
	idleTrace int
	logTo     string
)

// net is the second octet of the sites' addresses (127.<net>.x.y).
const net, port = 140, 28080

func url(i int) string { return fmt.Sprintf("http://127.%d.%d.%d:%d/", net, i/250, i%250+1, port) }

func measure(bin string, n int, within time.Duration) (string, error) {
	dir, err := os.MkdirTemp("", "sitekeeper-scale-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	sites := filepath.Join(dir, "sites")
	if err := os.MkdirAll(sites, 0o755); err != nil {
		return "", err
	}
	for first := 0; first < n; first += 500 {
		var b strings.Builder
		for i := first; i < min(n, first+500); i++ {
			nodes := []string{"node1", "node2"}
			if i%2 == 1 {
				nodes = []string{"node2", "node1"}
			}
			b.WriteString(testmanifests.Group(i, testmanifests.Options{Net: net, Port: port, Nodes: nodes, Health: "{interval: 5s, timeout: 2s}"}))
			b.WriteString("---\n")
		}
		if err := os.WriteFile(filepath.Join(sites, fmt.Sprintf("groups-%05d.yaml", first)), []byte(b.String()), 0o644); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	up := exec.CommandContext(ctx, bin, "up", "-f", sites, "--nodes", "node1,node2", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0")
	if logTo != "" {
		up.Args = append(up.Args, "-v")
	}
	up.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	if pprofAddr != "" {
		up.Env = append(up.Env, "SITEKEEPER_PPROF="+pprofAddr)
	}
	out, err := up.StdoutPipe()
	if err != nil {
		return "", err
	}
	up.Stderr = nil
	if logTo != "" {
		f, err := os.Create(logTo)
		if err != nil {
			return "", err
		}
		defer f.Close()
		up.Stderr = f
	}
	if err := up.Start(); err != nil {
		return "", err
	}
	defer func() { up.Process.Signal(os.Interrupt); up.Wait() }()
	endpoint := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if ep, ok := strings.CutPrefix(sc.Text(), "sitekeeper up: store at "); ok {
				endpoint <- strings.SplitN(ep, ",", 2)[0]
			}
		}
	}()
	var ep string
	select {
	case ep = <-endpoint:
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("up did not start")
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	if err := waitServedBy(all, "", within); err != nil {
		return "", fmt.Errorf("not all served within %s: %w", within, err)
	}
	ready := time.Since(start)
	for i := 0; i < idleTrace; i++ {
		fmt.Fprintf(os.Stderr, "groups %d: CPU of up %2d-%2d s after served: %.1f%%\n", n, i*10, i*10+10, idleCPU(up.Process.Pid, 10*time.Second))
	}
	time.Sleep(5 * time.Second) // settle: the first health checks, the last reports
	rss := rssMiB(up.Process.Pid)
	// Over two of the agents' sync periods and the leader's ticks (30 s
	// each): a shorter window holds one of them or none, by chance.
	cpu := idleCPU(up.Process.Pid, idleWindow)
	var held []int // the groups node1 serves: the even ones
	for i := 0; i < n; i += 2 {
		held = append(held, i)
	}
	profiled := make(chan struct{})
	if pprofAddr != "" {
		// A CPU profile of the failover, for `go tool pprof`.
		go func() {
			defer close(profiled)
			resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/profile?seconds=6")
			if err != nil {
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(os.TempDir(), fmt.Sprintf("sitekeeper-failover-%d.prof", n)))
			if err != nil {
				return
			}
			defer f.Close()
			io.Copy(f, resp.Body) //nolint:errcheck // a profile for a person to read
		}()
		time.Sleep(200 * time.Millisecond)
	} else {
		close(profiled)
	}
	at := time.Now()
	if logTo != "" {
		fmt.Fprintf(os.Stderr, "groups %d: fail-node at %s\n", n, at.UTC().Format("15:04:05.000"))
	}
	cli := exec.Command(bin, "sim", "fail-node", "node1", "--endpoints", ep)
	if b, err := cli.CombinedOutput(); err != nil {
		return "", fmt.Errorf("fail-node: %v: %s", err, b)
	}
	checkerCPU := selfCPU()
	if err := waitServedBy(held, "node2", within); err != nil {
		return "", fmt.Errorf("failover not done within %s: %w", within, err)
	}
	failover := time.Since(at)
	if logTo != "" {
		// The checker shares the cores with up: what it took is what up
		// could not have.
		fmt.Fprintf(os.Stderr, "groups %d: the checker used %s of CPU in the failover's %s\n", n, (selfCPU() - checkerCPU).Round(time.Millisecond), failover.Round(time.Millisecond))
	}
	<-profiled
	if hold > 0 {
		fmt.Fprintf(os.Stderr, "groups %d: up keeps running for %s (store %s)\n", n, hold, ep)
		time.Sleep(hold)
	}
	return fmt.Sprintf("groups %d: all served %s after start, failover of node1's %d groups %s, RSS of up %d MiB, idle CPU of up %.1f%% of a core (mean over %s)",
		n, ready.Round(10*time.Millisecond), len(held), failover.Round(10*time.Millisecond), rss, cpu, idleWindow), nil
}

// waitServedBy waits until every site i answers (from node, when set).
//
// The checker is a client of up on the same two cores, so it is made to
// cost little. Each of 64 workers walks its share of the sites in turn and
// asks the site it is at again every 20 ms until it answers, then goes on
// to the next: the last site is seen 20 ms after it serves at most, plus
// one check of each site after it in its share (0.3–0.7 s at 2,500 sites
// on two busy cores). Checking every waiting site every 50 ms instead
// took a whole core of the two during a 2,500-group failover (4.0 s of
// CPU in 4.3 s), and up's bring-up ran on the other one. One lean
// HTTP/1.0 request per check (net/http's transport per connection cost
// more than up's side of it).
func waitServedBy(sites []int, node string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var left atomic.Int64
	left.Store(int64(len(sites)))
	if logTo != "" && node != "" {
		go func() {
			for n := left.Load(); n > 0; n = left.Load() {
				fmt.Fprintf(os.Stderr, "%s: %d of %d sites not yet served by %s\n", time.Now().UTC().Format("15:04:05.000"), n, len(sites), node)
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	const workers = 64
	var wg sync.WaitGroup
	var timedOut atomic.Int64 // a site still not served at the deadline, plus one
	for w := range min(workers, len(sites)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < len(sites) && timedOut.Load() == 0; k += workers {
				for !servedBy(sites[k], node) {
					if time.Now().After(deadline) {
						timedOut.CompareAndSwap(0, int64(sites[k])+1)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				if left.Add(-1) == 0 && logTo != "" && node != "" {
					fmt.Fprintf(os.Stderr, "%s: every site served by %s\n", time.Now().UTC().Format("15:04:05.000"), node)
				}
			}
		}()
	}
	wg.Wait()
	if i := timedOut.Load(); i > 0 {
		return fmt.Errorf("%d of %d sites left, one of them %s", left.Load(), len(sites), url(int(i-1)))
	}
	return nil
}

// servedBy is whether site i answers 200 (from node, when set).
func servedBy(i int, node string) bool {
	addr := fmt.Sprintf("127.%d.%d.%d:%d", net, i/250, i%250+1, port)
	conn, err := netpkg.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return false
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 512), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && (node == "" || resp.Header.Get("X-Sitekeeper-Node") == node)
}

func rssMiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb / 1024
		}
	}
	return -1
}

// idleWindow is how long idle CPU is measured, 5 s after all are served.
const idleWindow = 60 * time.Second

// idleCPU is the share of one core pid used over d.
func idleCPU(pid int, d time.Duration) float64 {
	ticks := func() int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return u + s
	}
	t0 := ticks()
	time.Sleep(d)
	return float64(ticks()-t0) / 100 / d.Seconds() * 100 // USER_HZ is 100 on Linux
}
