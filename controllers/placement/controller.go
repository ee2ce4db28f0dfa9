package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/clock"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/parallel"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Store is what the placement leader reads and writes.
type Store interface {
	ListSpecs(ctx context.Context) (store.Snapshot, error)
	Statuses(ctx context.Context) (map[v1alpha1.Ref]v1alpha1.Status, error)
	Nodes(ctx context.Context) (map[string]store.NodeInfo, error)
	KnownNodes(ctx context.Context) (map[string]store.NodeInfo, error)
	Reports(ctx context.Context) ([]store.Report, error)
	Decisions(ctx context.Context) (map[string]store.Decision, error)
	PutDecision(ctx context.Context, d store.Decision, guard store.LeaderGuard) error
	DeleteDecision(ctx context.Context, group string) error
	DeleteReports(ctx context.Context, group string) error
	Suspensions(ctx context.Context) (store.Suspensions, error)
	Drains(ctx context.Context) (map[string]int, error)
	PutStatus(ctx context.Context, ref v1alpha1.Ref, st v1alpha1.Status) error
	DeletionAcks(ctx context.Context, ref v1alpha1.Ref) (map[string]bool, error)
	Remove(ctx context.Context, ref v1alpha1.Ref) error
	Changes(ctx context.Context, families ...store.Family) <-chan struct{}
	Campaign(ctx context.Context, identity string) (store.Leadership, error)
}

// passTimeout bounds one pass of the leader over every group.
const passTimeout = 10 * time.Second

// rewatchPause is how long the leader waits to watch again when its watch
// of the store ended; then it runs a pass, for what came in between.
const rewatchPause = 200 * time.Millisecond

// Backoff bounds for a group whose decision or status could not be written.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// Controller is the placement leader.
type Controller struct {
	Store    Store
	Clock    clock.Clock
	Log      logr.Logger
	Identity string
	// Recorder hears every decision change (events, and the live log of
	// `sitekeeper up`).
	Recorder record.Recorder
	// OnLead, when set, is called each time this controller becomes leader.
	OnLead func()
	// Tick re-evaluates on a timer (default 30 s): a safety net, and what
	// ends a failure window. Changes (a lease lost, a report, a spec)
	// start a pass at once, and a pass that waits on time (a take-down
	// budget, a hold-off) asks for its own wake-up; with thousands of
	// groups a pass every 5 s was a sixth of the idle CPU.
	Tick time.Duration
	// Grace is how long a new leader waits for a never-placed group's
	// preferred node to register (default 3s: more than a lease TTL).
	Grace time.Duration

	leadingSince time.Time
	// statuses is every object's status as this leader last read or
	// wrote it. Only the leader writes status (an ex-leader's writes fail
	// on the election key), so after the first full read of a term its
	// own writes keep it current: a pass with 5,000 groups read 15,000
	// statuses back, most of them its own last writes, for a third of its
	// time. It is read in full again at the pass after each Tick (not at
	// the first pass a Tick after the last read, which was as likely the
	// pass of a failover: 15,000 statuses read back at 5,000 groups held
	// every move up by most of a second), at the latest two Ticks after
	// the last read, and after a write whose outcome is unknown.
	statuses       map[v1alpha1.Ref]v1alpha1.Status
	statusHoldFrom time.Time                 // the start of the last hold of status writes (statusHold)
	statusAnswers  map[string]store.Decision // while statuses are held: the moves not answered yet
	statusesAt     time.Time
	statusesStale  bool       // the Tick came since the last full read
	statusMu       sync.Mutex // statuses, while a pass's writes go out side by side
	// backoff and retryAt hold the groups whose last pass failed: each is
	// retried on its own schedule while the others keep moving.
	backoff map[string]time.Duration
	retryAt map[string]time.Time
	// lastLive and nodeLosses count lease losses per node, as this leader
	// saw them: one per loss, whatever the number of groups.
	lastLive   map[string]bool
	nodeLosses map[string][]time.Time
	upSince    map[string]time.Time // since when each live node has held its lease, as this leader saw it
	downSince  map[string]time.Time // since when each known node has been without one, as this leader saw it
	// damagedSeen holds the damaged keys already warned of (key ->
	// revision): one Warning event per bad value, not one per pass.
	damagedSeen map[string]int64
	graphs      graph.Memo
	leading     atomic.Bool
	crashed     atomic.Bool
}

// Crash makes the next stop look like a power loss: leadership is not
// handed over; the session's lease expires.
func (c *Controller) Crash() { c.crashed.Store(true) }

// Result tells the leader's loop when to look again.
type Result struct {
	RequeueAfter time.Duration
}

func (c *Controller) grace() time.Duration {
	if c.Grace > 0 {
		return c.Grace
	}
	return 3 * time.Second
}

// IsLeader reports whether this controller leads now.
func (c *Controller) IsLeader() bool { return c.leading.Load() }

