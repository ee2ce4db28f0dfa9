package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestShortFaultRun is the short version of `make chaos`: 20 faults in
// sequence against one cluster, with step latency up to 300 ms, values
// that do not decode written into the store and applies run two at once.
func TestShortFaultRun(t *testing.T) {
	rep, err := Run(context.Background(), Options{Faults: 20, Groups: 2, MaxLatency: 300 * time.Millisecond, Spacing: 800 * time.Millisecond,
		Seed: 20261130, Port: 38180, Net: 67, DataDir: t.TempDir(), Log: logr.Discard(), Progress: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Line())
	if rep.Faults != 20 || rep.Samples == 0 {
		t.Fatalf("the run did not happen: %s", rep.Line())
	}
	if rep.DualHolderSamples > 0 {
		t.Errorf("an address was on two nodes in %d samples", rep.DualHolderSamples)
	}
	for _, r := range rep.Refusals {
		t.Errorf("premature take-over refused: %s", r)
	}
	if len(rep.Unserved) > 0 {
		t.Errorf("not served at the end: %v", rep.Unserved)
	}
	for _, l := range rep.Lost {
		t.Errorf("lost: %s", l)
	}
	if rep.PoisonKeys == 0 || rep.ConcurrentApplies == 0 || rep.FrozenApplies == 0 || rep.DamagedRestarts == 0 || rep.FlagExtremes == 0 {
		t.Errorf("the run left out a kind of fault (poison key, concurrent apply, frozen store, damaged restart, flag extremes): %s", rep.Line())
	}
}
