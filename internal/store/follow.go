package store

import (
	"context"
	"time"
)

// Follow calls changed for every signal of changes, a channel such as the
// store's Changes gives, until ctx ends. That channel closes when its
// watch ends (a store restarted, a member without a leader): Follow then
// waits for pause (a store that ends every watch at once must not make it
// spin), asks watch for a new one, and calls changed, since a change may
// have come between the two watches. The watches must end with ctx, as
// the store's do.
func Follow(ctx context.Context, changes <-chan struct{}, watch func() <-chan struct{}, pause func() <-chan time.Time, changed func()) {
	for ctx.Err() == nil {
		for range changes {
			changed()
		}
		select {
		case <-ctx.Done():
			return
		case <-pause():
		}
		changes = watch()
		changed()
	}
}

// Signals watches (with watch, at once: a change after Signals returns is
// not missed), follows the watch as Follow does and hands its changes to
// a select loop: the channel it returns never closes, and one value in it
// stands for every change not yet taken. A loop that selected on the
// watch's own channel ran back to back once that channel closed (its
// watch ended), or stopped for good if it took the close as the end.
func Signals(ctx context.Context, watch func() <-chan struct{}, pause func() <-chan time.Time) <-chan struct{} {
	out := make(chan struct{}, 1)
	first := watch()
	go Follow(ctx, first, watch, pause, func() {
		select {
		case out <- struct{}{}:
		default:
		}
	})
	return out
}
