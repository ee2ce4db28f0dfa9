package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/clock"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

func TestSchedule(t *testing.T) {
	now := time.Unix(1000, 0)
	transient := errors.New("RPC server unavailable")
	stalled := &StalledError{backend.ErrAddressInUse}
	type outcome struct {
		res Result
		err error
	}
	tests := []struct {
		name string
		runs []outcome
		want time.Duration // when the key comes back after the last run
	}{
		{"success: only on a change", []outcome{{}}, 0},
		{"success asking to come back", []outcome{{res: Result{RequeueAfter: 5 * time.Second}}}, 5 * time.Second},
		{"first failure", []outcome{{err: transient}}, minBackoff},
		{"failures back off exponentially", []outcome{{err: transient}, {err: transient}, {err: transient}}, 7 * minBackoff},
		{"a success resets the backoff", []outcome{{err: transient}, {err: transient}, {}, {err: transient}}, minBackoff},
		{"needs a human: the longest wait", []outcome{{err: stalled}}, maxBackoff},
		{"the backoff is bounded", func() []outcome {
			var o []outcome
			for range 20 {
				o = append(o, outcome{err: transient})
			}
			return o
		}(), maxBackoff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSchedule()
			var got time.Duration
			for _, o := range tt.runs {
				got = s.done("web", o.res, o.err, now)
			}
			if got != tt.want {
				t.Errorf("comes back in %s, want %s", got, tt.want)
			}
			next, ok := s.next(now)
			if ok != (tt.want > 0) || next != tt.want {
				t.Errorf("next %s (%t), want %s", next, ok, tt.want)
			}
			if tt.want > 0 {
				if due := s.due(now.Add(tt.want - time.Nanosecond)); len(due) != 0 {
					t.Errorf("due early: %v", due)
				}
				if diff := cmp.Diff([]string{"web"}, s.due(now.Add(tt.want))); diff != "" {
					t.Errorf("due (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestLoopRetriesOnTheClock runs the agent's loop on a fake clock: a failing
// step is retried when the clock reaches the backoff, with no sleep on a
// timer of the loop.
func TestLoopRetriesOnTheClock(t *testing.T) {
	n := fake.New()
	n.SetFail("AddAddress", errors.New("the address is being configured"))
	rec := &recorder{}
	clk := clock.NewFake(time.Unix(1000, 0))
	a := &Agent{Node: "node1", Backend: n, Source: staticSource{desiredFor(t, 8080, "node1")}, Reporter: rec, Recorder: rec, Clock: clk, Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx, nil, Options{Resync: time.Hour}) }()
	defer func() { cancel(); <-done }()

	lastPhase := func() store.Phase {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.reports) == 0 {
			return ""
		}
		return rec.reports[len(rec.reports)-1].Phase
	}
	waitUntil(t, func() bool { return lastPhase() == store.PhaseFailed && clk.Waiters() >= 2 })
	n.SetFail("AddAddress", nil)
	clk.Advance(minBackoff - time.Millisecond)
	if lastPhase() != store.PhaseFailed {
		t.Fatal("retried before its backoff ended")
	}
	clk.Advance(time.Millisecond)
	waitUntil(t, func() bool { return lastPhase() == store.PhaseConverged })
}

// waitUntil polls what another goroutine makes true; it never waits for a
// timer of the code under test (those run on the fake clock).
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not met")
}
