//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sitekeeper/sitekeeper/hack/netns"
)

// runNetns is the fault run with real addresses: node1, node2, a witness
// and a client in network namespaces, the agents on the Linux backend.
func runNetns(bin string, faults, extra int, maxLatency time.Duration, seed uint64, heldBack, verbose bool, progress func(string, ...any)) int {
	if err := netns.Available(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos -netns:", err)
		return 1
	}
	lab, err := netns.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos -netns:", err)
		return 1
	}
	defer lab.Close()
	dir, err := os.MkdirTemp("", "sitekeeper-chaos-netns-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	abs, _ := filepath.Abs(bin)
	sk := &netns.Sitekeeper{Lab: lab, Bin: abs, Dir: dir, LeaseTTL: 2 * time.Second, Verbose: verbose, Extra: extra}
	checker, err := lab.Check()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer checker.Stop()
	if extra > 0 {
		checker.WatchExtra()
	}
	if err := sk.StartAll(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	poll := lab.Poll(20 * time.Millisecond)
	defer poll.Stop()
	if err := sk.ApplyAndSettle(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := poll.WaitServed("node1", time.Now(), 60*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	run := &netns.FaultRun{Sitekeeper: sk, Poller: poll, Checker: checker, Faults: faults, MaxLatency: maxLatency, Seed: seed, Progress: progress}
	if heldBack {
		run.Sequence, run.Faults = netns.HeldBack, len(netns.HeldBack)
	}
	rep := run.Run()
	for _, l := range append(append(append(rep.DualHolders, rep.DualAnswers...), rep.Refusals...), rep.Stalls...) {
		fmt.Fprintln(os.Stderr, l)
	}
	fmt.Println(rep.Line())
	if len(rep.DualHolders)+len(rep.DualAnswers)+len(rep.Refusals)+len(rep.Stalls) > 0 {
		fmt.Fprintln(os.Stderr, "the agents' logs are kept in", dir)
		return 1
	}
	if verbose {
		fmt.Fprintln(os.Stderr, "the agents' logs are kept in", dir)
		return 0
	}
	os.RemoveAll(dir)
	return 0
}