// Run campaigns for leadership and, once leader, reconciles until ctx ends
// or leadership is lost (then it campaigns again).
func (c *Controller) Run(ctx context.Context) error {
	c.Clock = clock.Or(c.Clock)
	c.Recorder = record.Or(c.Recorder)
	if c.Tick <= 0 {
		c.Tick = 30 * time.Second
	}
	for ctx.Err() == nil {
		if err := c.lead(ctx); err != nil && ctx.Err() == nil {
			c.Log.Error(err, "Leadership lost; campaigning again", "identity", c.Identity)
			select {
			case <-ctx.Done():
			case <-c.Clock.After(500 * time.Millisecond):
			}
		}
	}
	return nil
}

func (c *Controller) lead(ctx context.Context) error {
	l, err := c.Store.Campaign(ctx, c.Identity)
	if err != nil {
		return err
	}
	defer func() {
		if !c.crashed.Load() {
			l.Close()
		}
	}()
	c.Log.V(1).Info("Elected placement leader", "identity", c.Identity)
	c.leading.Store(true)
	defer c.leading.Store(false)
	if c.OnLead != nil {
		c.OnLead()
	}
	c.statuses = nil
	// What this controller saw in an earlier term is not what happened
	// since: a node it saw go down may have come back and gone down again
	// while another leader led, and its take-down budget counts from this
	// term's first look.
	c.lastLive, c.downSince = nil, nil
	c.statusHoldFrom, c.statusAnswers = time.Time{}, nil
	c.backoff, c.retryAt = map[string]time.Duration{}, map[string]time.Time{}
	c.leadingSince = c.Clock.Now()
	// The watch is this term's: one that outlived it was one more watch on
	// the store for every term the process led. When it ends (its member
	// lost its raft leader) a new one is taken after a pause; selecting
	// on the ended watch's closed channel ran passes back to back.
	tctx, endTerm := context.WithCancel(ctx)
	defer endTerm()
	clk := c.Clock // a pass sets c.Clock again; the follower must not read it
	changes := store.Signals(tctx,
		func() <-chan struct{} { return c.Store.Changes(tctx, store.LeaderInputs...) },
		func() <-chan time.Time { return clk.After(rewatchPause) })
	tick := c.Clock.NewTimer(c.Tick)
	defer tick.Stop()
	// One more look when the start-up grace ends, for groups that waited.
	graceEnd := c.Clock.After(c.grace() + 10*time.Millisecond)
	for {
		// A pass never hangs on a store that does not answer: the loop
		// must still notice a lost term, or its end.
		pctx, cancel := context.WithTimeout(ctx, passTimeout)
		began := clk.Now()
		res, err := c.ReconcileAll(pctx, l.Guard())
		took := clk.Now().Sub(began)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.Log.Error(err, "Placement reconcile failed", "retryIn", res.RequeueAfter.String())
		}
		var retry <-chan time.Time
		var retryTimer clock.Timer
		if res.RequeueAfter > 0 {
			retryTimer = c.Clock.NewTimer(res.RequeueAfter)
			retry = retryTimer.C()
		}
		// While the nodes take over groups moved in bulk (statuses held),
		// a change waits as long as the pass took: the leader's own
		// decisions and the new node's reports each woke a pass of every
		// group (0.3 to 0.8 s of a core at 5,000 groups) while that node
		// brought the groups up on the same cores.
		signals := changes
		var paced <-chan time.Time
		if c.statusAnswers != nil && took > 0 {
			signals, paced = nil, clk.After(took)
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-l.Done():
				return fmt.Errorf("election session expired")
			case <-paced:
				signals, paced = changes, nil
				continue wait
			case <-signals:
			case <-tick.C():
				tick.Reset(c.Tick)
				c.statusesDue()
			case <-graceEnd:
			case <-retry:
			}
			break
		}
		if retryTimer != nil {
			retryTimer.Stop()
		}
	}
}

