package store

import (
	"context"
	"testing"
	"time"
)

// TestFollowWatchesAgainWhenAWatchEnds: every signal is passed on; a
// closed watch is replaced after the pause, with a signal of its own (a
// change may have come in between); Follow returns when ctx ends (and
// with it the watch).
func TestFollowWatchesAgainWhenAWatchEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan struct{}, 2)
	first <- struct{}{}
	first <- struct{}{}
	close(first) // the watch ended
	second := make(chan struct{})
	go func() { <-ctx.Done(); close(second) }() // as the store's watches end with ctx
	watches, pauses := 0, 0
	calls := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, first,
			func() <-chan struct{} { watches++; return second },
			func() <-chan time.Time { pauses++; return time.After(time.Millisecond) },
			func() { calls <- struct{}{} })
	}()
	for i := 0; i < 3; i++ { // two signals, then the one for the new watch
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d calls of changed, want 3", i)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return when ctx ended")
	}
	// The pause is asked once more as ctx ends; no new watch is.
	if watches != 1 || pauses < 1 {
		t.Errorf("%d new watches after %d pauses, want 1 after a pause", watches, pauses)
	}
}

// TestSignalsStaysOpenAndCoalesces: changes not yet taken are one value;
// a watch that ends does not close the channel, and the new watch's
// changes still come through it.
func TestSignalsStaysOpenAndCoalesces(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan struct{}, 3)
	first <- struct{}{}
	first <- struct{}{}
	first <- struct{}{}
	second := make(chan struct{})
	watches := []chan struct{}{first, second}
	sig := Signals(ctx,
		func() <-chan struct{} { w := watches[0]; watches = watches[1:]; return w },
		func() <-chan time.Time { return time.After(time.Millisecond) })
	waitLen := func(want int) {
		t.Helper()
		for i := 0; i < 5000 && len(first) > 0; i++ {
			time.Sleep(time.Millisecond)
		}
		if got := len(sig); got != want {
			t.Fatalf("%d values waiting, want %d", got, want)
		}
	}
	waitLen(1) // three changes, one value
	<-sig
	close(first) // the watch ended: a new one, and a value for it
	select {
	case _, ok := <-sig:
		if !ok {
			t.Fatal("Signals closed its channel when a watch ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no value after the watch was replaced")
	}
	go func() { second <- struct{}{} }()
	select {
	case <-sig:
	case <-time.After(5 * time.Second):
		t.Fatal("the new watch's change did not come through")
	}
}
