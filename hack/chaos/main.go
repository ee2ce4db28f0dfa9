// Command chaos runs a fault run and prints one line: faults injected,
// samples taken, samples with an address on two nodes, steps refused for a
// duplicate address (or answers from two nodes, with -netns), failover time
// p50/p99. Without -netns it runs against the embedded default (power loss,
// partition, stopped sites, step latency); with -netns, as root, in network
// namespaces with the Linux backend (kill -9, SIGSTOP, link cut, store partition, witness
// loss, step latency drawn at each restart). It exits 1 when two nodes
// held or served an address at once, a step was refused for a duplicate,
// or a site was not served in time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/chaos"
)

func main() {
	var o chaos.Options
	flag.IntVar(&o.Faults, "faults", 200, "faults to inject")
	flag.IntVar(&o.Groups, "groups", 2, "resource groups (with -netns: the site plus groups-1 more, when over 1)")
	flag.DurationVar(&o.MaxLatency, "max-latency", 2*time.Second, "step latency is drawn in [0, this] at each latency fault")
	flag.DurationVar(&o.Spacing, "spacing", 3*time.Second, "the wait between faults is drawn in [spacing/2, spacing]")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed (printed, to repeat a run)")
	inNetns := flag.Bool("netns", false, "run in network namespaces with the Linux backend (root): kill -9, SIGSTOP, link cut, store partition, witness loss")
	bin := flag.String("sitekeeper", "bin/sitekeeper", "with -netns: the sitekeeper binary")
	heldBack := flag.Bool("held-back", false, "with -netns: run the held-back sequence (kill -9, SIGSTOP, link cut, twice, of the node serving) instead of random faults")
	verbose := flag.Bool("v", false, "with -netns: the agents log etcd's messages too, and their logs are kept (without -v, only when the run fails)")
	flag.Parse()
	o.Seed, o.Port, o.Net = *seed, 38080, 66
	dir, err := os.MkdirTemp("", "sitekeeper-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	o.DataDir, o.Log = dir, logr.Discard()
	o.Progress = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
	if *inNetns {
		fmt.Fprintf(os.Stderr, "seed %d\n", o.Seed)
		// With -netns, a -groups given beyond the one site adds extra
		// groups (an address and a site each) whose addresses the checker
		// watches too.
		extra := 0
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "groups" {
				extra = max(o.Groups-1, 0)
			}
		})
		os.Exit(runNetns(*bin, o.Faults, extra, o.MaxLatency, o.Seed, *heldBack, *verbose, o.Progress))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintf(os.Stderr, "seed %d\n", o.Seed)
	rep, err := chaos.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	for _, r := range rep.Refusals {
		fmt.Fprintln(os.Stderr, "refused:", r)
	}
	for _, l := range rep.Lost {
		fmt.Fprintln(os.Stderr, "lost:", l)
	}
	if rep.DuplicateRefusals > 0 || len(rep.Unserved) > 0 {
		fmt.Fprintln(os.Stderr, "--- events of the run:")
		for _, l := range rep.Timeline {
			fmt.Fprintln(os.Stderr, l)
		}
	}
	fmt.Println(rep.Line())
	if rep.DualHolderSamples > 0 || rep.DuplicateRefusals > 0 || len(rep.Unserved) > 0 || len(rep.Lost) > 0 {
		os.Exit(1)
	}
}