// ReconcileAll decides every group, writes changed decisions and status,
// and finishes deletes that every live node confirmed. A group whose writes
// fail is retried with its own backoff (Result.RequeueAfter says when the
// next one is due); the other groups still move.
func (c *Controller) ReconcileAll(ctx context.Context, guard store.LeaderGuard) (Result, error) {
	c.Clock = clock.Or(c.Clock)
	c.Recorder = record.Or(c.Recorder)
	if c.backoff == nil {
		c.backoff, c.retryAt = map[string]time.Duration{}, map[string]time.Time{}
	}
	now := c.Clock.Now()
	began := now
	nodes, err := c.readNodes(ctx)
	if err != nil {
		return Result{RequeueAfter: minBackoff}, err
	}
	if wait := c.newlyDown(nodes, now); wait > 0 {
		// The statuses are read while the budget runs, not after it: a
		// new leader's first full read (15,000 at 5,000 groups, 0.3 s)
		// was on the failover's path. An error is the next pass's.
		c.statusMu.Lock()
		if _, err := c.loadStatusesLocked(ctx); err != nil {
			c.Log.V(1).Info("Statuses not read ahead", "error", err.Error())
		}
		c.statusMu.Unlock()
		return Result{RequeueAfter: max(wait-c.Clock.Now().Sub(now), time.Millisecond)}, nil
	}
	// The pass decides on the liveness newlyDown looked at: a lease that
	// expires while the rest is read (half a second with thousands of
	// groups) is seen by the next pass, held as it should be, rather
	// than by this one, which would write every group's status while
	// the node's budget runs and move none of them.
	in, err := c.read(ctx, nodes)
	if err != nil {
		// Nothing was decided: the whole pass is retried.
		return Result{RequeueAfter: minBackoff}, err
	}
	read := c.Clock.Now()
	c.countNodeLosses(in.live, now)
	c.noteDown(in.live, in.budgets, now)
	var errs []error
	var release time.Time // the first group waiting out a take-down budget
	var moves []*groupWrite
	var groups []*decided
	failed := map[string]error{}
	var decidedNames []string
	for gi := range in.graph.Groups {
		grp := &in.graph.Groups[gi]
		if t, wait := c.retryAt[grp.Name]; wait && now.Before(t) {
			continue // its own retry brings it back
		}
		d, wake, err := c.reconcileGroup(ctx, in, grp, now)
		if !wake.IsZero() && (release.IsZero() || wake.Before(release)) {
			release = wake
		}
		if err != nil {
			failed[grp.Name] = err
			continue
		}
		decidedNames = append(decidedNames, grp.Name)
		if d == nil {
			continue
		}
		groups = append(groups, d)
		if d.gw != nil {
			moves = append(moves, d.gw)
		}
	}
	// The statuses only when they are written: computing them was a third
	// of a pass that moved thousands of groups and held them.
	holding := c.holdStatuses(moves, in.reports, now)
	writes := moves
	if !holding {
		writes = nil
		for _, d := range groups {
			if w := c.statusesOf(d, in, now); w != nil {
				writes = append(writes, w)
			}
		}
	}
	decidedAt := c.Clock.Now()
	// Moves first: a node that takes groups over starts on the first
	// transactions, and after a node loss half the writes are only the
	// status of groups that lost their standby.
	slices.SortStableFunc(writes, func(a, b *groupWrite) int {
		return boolOrder(a.Decision == nil) - boolOrder(b.Decision == nil)
	})
	maps.Copy(failed, c.write(ctx, guard, writes))
	if len(writes) > 0 {
		c.Log.V(1).Info("Placement pass", "groups", len(in.graph.Groups), "writes", len(writes), "decisions", len(moves), "statusesHeld", holding,
			"read", read.Sub(began).String(), "decide", decidedAt.Sub(read).String(), "write", c.Clock.Now().Sub(decidedAt).String())
	}
	for _, name := range decidedNames {
		if _, bad := failed[name]; !bad {
			delete(c.backoff, name)
			delete(c.retryAt, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(failed)) {
		b := min(c.backoff[name]*2+minBackoff, maxBackoff)
		c.backoff[name], c.retryAt[name] = b, now.Add(b)
		errs = append(errs, fmt.Errorf("group %s: %w", name, failed[name]))
	}
	for name := range in.orphans {
		if err := c.Store.DeleteDecision(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("forget group %s: %w", name, err))
			continue
		}
		if err := c.Store.DeleteReports(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("forget reports of group %s: %w", name, err))
		}
	}
	if err := c.finishDeletes(ctx, in.deleting, in.live); err != nil {
		errs = append(errs, err)
	}
	var res Result
	for _, t := range c.retryAt {
		if d := max(t.Sub(now), time.Millisecond); res.RequeueAfter == 0 || d < res.RequeueAfter {
			res.RequeueAfter = d
		}
	}
	if len(errs) > 0 && res.RequeueAfter == 0 {
		res.RequeueAfter = minBackoff
	}
	if !release.IsZero() {
		if d := max(release.Sub(now), time.Millisecond); res.RequeueAfter == 0 || d < res.RequeueAfter {
			res.RequeueAfter = d
		}
	}
	if holding {
		if d := max(c.statusHoldFrom.Add(statusHold).Sub(now), time.Millisecond); res.RequeueAfter == 0 || d < res.RequeueAfter {
			res.RequeueAfter = d
		}
	}
	return res, errors.Join(errs...)
}

// A pass that moves statusHoldMoves groups or more (a node lost, a first
// placement) writes no status until the nodes the groups moved to have
// answered those decisions (a report for each, served or failed), for
// statusHold at most: the statuses of every moved group and of every
// group that lost its standby (15,000 writes after a node with 2,500
// groups was lost, a second and a half of the store's time) were written
// while the new node read its decisions, brought the groups up and
// reported. Written once it answered, they say where the groups serve,
// not that they are moving, and they are written once, not twice. A
// hold starts at most every 2 × statusHold, so statuses lag by no more
// than statusHold while groups keep moving in bulk.
const (
	statusHoldMoves = 64
	statusHold      = 3 * time.Second
)

