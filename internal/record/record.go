// Package record carries events from the controllers to the store and to
// any other listener (the live log of `sitekeeper up`), through one
// interface, as client-go's EventRecorder does: a controller is handed a
// Recorder and never knows where its events go.
package record

import (
	"context"
	"fmt"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Recorder records events. Record never blocks its caller on I/O: a node
// cut off from quorum must finish its take-down before its lease expires.
type Recorder interface {
	Record(e store.Event)
}

// Func is a Recorder made of a function.
type Func func(store.Event)

// Record calls f.
func (f Func) Record(e store.Event) { f(e) }

// Discard drops every event.
var Discard Recorder = Func(func(store.Event) {})

// Or returns r, or Discard when r is nil.
func Or(r Recorder) Recorder {
	if r == nil {
		return Discard
	}
	return r
}

// Eventf records an event of type store.Normal or store.Warning.
func Eventf(r Recorder, eventType, reason, object, node, format string, args ...any) {
	r.Record(store.Event{Type: eventType, Reason: reason, Object: object, Node: node, Message: fmt.Sprintf(format, args...)})
}

// Tee records every event to each recorder in turn.
func Tee(rs ...Recorder) Recorder {
	return Func(func(e store.Event) {
		for _, r := range rs {
			if r != nil {
				r.Record(e)
			}
		}
	})
}

// Sink stores events.
type Sink interface {
	EventBatch(ctx context.Context, events []store.Event)
}

// Async writes each event to sink in the background, stamped with the time
// it happened (not when it was written), so that no caller waits on the
// store.
func Async(ctx context.Context, sink Sink, component string) Recorder {
	ctx = context.WithoutCancel(ctx)
	return Func(func(e store.Event) {
		if e.Time.IsZero() {
			e.Time = time.Now().UTC()
		}
		if e.Component == "" {
			e.Component = component
		}
		go sink.EventBatch(ctx, []store.Event{e})
	})
}
