package record

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/store"
)

type sink struct {
	mu     sync.Mutex
	events []store.Event
	got    chan struct{}
}

func (s *sink) EventBatch(_ context.Context, events []store.Event) {
	s.mu.Lock()
	s.events = append(s.events, events...)
	s.mu.Unlock()
	s.got <- struct{}{}
}

func TestTeeAndEventf(t *testing.T) {
	var a, b []string
	r := Tee(Func(func(e store.Event) { a = append(a, e.Reason+" "+e.Message) }), nil, Func(func(e store.Event) { b = append(b, e.Object) }))
	Eventf(r, store.Warning, "StepFailed", "IISSite/web1", "node1", "start %s: %v", "web1", "port in use")
	if diff := cmp.Diff([]string{"StepFailed start web1: port in use"}, a); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"IISSite/web1"}, b); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	Or(nil).Record(store.Event{}) // Discard takes anything
}

// TestAsyncStampsWhenItHappened: the event carries the time it was
// recorded and the component, and is written without the caller waiting.
func TestAsyncStampsWhenItHappened(t *testing.T) {
	s := &sink{got: make(chan struct{}, 1)}
	r := Async(context.Background(), s, "agent")
	before := time.Now()
	r.Record(store.Event{Reason: "Step"})
	select {
	case <-s.got:
	case <-time.After(5 * time.Second):
		t.Fatal("never written")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events[0]
	if e.Component != "agent" || e.Time.Before(before.UTC().Add(-time.Second)) || e.Time.After(time.Now()) {
		t.Errorf("event %+v", e)
	}
}

// blockingSink holds every write until released, counting them.
type blockingSink struct {
	mu      sync.Mutex
	batches [][]store.Event
	release chan struct{}
}

func (s *blockingSink) EventBatch(_ context.Context, events []store.Event) {
	<-s.release
	s.mu.Lock()
	s.batches = append(s.batches, events)
	s.mu.Unlock()
}

// TestAsyncBatchesWhatWaits: events recorded while a write is in flight
// are written together, in order, never more than asyncBatch at a time,
// and none is lost.
func TestAsyncBatchesWhatWaits(t *testing.T) {
	s := &blockingSink{release: make(chan struct{})}
	r := Async(context.Background(), s, "agent")
	const n = 600
	for i := range n {
		r.Record(store.Event{Reason: "Step", Count: i})
	}
	close(s.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		total := 0
		for _, b := range s.batches {
			total += len(b)
		}
		got := slices.Clone(s.batches)
		s.mu.Unlock()
		if total == n {
			if len(got) > 4 {
				t.Errorf("%d events written in %d batches, want at most 4", n, len(got))
			}
			next := 0
			for _, b := range got {
				if len(b) > asyncBatch {
					t.Errorf("a batch of %d events, over %d", len(b), asyncBatch)
				}
				for _, e := range b {
					if e.Count != next {
						t.Fatalf("event %d written where %d was due", e.Count, next)
					}
					next++
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events written", total, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