// holdStatuses says whether this pass leaves the statuses for later: moves
// are its decisions to write, reports what the nodes said.
func (c *Controller) holdStatuses(moves []*groupWrite, reports map[string]map[string]store.Report, now time.Time) bool {
	if len(moves) >= statusHoldMoves && (c.statusHoldFrom.IsZero() || now.Sub(c.statusHoldFrom) >= 2*statusHold) {
		c.statusHoldFrom, c.statusAnswers = now, map[string]store.Decision{}
	}
	if c.statusAnswers == nil {
		return false
	}
	if now.Sub(c.statusHoldFrom) >= statusHold {
		c.statusAnswers = nil
		return false
	}
	for _, w := range moves {
		if d := w.Decision; d.Active != "" {
			c.statusAnswers[w.Group] = *d // owed an answer from d.Active
		}
	}
	for g, d := range c.statusAnswers {
		if r, ok := reports[g][d.Active]; ok && r.Decided.Equal(d.Since) && r.Phase != store.PhaseProgressing {
			delete(c.statusAnswers, g)
		}
	}
	if len(c.statusAnswers) == 0 {
		c.statusAnswers = nil
		return false
	}
	return true
}

// inputs is everything one pass decides from, read once.
type inputs struct {
	graph          *graph.Graph
	status         map[v1alpha1.Ref]v1alpha1.Status
	deleting       []v1alpha1.Object
	live           map[string]bool
	reports        map[string]map[string]store.Report // group -> node -> report
	decisions      map[string]store.Decision
	orphans        map[string]store.Decision // decisions of groups that no longer exist
	suspended      store.Suspensions
	suspendedNodes map[string]bool
	budgets        map[string]time.Duration // every known node's take-down budget
	unsafe         map[string]string
	// damagedRevs are the revisions of damaged decisions: the group's
	// next decision replaces them, even when it decides nothing new.
	damagedRevs map[string]int64
	// drains are the nodes being drained with how many groups may move
	// off each at once; movingOff counts those moving off now (kept
	// up to date through the pass).
	drains    map[string]int
	movingOff map[string]int
}

// countNodeLosses records a loss for each node live at the last pass and
// not now; losses older than a day are forgotten.
func (c *Controller) countNodeLosses(live map[string]bool, now time.Time) {
	if c.nodeLosses == nil {
		c.nodeLosses = map[string][]time.Time{}
	}
	for n := range c.lastLive {
		if !live[n] {
			c.nodeLosses[n] = append(c.nodeLosses[n], now)
		}
	}
	if c.upSince == nil {
		c.upSince = map[string]time.Time{}
	}
	for n := range c.upSince {
		if !live[n] {
			delete(c.upSince, n)
		}
	}
	for n := range live {
		if _, ok := c.upSince[n]; !ok {
			c.upSince[n] = now
		}
	}
	for n, ts := range c.nodeLosses {
		if ts = recent(ts, now, 24*time.Hour); len(ts) > 0 {
			c.nodeLosses[n] = ts
		} else {
			delete(c.nodeLosses, n)
		}
	}
	c.lastLive = maps.Clone(live)
}

// maxPassHold is the longest take-down budget a pass is put off for.
const maxPassHold = time.Second

// liveness is the nodes with a lease and every node that ever
// registered, read together before the rest of a pass.
type liveness struct {
	live  map[string]store.NodeInfo
	known map[string]store.NodeInfo
}

func (c *Controller) readNodes(ctx context.Context) (*liveness, error) {
	live, err := c.Store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	known, err := c.Store.KnownNodes(ctx)
	if err != nil {
		return nil, err
	}
	return &liveness{live: live, known: known}, nil
}

// newlyDown looks at the nodes before a pass reads everything else. A
// node live at the last pass and without its lease now may be taking its
// groups down for up to its budget: when that is short, the pass is put
// off until it has passed, so that one pass moves the node's groups and
// writes their status, rather than one pass writing thousands of statuses
// and the next the moves (on a node with thousands of groups each pass
// costs seconds). It returns how long to wait, or 0 to go on now.
func (c *Controller) newlyDown(nodes *liveness, now time.Time) time.Duration {
	if c.downSince == nil {
		c.downSince = map[string]time.Time{}
	}
	// At the first pass of a term every known node without a lease is
	// new to this leader: the leader that went down with its node (one
	// node in two, on two nodes) is followed by one that must hold too.
	candidates := c.lastLive
	if candidates == nil {
		candidates = map[string]bool{}
		for n := range nodes.known {
			candidates[n] = true
		}
	}
	var wait time.Duration
	for n := range candidates {
		if _, live := nodes.live[n]; live {
			continue
		}
		since, seen := c.downSince[n]
		if !seen {
			since = now
			c.downSince[n] = now
		}
		if left := since.Add(nodes.known[n].TakedownBudget.Duration).Sub(now); left > 0 && left <= maxPassHold {
			wait = max(wait, left)
		}
	}
	return wait
}

