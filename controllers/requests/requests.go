// Package requests carries out what operators ask of the placement leader:
// a switchover. An operator's role may move groups but not change objects
// (that is an admin's), so its switchover is recorded as a request and the
// leader, whose role may, makes the change with the same checks
// (ops.CarryOutSwitchovers).
package requests

import (
	"context"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/ops"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Store is what the requests are read from and carried out on.
type Store interface {
	ops.Store
	Changes(ctx context.Context, families ...store.Family) <-chan struct{}
}

// Runner carries out requests while its process leads.
type Runner struct {
	Store    Store
	IsLeader func() bool
	Log      logr.Logger
	// Resync looks again with no change seen (default 5 s): a new leader
	// finds what was asked before it led.
	Resync time.Duration

	carryOut func(ctx context.Context) error // tests: what a pass does
}

// rewatchPause is how long Run waits to watch again when its watch of the
// store ended.
const rewatchPause = 200 * time.Millisecond

// Run carries out requests until ctx ends. A watch of the store that ends
// (its member lost its raft leader) is taken again: Run used to return
// then, and no request was carried out until the process restarted.
func (r *Runner) Run(ctx context.Context) error {
	if r.Resync <= 0 {
		r.Resync = 5 * time.Second
	}
	carryOut := r.carryOut
	if carryOut == nil {
		carryOut = func(ctx context.Context) error { return ops.CarryOutSwitchovers(ctx, r.Store) }
	}
	changes := store.Signals(ctx,
		func() <-chan struct{} { return r.Store.Changes(ctx, store.FamilyRequests) },
		func() <-chan time.Time { return time.After(rewatchPause) })
	tick := time.NewTicker(r.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-tick.C:
		}
		if r.IsLeader != nil && !r.IsLeader() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := carryOut(cctx); err != nil && ctx.Err() == nil {
			r.Log.Info("Switchover requests not carried out; trying again", "error", err.Error())
		}
		cancel()
	}
}
