// Package record carries events from the controllers to the store and to
// any other listener (the live log of `sitekeeper up`), through one
// interface, as client-go's EventRecorder does: a controller is handed a
// Recorder and never knows where its events go.
package record

import (
	"context"
	"fmt"
	"slices"
	"sync"
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

// Async writes events to sink in the background, stamped with the time
// they happened (not when they were written), so that no caller waits on
// the store. Events that arrive while a write is in flight are written
// together, in order, up to asyncBatch a transaction: a node that takes a
// thousand steps at once writes a few dozen transactions, not a thousand
// (one each, and a goroutine each, was most of the store's work in a
// failover of hundreds of groups). At most asyncQueue events wait; beyond
// that the oldest are dropped, and the drop is itself recorded.
func Async(ctx context.Context, sink Sink, component string) Recorder {
	return &async{ctx: context.WithoutCancel(ctx), sink: sink, component: component}
}

const (
	asyncBatch = 256
	asyncQueue = 20000
)

type async struct {
	ctx       context.Context
	sink      Sink
	component string

	mu      sync.Mutex
	pending []store.Event
	dropped int
	running bool // a goroutine is draining pending
}

func (a *async) Record(e store.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Component == "" {
		e.Component = a.component
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) >= asyncQueue {
		a.pending = a.pending[1:]
		a.dropped++
	}
	a.pending = append(a.pending, e)
	if !a.running {
		a.running = true
		go a.drain()
	}
}

// drain writes what is pending until nothing is, then ends.
func (a *async) drain() {
	for {
		a.mu.Lock()
		n := min(len(a.pending), asyncBatch)
		if n == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		batch := slices.Clone(a.pending[:n])
		a.pending = a.pending[n:]
		if len(a.pending) == 0 {
			a.pending = nil // let the backing array go
		}
		dropped := a.dropped
		a.dropped = 0
		a.mu.Unlock()
		if dropped > 0 {
			batch = append(batch, store.Event{Type: store.Warning, Reason: "EventsDropped", Component: a.component, Time: time.Now().UTC(),
				Message: fmt.Sprintf("%d events were dropped: more than %d waited for the store", dropped, asyncQueue)})
		}
		a.sink.EventBatch(a.ctx, batch)
	}
}
