package console

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/clusterview"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Snapshot is what the dashboard shows and the state metrics count.
type Snapshot struct {
	Updated time.Time                `json:"updated"`
	Groups  []Group                  `json:"groups"`
	Nodes   []clusterview.NodeRow    `json:"nodes"`
	Sources []Source                 `json:"sources"`
	Events  []store.Event            `json:"events"`
	Error   string                   `json:"error,omitempty"`
	leases  map[string]time.Duration // for the metrics
}

// Group is a group's row with its last move's timings.
type Group struct {
	clusterview.GroupRow
	// LastMove is the newest move-timings event of the group ("decided
	// ..., brought up ..., first healthy probe ...").
	LastMove string `json:"lastMove,omitempty"`
}

// Source is a manifest source: its revision in force and the change set
// it refused, if any.
type Source struct {
	Name      string    `json:"name"`
	Path      string    `json:"path"`
	Revision  string    `json:"revision"`
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	Refused   string    `json:"refused,omitempty"`
}

// Rebuilds are coalesced: a burst of changes (a failover writes a dozen
// keys) is read once, at most every minRebuild; lease ages, which change
// with no write, are read again every leaseRefresh while someone looks.
const (
	minRebuild   = 200 * time.Millisecond
	leaseRefresh = 2 * time.Second
	keepEvents   = 200
	showEvents   = 50
	// watchedFor is how long a scrape keeps the view fresh with no
	// dashboard open: a view nobody reads is not rebuilt.
	watchedFor = 2 * time.Minute
)

// live keeps the Snapshot fresh from the store's watch while someone
// looks (an open dashboard, a scrape in the last two minutes) and tells
// open dashboards when it changed.
type live struct {
	st     Store
	leases func(context.Context) map[string]time.Duration
	log    logr.Logger

	mu         sync.Mutex
	snap       *Snapshot
	json       []byte        // the snapshot sent
	content    []byte        // the same without its time stamp, to tell a change
	changed    chan struct{} // closed and replaced at each change
	subs       int
	lastScrape time.Time
	events     []store.Event // the newest keepEvents, oldest first
	dirty      bool          // the store changed: read it again
	stale      bool          // only the lease ages (or events) are out of date
	wake       chan struct{}
	state      *clusterview.State // the last whole read
	sources    map[string]store.Source
}

func newLive(st Store, leases func(context.Context) map[string]time.Duration, log logr.Logger) *live {
	return &live{st: st, leases: leases, log: log, changed: make(chan struct{}), wake: make(chan struct{}, 1), dirty: true}
}

func (l *live) watched() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.subs > 0 || time.Since(l.lastScrape) < watchedFor
}

func (l *live) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run follows the store until ctx ends.
func (l *live) run(ctx context.Context) {
	changes := l.st.Changes(ctx, store.FamilyObjects, store.FamilyStatus, store.FamilyNodes, store.FamilyReports, store.FamilyDecisions,
		store.FamilyDeleted, store.FamilySuspended, store.FamilySources, store.FamilyObserved)
	var evs <-chan store.Event
	if all, rev, err := l.st.Events(ctx); err == nil {
		l.mu.Lock()
		l.events = lastN(all, keepEvents)
		l.mu.Unlock()
		evs = l.st.WatchEvents(ctx, rev+1)
	} else {
		l.log.Info("Dashboard: events not read; the list stays empty", "error", err.Error())
	}
	tick := time.NewTicker(leaseRefresh)
	defer tick.Stop()
	var last time.Time
	var took time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				return
			}
			l.markDirty()
		case e, ok := <-evs:
			if !ok {
				evs = nil
				continue
			}
			l.mu.Lock()
			l.events = lastN(append(l.events, e), keepEvents)
			l.stale = true
			l.mu.Unlock()
		case <-tick.C:
			l.mu.Lock()
			l.stale = true // lease ages
			l.mu.Unlock()
		case <-l.wake:
		}
		if !l.watched() {
			continue
		}
		// A read of the whole state waits five times as long as the last
		// one took (200 ms at least): with a thousand groups, a failover's
		// burst of writes costs a few reads, not one per write.
		if wait := max(minRebuild, 5*took) - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		l.mu.Lock()
		dirty, stale := l.dirty, l.stale
		l.dirty, l.stale = false, false
		l.mu.Unlock()
		if dirty || stale {
			last = time.Now()
			l.build(ctx, dirty)
			if dirty {
				took = time.Since(last)
			}
		}
	}
}

