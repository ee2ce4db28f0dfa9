//go:build linux

package netns

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"time"
)

// FaultRun is a fault run in one lab: faults in sequence against whichever
// node serves the VIP, each followed by its recovery, with every agent's
// backend steps slowed by a latency drawn anew at each restart.
type FaultRun struct {
	Sitekeeper *Sitekeeper
	Poller     *Poller
	Checker    *Checker
	Faults     int
	// MaxLatency bounds the step latency drawn at each agent restart.
	MaxLatency time.Duration
	Seed       uint64
	// Sequence, when set, names the faults in order ("kill -9", "SIGSTOP",
	// "link cut", "store partition", "witness loss") instead of drawing
	// them.
	Sequence []string
	Progress func(format string, args ...any)
}

// HeldBack is the sequence a fault run found to stall the cluster: kill -9,
// SIGSTOP, link cut, twice, each of the node serving.
var HeldBack = []string{"kill -9", "SIGSTOP", "link cut", "kill -9", "SIGSTOP", "link cut"}

// FaultReport is what a run found.
type FaultReport struct {
	Faults, Samples int
	// DualHolders are the moments two nodes held the VIP.
	DualHolders []string
	// DualAnswers are answers from a node after the group answered from
	// the other node and before a failover could have happened: a frozen
	// agent's process answering a queued request on SIGCONT, for one.
	DualAnswers []string
	// Failovers are the times from a fault until the other node answered.
	Failovers []time.Duration
	// Stalls are the faults after which the other node did not serve in
	// time.
	Stalls []string
	// Refusals are the steps refused because another machine still held
	// the address (a premature take-over seen by the ARP probe).
	Refusals []string
}

// Line is the one-line summary.
func (r FaultReport) Line() string {
	p := func(q int) time.Duration {
		if len(r.Failovers) == 0 {
			return 0
		}
		s := slices.Clone(r.Failovers)
		slices.Sort(s)
		return s[(len(s)-1)*q/100].Round(time.Millisecond)
	}
	return fmt.Sprintf("faults injected %d, samples taken %d, samples with the VIP on two nodes %d, answers from two nodes %d, steps refused for a duplicate address %d, stalls %d, failover time p50 %s p99 %s",
		r.Faults, r.Samples, len(r.DualHolders), len(r.DualAnswers), len(r.Refusals), len(r.Stalls), p(50), p(99))
}

// minMove is less than any failover can take (the lease alone is 2 s): two
// nodes answering within it are two active nodes.
const minMove = time.Second

// Run injects the faults and reports (the checker keeps running).
func (f *FaultRun) Run() FaultReport {
	if f.Progress == nil {
		f.Progress = func(string, ...any) {}
	}
	rng := rand.New(rand.NewPCG(f.Seed, f.Seed^0xfa17))
	sk := f.Sitekeeper
	var rep FaultReport
	restart := func(h string) error {
		sk.StepLatency = time.Duration(rng.Int64N(int64(f.MaxLatency) + 1))
		return sk.Start(h)
	}
	kinds := []struct {
		name            string
		inject, recover func(string) error
	}{
		{"kill -9", func(h string) error { sk.Kill(h); return nil }, restart},
		{"SIGSTOP", func(h string) error { return sk.Signal(h, syscall.SIGSTOP) }, func(h string) error { return sk.Signal(h, syscall.SIGCONT) }},
		{"link cut", sk.Lab.Cut, sk.Lab.Heal},
		{"store partition", sk.Lab.CutStore, sk.Lab.HealStore},
		{"witness loss", func(string) error { sk.Kill("witness"); return nil }, func(string) error { return sk.Start("witness") }},
	}
	start := time.Now()
	refused := map[string]bool{}
	collect := func() { // events last an hour: read them as the run goes
		for _, r := range sk.Refusals() {
			if !refused[r] {
				refused[r] = true
				rep.Refusals = append(rep.Refusals, r)
			}
		}
	}
	for rep.Faults < f.Faults {
		if rep.Faults%20 == 19 {
			collect()
		}
		// Whoever serves now is the target: after a stall the run's idea
		// of the active node would be wrong.
		last := f.Poller.Last()
		if !last.OK {
			if _, err := f.Poller.WaitServed("", time.Now(), time.Minute); err != nil {
				rep.Stalls = append(rep.Stalls, fmt.Sprintf("after fault %d nobody serves for a minute: the run stops", rep.Faults))
				break
			}
			last = f.Poller.Last()
		}
		active, other := last.Node, map[string]string{"node1": "node2", "node2": "node1"}[last.Node]
		k := kinds[rng.IntN(len(kinds))]
		if len(f.Sequence) > 0 {
			if rep.Faults >= len(f.Sequence) {
				break
			}
			for _, kk := range kinds {
				if kk.name == f.Sequence[rep.Faults] {
					k = kk
				}
			}
		}
		budget := sk.TakedownBudget(active)
		at := time.Now()
		if err := k.inject(active); err != nil {
			rep.Stalls = append(rep.Stalls, fmt.Sprintf("%s of %s: %v", k.name, active, err))
			break
		}
		rep.Faults++
		moves := k.name != "witness loss"
		expect := other
		if !moves {
			expect = active
		}
		// A slow bring-up waits for the lease, the node's published
		// take-down budget (a step measured while the process was frozen
		// raises it for ten minutes) and its own steps.
		within := 20*time.Second + 12*f.MaxLatency + budget
		up, err := f.Poller.WaitServed(expect, at, within)
		switch {
		case err != nil:
			rep.Stalls = append(rep.Stalls, fmt.Sprintf("fault %d, %s of %s: %v", rep.Faults, k.name, active, err))
			f.Progress("fault %d: %s of %s; %s did not serve within %s", rep.Faults, k.name, active, expect, within)
		case moves:
			rep.Failovers = append(rep.Failovers, up.Sub(at))
			f.Progress("fault %d: %s of %s; %s serves after %s", rep.Faults, k.name, active, expect, up.Sub(at).Round(time.Millisecond))
		default:
			f.Progress("fault %d: %s; %s serves on", rep.Faults, k.name, active)
		}
		if err := k.recover(active); err != nil {
			rep.Stalls = append(rep.Stalls, fmt.Sprintf("recover %s of %s: %v", k.name, active, err))
			break
		}
		time.Sleep(3 * time.Second) // the recovered node rejoins as standby
	}
	collect()
	rep.DualHolders, rep.Samples = f.Checker.Snapshot()
	rep.DualAnswers = flipFlops(f.Poller.Since(start))
	return rep
}

// flipFlops finds answers from a node after another node answered, less
// than minMove after that node answered for the first time: no failover
// moves a group that fast, so both were serving.
func flipFlops(samples []Sample) []string {
	var out []string
	var cur string
	var since time.Time // when cur first answered
	var prev string
	for _, s := range samples {
		if !s.OK {
			continue
		}
		if s.Node != cur {
			if prev == s.Node && s.At.Sub(since) < minMove {
				out = append(out, fmt.Sprintf("%s answered at %s, %s after %s had taken over", s.Node, s.At.Format("15:04:05.000"), s.At.Sub(since).Round(time.Millisecond), cur))
			}
			prev, cur, since = cur, s.Node, s.At
		}
	}
	return out
}