// noteDown records since when each known node (one with a published
// budget, live or not) has been without its lease.
func (c *Controller) noteDown(live map[string]bool, known map[string]time.Duration, now time.Time) {
	if c.downSince == nil {
		c.downSince = map[string]time.Time{}
	}
	for n := range c.downSince {
		if _, ok := known[n]; !ok || live[n] {
			delete(c.downSince, n)
		}
	}
	for n := range known {
		if _, ok := c.downSince[n]; !ok && !live[n] {
			c.downSince[n] = now
		}
	}
}

// warnDamaged logs each damaged key, and records a Warning event for it
// once (again only when its value changes).
func (c *Controller) warnDamaged(keys []store.DamagedKey) {
	if c.damagedSeen == nil {
		c.damagedSeen = map[string]int64{}
	}
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k.Key] = true
		if rev, ok := c.damagedSeen[k.Key]; ok && rev == k.Revision {
			continue
		}
		c.damagedSeen[k.Key] = k.Revision
		c.Log.Error(store.ErrDamaged, "Skipping a stored value that does not decode", "key", k.Key, "reason", k.Error)
		c.Recorder.Record(store.Event{Type: store.Warning, Reason: store.DamagedWarning, Object: k.Key, Message: store.DamagedMessage(k), Component: Component})
	}
	for k := range c.damagedSeen {
		if !seen[k] {
			delete(c.damagedSeen, k)
		}
	}
}

// statusesDue makes the next pass read every status again (the Tick came).
func (c *Controller) statusesDue() {
	c.statusMu.Lock()
	c.statusesStale = true
	c.statusMu.Unlock()
}

// readStatuses is every object's status: the leader's own copy (see
// Controller.statuses), read in full when there is none, the Tick asked
// for it, or it is two Ticks old. A pass must not change the map it
// returns: the writes do.
func (c *Controller) readStatuses(ctx context.Context) (map[v1alpha1.Ref]v1alpha1.Status, error) {
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	fresh, err := c.loadStatusesLocked(ctx)
	if err != nil || fresh != nil {
		return fresh, err
	}
	return maps.Clone(c.statuses), nil
}

// loadStatusesLocked reads every status into the leader's copy when it
// is due (see statuses) and returns what it read (nil when the copy was
// current); statusMu is held.
func (c *Controller) loadStatusesLocked(ctx context.Context) (map[v1alpha1.Ref]v1alpha1.Status, error) {
	now := clock.Or(c.Clock).Now()
	if c.statuses != nil && c.Tick > 0 && !c.statusesStale && now.Sub(c.statusesAt) < 2*c.Tick {
		return nil, nil
	}
	status, err := c.Store.Statuses(ctx)
	if err != nil {
		return nil, err
	}
	c.statuses, c.statusesAt, c.statusesStale = maps.Clone(status), now, false
	return status, nil
}

