package requests

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/store"
)

// endingWatch is a store whose first watch ends at once, as a member's
// does when it loses its raft leader; later watches are the test's.
type endingWatch struct {
	Store   // only Changes is called: the pass is the test's
	watches atomic.Int32
	later   chan struct{}
}

func (s *endingWatch) Changes(ctx context.Context, _ ...store.Family) <-chan struct{} {
	if s.watches.Add(1) == 1 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return s.later
}

// TestRequestsAreCarriedOutAfterAWatchEnds: the runner watches again when
// its watch ends, looks once for what came in between, and carries out
// requests signalled through the new watch. It used to return, and no
// request was carried out until the process restarted.
func TestRequestsAreCarriedOutAfterAWatchEnds(t *testing.T) {
	st := &endingWatch{later: make(chan struct{})}
	passes := make(chan struct{}, 10)
	r := &Runner{Store: st, IsLeader: func() bool { return true }, Log: logr.Discard(), Resync: time.Hour,
		carryOut: func(context.Context) error { passes <- struct{}{}; return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(what string) {
		t.Helper()
		select {
		case <-passes:
		case <-done:
			t.Fatalf("Run returned before %s", what)
		case <-time.After(5 * time.Second):
			t.Fatalf("no pass for %s", what)
		}
	}
	wait("the look after the new watch")
	if n := st.watches.Load(); n != 2 {
		t.Fatalf("%d watches, want 2", n)
	}
	st.later <- struct{}{} // a request written
	wait("a request signalled through the new watch")
}