func (l *live) markDirty() {
	l.mu.Lock()
	l.dirty = true
	l.mu.Unlock()
}

// lastN is the newest n of evs (read clones them before use).
func lastN(evs []store.Event, n int) []store.Event {
	if len(evs) > n {
		return evs[len(evs)-n:]
	}
	return evs
}

// build composes the snapshot (reading the whole state again when reread,
// else only the lease ages) and publishes it when it changed; a rebuild
// that found nothing new is not sent (its time stamp aside).
func (l *live) build(ctx context.Context, reread bool) *Snapshot {
	snap := l.read(ctx, reread)
	updated := snap.Updated
	snap.Updated = time.Time{}
	content, err := json.Marshal(snap)
	snap.Updated = updated
	if err != nil {
		l.log.Error(err, "Dashboard: encode the state")
		return snap
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.snap = snap
	if l.content != nil && bytes.Equal(l.content, content) {
		return snap
	}
	b, err := json.Marshal(snap)
	if err != nil {
		l.log.Error(err, "Dashboard: encode the state")
		return snap
	}
	l.content, l.json = content, b
	close(l.changed)
	l.changed = make(chan struct{})
	return snap
}

func (l *live) read(ctx context.Context, reread bool) *Snapshot {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	snap := &Snapshot{Updated: time.Now().UTC(), Groups: []Group{}, Nodes: []clusterview.NodeRow{}, Sources: []Source{}, Events: []store.Event{}}
	l.mu.Lock()
	cs, srcs := l.state, l.sources
	l.mu.Unlock()
	var err error
	if reread || cs == nil {
		if cs, err = clusterview.Read(rctx, l.st); err == nil {
			srcs, err = l.st.Sources(rctx)
		}
		if err == nil {
			l.mu.Lock()
			l.state, l.sources = cs, srcs
			l.mu.Unlock()
		}
	}
	if err != nil {
		snap.Error = "cannot read the store: " + err.Error()
		l.mu.Lock()
		if l.snap != nil {
			// Keep showing the last known state, saying it is stale.
			prev := *l.snap
			prev.Updated, prev.Error = snap.Updated, snap.Error
			snap = &prev
		}
		l.mu.Unlock()
		return snap
	}
	snap.leases = map[string]time.Duration{}
	if l.leases != nil {
		snap.leases = l.leases(rctx)
	}
	l.mu.Lock()
	events := slices.Clone(l.events)
	l.mu.Unlock()
	moves := map[string]string{}
	for _, e := range events {
		if g, ok := strings.CutPrefix(e.Object, "group/"); ok && strings.HasSuffix(e.Reason, v1alpha1.EventTimingsSuffix) {
			moves[g] = e.Message
		}
	}
	for _, r := range cs.GroupRows("") {
		snap.Groups = append(snap.Groups, Group{GroupRow: r, LastMove: moves[r.Name]})
	}
	for _, n := range cs.NodeRows("", snap.leases, nil) {
		n.Observed = nil // the dashboard shows what it holds: ActiveGroups
		snap.Nodes = append(snap.Nodes, n)
	}
	for _, name := range slices.Sorted(maps.Keys(srcs)) {
		s := srcs[name]
		snap.Sources = append(snap.Sources, Source{Name: s.Name, Path: s.Path, Revision: s.Revision, AppliedAt: s.AppliedAt, Refused: s.LastAttempt.Error})
	}
	for i := len(events) - 1; i >= 0 && len(snap.Events) < showEvents; i-- {
		if events[i].Reason == v1alpha1.EventStep {
			continue // a step per line would push the moves out of sight
		}
		snap.Events = append(snap.Events, events[i])
	}
	return snap
}

// current is the latest snapshot, read now when there is none yet; a
// scrape keeps the view fresh for a while.
func (l *live) current(ctx context.Context, scrape bool) (*Snapshot, []byte, chan struct{}) {
	l.mu.Lock()
	if scrape {
		l.lastScrape = time.Now()
	}
	snap, b, ch := l.snap, l.json, l.changed
	l.mu.Unlock()
	if snap == nil {
		l.build(ctx, true)
		l.mu.Lock()
		snap, b, ch = l.snap, l.json, l.changed
		l.mu.Unlock()
	}
	l.poke()
	return snap, b, ch
}

func (l *live) subscribe(on bool) {
	l.mu.Lock()
	if on {
		l.subs++
	} else {
		l.subs--
	}
	l.mu.Unlock()
	l.poke()
}