// read reads a pass's inputs; nodes, when not nil, is the liveness the
// pass already read.
func (c *Controller) read(ctx context.Context, nodes *liveness) (*inputs, error) {
	// Specs and status apart: the specs are the store's shared values,
	// so an unchanged set gives the same graph without building it again.
	// The reads go side by side: decoding them was a fifth of a pass at
	// 5,000 groups, on one core.
	var (
		snap      store.Snapshot
		status    map[v1alpha1.Ref]v1alpha1.Status
		reports   []store.Report
		decisions map[string]store.Decision
		suspended store.Suspensions
		drains    map[string]int
	)
	reads := []func() error{
		func() (err error) { snap, err = c.Store.ListSpecs(ctx); return err },
		func() (err error) { status, err = c.readStatuses(ctx); return err },
		func() (err error) { reports, err = c.Store.Reports(ctx); return err },
		func() (err error) { decisions, err = c.Store.Decisions(ctx); return err },
		func() (err error) { suspended, err = c.Store.Suspensions(ctx); return err },
		func() (err error) { drains, err = c.Store.Drains(ctx); return err },
		func() (err error) {
			if nodes == nil {
				nodes, err = c.readNodes(ctx)
			}
			return err
		},
	}
	if err := parallel.FirstError(len(reads), len(reads), func(i int) error { return reads[i]() }); err != nil {
		return nil, err
	}
	in := &inputs{status: status, live: map[string]bool{}, reports: map[string]map[string]store.Report{}, decisions: decisions,
		orphans: map[string]store.Decision{}, suspended: suspended, suspendedNodes: suspended.SuspendedNodes(),
		budgets: map[string]time.Duration{}, unsafe: map[string]string{}, damagedRevs: map[string]int64{},
		drains: drains, movingOff: map[string]int{}}
	for _, d := range decisions {
		if d.Target != "" && drains[d.Releasing] > 0 {
			in.movingOff[d.Releasing]++
		}
	}
	for n, info := range nodes.live {
		in.live[n] = true
		if info.Unsafe != "" {
			in.unsafe[n] = info.Unsafe
		}
	}
	for n, info := range nodes.known {
		in.budgets[n] = info.TakedownBudget.Duration
	}
	for _, r := range reports {
		if in.reports[r.Group] == nil {
			in.reports[r.Group] = map[string]store.Report{}
		}
		in.reports[r.Group][r.Node] = r
	}
	var active []v1alpha1.Object
	for _, o := range snap.Objects {
		if o.Meta().DeletionTimestamp != nil {
			in.deleting = append(in.deleting, o)
		} else {
			active = append(active, o)
		}
	}
	in.graph = c.graphs.Of(active) // validated when stored
	groups := map[string]bool{}
	for _, grp := range in.graph.Groups {
		groups[grp.Name] = true
	}
	damaged := slices.Clone(snap.Damaged)
	for name, d := range decisions {
		if d.Damaged == "" {
			continue
		}
		damaged = append(damaged, store.DamagedKey{Key: "placement/" + name, Error: d.Damaged, Revision: d.Revision})
		// Keep the group where it serves: the node that reports it active
		// holds it until a decision says otherwise; none, and it is placed
		// afresh. The next write replaces the bad value (compare-and-swap
		// on its revision).
		rec := store.Decision{Group: name, Revision: d.Revision}
		for node, r := range in.reports[name] {
			if r.Active && in.live[node] {
				rec.Active, rec.Reason, rec.Since = node, v1alpha1.ReasonPlaced, r.Decided
			}
		}
		in.damagedRevs[name] = d.Revision
		if rec.Active == "" {
			delete(decisions, name)
			continue
		}
		decisions[name] = rec
	}
	c.warnDamaged(damaged)
	for name, d := range decisions {
		if !groups[name] {
			in.orphans[name] = d
		}
	}
	return in, nil
}

// draining is the nodes being drained as a group on active sees them: its
// own node counts only while fewer than the drain's parallelism are
// moving off it (a drain moves so many groups at a time).
func (in *inputs) draining(active string) map[string]bool {
	if len(in.drains) == 0 {
		return nil // the common case: no map per group per pass
	}
	out := make(map[string]bool, len(in.drains))
	for n, parallel := range in.drains {
		if n != active || in.movingOff[n] < parallel {
			out[n] = true
		}
	}
	return out
}

// groupWrite is what a pass writes for one group, and what to say once
// it is written.
type groupWrite struct {
	store.PlacementWrite
	events []store.Event
}

// decided is one group as a pass decided it: what its statuses are
// computed from once the pass knows whether it writes them.
type decided struct {
	grp  *graph.Group
	view GroupView
	w    World
	next store.Decision
	gw   *groupWrite // the decision to write, if it changed
}

// reconcileGroup decides one group: its new decision (in d.gw when it
// changed) and when its move may complete (zero when it does not wait
// on a take-down budget). Its members' statuses are statusesOf's.
func (c *Controller) reconcileGroup(ctx context.Context, in *inputs, grp *graph.Group, now time.Time) (*decided, time.Time, error) {
	view := ViewOf(in.graph, grp, in.suspended)
	w := World{Live: in.live, SuspendedNodes: in.suspendedNodes, Reports: in.reports[grp.Name], StartupGrace: now.Sub(c.leadingSince) < c.grace(),
		Budgets: in.budgets, Unsafe: in.unsafe, NodeLosses: c.nodeLosses, Draining: in.draining(in.decisions[grp.Name].Active), UpSince: c.upSince, DownSince: c.downSince}
	var prev *store.Decision
	if _, ok := in.decisions[grp.Name]; !ok && len(in.live) == 0 {
		return nil, time.Time{}, nil // no node has registered yet: nothing to decide
	}
	if d, ok := in.decisions[grp.Name]; ok {
		prev = &d
	} else if old, ok := Inherit(view.Members, in.orphans); ok {
		d := in.orphans[old]
		if err := c.Store.DeleteDecision(ctx, old); err != nil {
			return nil, time.Time{}, fmt.Errorf("carry the placement of renamed group %s over: %w", old, err)
		}
		delete(in.orphans, old)
		d.Revision = 0
		prev = &d
		c.Log.Info("Group renamed; keeping its placement", "from", old, "to", grp.Name, "active", d.Active)
	}
	next, changes := Decide(view, prev, w, now)
	if next.Target != "" && in.drains[next.Releasing] > 0 && (prev == nil || prev.Target == "") {
		in.movingOff[next.Releasing]++
	}
	d := &decided{grp: grp, view: view, w: w, next: next}
	_, repair := in.damagedRevs[grp.Name]
	if prev == nil || repair || !sameDecision(*prev, next) {
		if prev != nil {
			next.Revision = prev.Revision
		} else {
			next.Revision = in.damagedRevs[grp.Name] // 0: must not exist
		}
		gw := &groupWrite{PlacementWrite: store.PlacementWrite{Group: grp.Name, Decision: &next}}
		for _, ch := range changes {
			typ := store.Normal
			if ch.Warning {
				typ = store.Warning
			}
			to := next.Active
			if to == "" {
				to = next.Target // moving there once the old node released it
			}
			gw.events = append(gw.events, store.Event{Type: typ, Reason: ch.Reason, Object: "group/" + grp.Name, Node: to, Message: ch.Message, Component: Component})
		}
		d.gw = gw
	}
	wake := next.ReleaseAfter
	for _, t := range []time.Time{next.RetryAt, next.SwitchbackAt, next.WakeAt} {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	return d, wake, nil
}

// statusesOf adds a decided group's changed statuses (and the event of a
// standby that turned ready or not) to its write; it returns the write,
// nil when nothing changed.
func (c *Controller) statusesOf(d *decided, in *inputs, now time.Time) *groupWrite {
	gw := d.gw
	if gw == nil {
		gw = &groupWrite{PlacementWrite: store.PlacementWrite{Group: d.grp.Name}}
	}
	if ev, ok := standbyChange(d.grp, in, d.next, d.view, d.w); ok {
		gw.events = append(gw.events, ev)
	}
	for _, m := range d.grp.Members {
		o := in.graph.Object(m)
		st := ComputeStatus(o, d.view, d.next, d.w, in.status[m], now)
		if st.Equal(in.status[m]) {
			continue
		}
		if gw.Statuses == nil {
			gw.Statuses = map[v1alpha1.Ref]v1alpha1.Status{}
		}
		gw.Statuses[m] = st
	}
	if gw.Decision == nil && gw.Statuses == nil {
		return nil
	}
	return gw
}

// standbyChange is the event of a group whose StandbyReady condition turns
// (from what its members' status said at the last pass): a Warning when no
// standby could take it over any more, Normal when one can again.
func standbyChange(grp *graph.Group, in *inputs, next store.Decision, view GroupView, w World) (store.Event, bool) {
	if len(grp.Members) == 0 || view.Suspended {
		return store.Event{}, false
	}
	prev := v1alpha1.FindCondition(in.status[grp.Members[0]].Conditions, v1alpha1.ConditionStandbyReady)
	if prev == nil {
		return store.Event{}, false // first look: nothing turned
	}
	ready, why := StandbyReadiness(view, next, w)
	switch {
	case prev.Status == v1alpha1.ConditionTrue && len(ready) == 0:
		return store.Event{Type: store.Warning, Reason: v1alpha1.EventStandbyNotReady, Object: "group/" + grp.Name, Component: Component,
			Message: "no standby could take the group over now" + readinessDetail(why)}, true
	case prev.Status == v1alpha1.ConditionFalse && len(ready) > 0:
		return store.Event{Type: store.Normal, Reason: v1alpha1.ReasonStandbyReady, Object: "group/" + grp.Name, Component: Component,
			Message: "standby ready: " + strings.Join(ready, ", ")}, true
	}
	return store.Event{}, false
}

// BatchStore is a Store that writes many groups' placement in one
// transaction.
type BatchStore interface {
	PutPlacements(ctx context.Context, ws []store.PlacementWrite, guard store.LeaderGuard) error
}

// groupsPerTxn bounds a batch of statuses: three a group make 384
// operations, inside what Sitekeeper's members allow (MaxTxnOps); a store
// that allows fewer refuses the batch, which is then written group by
// group.
const groupsPerTxn = 128

// decisionsPerTxn bounds a batch of decisions written without statuses
// (two operations a group, far inside MaxTxnOps): a node that lost 2,500
// groups' peer is given them in three transactions that commit together,
// and takes them over in one batch; at 256 it began with the half
// committed first and the rest waited for that batch to end (a second).
const decisionsPerTxn = 1024

// write stores the pass's writes, in batches when the store takes them: a
// leader placing a thousand groups makes a few dozen round trips, not four
// thousand. The decisions go first, on their own, then the statuses: the
// nodes act on decisions only, and a status is four times a decision's
// size, so after a node loss the last of 2,500 moves was committed a
// second after the pass had decided instead of a third. A group whose
// decision could not be written has its statuses left for the next pass.
// It returns the groups that failed.
func (c *Controller) write(ctx context.Context, guard store.LeaderGuard, ws []*groupWrite) map[string]error {
	var moves, statuses []*groupWrite
	for _, w := range ws {
		if w.Decision == nil {
			statuses = append(statuses, w)
			continue
		}
		moves = append(moves, &groupWrite{PlacementWrite: store.PlacementWrite{Group: w.Group, Decision: w.Decision}, events: w.events})
		if len(w.Statuses) > 0 {
			statuses = append(statuses, &groupWrite{PlacementWrite: store.PlacementWrite{Group: w.Group, Statuses: w.Statuses}})
		}
	}
	failed := c.writeBatches(ctx, guard, moves, decisionsPerTxn, txnsInFlight)
	statuses = slices.DeleteFunc(statuses, func(w *groupWrite) bool { _, bad := failed[w.Group]; return bad })
	maps.Copy(failed, c.writeBatches(ctx, guard, statuses, groupsPerTxn, statusTxnsInFlight))
	return failed
}

// writeBatches writes ws perTxn groups a transaction. A batch that fails
// is written again group by group, so that only the groups at fault back
// off.
func (c *Controller) writeBatches(ctx context.Context, guard store.LeaderGuard, ws []*groupWrite, perTxn, inFlight int) map[string]error {
	failed := map[string]error{}
	var mu sync.Mutex // failed, and the leader's statuses through wrote
	bs, batching := c.Store.(BatchStore)
	chunks := (len(ws) + perTxn - 1) / perTxn
	// The chunks are disjoint groups, each guarded by its own decisions'
	// revisions and the leadership: sent side by side, they commit in a
	// few raft rounds instead of one after another.
	parallel.Each(chunks, inFlight, func(i int) {
		chunk := ws[i*perTxn : min(len(ws), (i+1)*perTxn)]
		if batching && len(chunk) > 1 {
			pw := make([]store.PlacementWrite, len(chunk))
			for i, w := range chunk {
				pw[i] = w.PlacementWrite
			}
			if err := bs.PutPlacements(ctx, pw, guard); err == nil {
				mu.Lock()
				for _, w := range chunk {
					c.wrote(w)
				}
				mu.Unlock()
				return
			}
		}
		for _, w := range chunk {
			err := c.writeOne(ctx, guard, w)
			mu.Lock()
			if err != nil {
				failed[w.Group] = err
				c.forgetStatuses() // some may be written, some not: read them again
			} else {
				c.wrote(w)
			}
			mu.Unlock()
		}
	})
	return failed
}

// txnsInFlight is how many of a pass's decision transactions are sent at
// once; statusTxnsInFlight how many of its status transactions. The
// statuses go one at a time: the nodes are then reading the decisions
// just written, taking over the groups and reporting (each report bounded
// by a fraction of the lease), and the store applies requests in order,
// so four status batches of 384 writes ahead of each of them held them up.
const txnsInFlight, statusTxnsInFlight = 4, 1

func (c *Controller) writeOne(ctx context.Context, guard store.LeaderGuard, w *groupWrite) error {
	if w.Decision != nil {
		if err := c.Store.PutDecision(ctx, *w.Decision, guard); err != nil {
			return fmt.Errorf("write decision: %w", err)
		}
	}
	for ref, st := range w.Statuses {
		if err := c.Store.PutStatus(ctx, ref, st); err != nil {
			return fmt.Errorf("write status of %s: %w", ref, err)
		}
	}
	return nil
}

// wrote records what a written group's writes said.
func (c *Controller) wrote(w *groupWrite) {
	c.statusMu.Lock()
	if c.statuses != nil {
		maps.Copy(c.statuses, w.Statuses)
	}
	c.statusMu.Unlock()
	for _, e := range w.events {
		c.Recorder.Record(e)
		c.Log.Info("Placement changed", "group", w.Group, "reason", e.Reason, "message", e.Message)
	}
}

// Component names the placement leader in events.
const Component = "placement"

func sameDecision(a, b store.Decision) bool {
	a.Revision, b.Revision = 0, 0
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// finishDeletes removes deleted objects once every live node confirmed they
// are out of service there.
func (c *Controller) finishDeletes(ctx context.Context, deleting []v1alpha1.Object, live map[string]bool) error {
	var errs []error
	for _, o := range deleting {
		ref := v1alpha1.RefOf(o)
		acks, err := c.Store.DeletionAcks(ctx, ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("read deletion of %s: %w", ref, err))
			continue
		}
		done := true
		for n := range live {
			if !acks[n] {
				done = false
			}
		}
		if !done {
			continue
		}
		err = c.Store.Remove(ctx, ref)
		c.forgetStatuses() // its status went with it
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", ref, err))
			continue
		}
		record.Eventf(c.Recorder, store.Normal, v1alpha1.EventDeleted, ref.String(), "", "%s is out of service on every node and removed", ref)
	}
	return errors.Join(errs...)
}

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

// forgetStatuses makes the next pass read every status again.
func (c *Controller) forgetStatuses() {
	c.statusMu.Lock()
	c.statuses = nil
	c.statusMu.Unlock()
}
