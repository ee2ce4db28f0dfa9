package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/clock"
	"github.com/sitekeeper/sitekeeper/internal/plan"
)

// Backoff bounds for a group whose reconcile failed.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// queue is a de-duplicating work queue of group keys: a key added while
// queued is queued once; a key added while being processed is processed
// again afterwards.
type queue struct {
	mu      sync.Mutex
	pending map[string]bool
	order   []string
	wake    chan struct{}
}

func newQueue() *queue {
	return &queue{pending: map[string]bool{}, wake: make(chan struct{}, 1)}
}

func (q *queue) add(keys ...string) {
	if len(keys) == 0 {
		return // waking the loop for nothing would make it spin
	}
	q.mu.Lock()
	for _, k := range keys {
		if !q.pending[k] {
			q.pending[k] = true
			q.order = append(q.order, k)
		}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) pop() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return "", false
	}
	k := q.order[0]
	q.order = q.order[1:]
	delete(q.pending, k)
	return k, true
}

// Options tune the loop.
type Options struct {
	// Resync re-lists every group on this period (watch events are hints).
	Resync time.Duration
	// HealthTick is the shortest wait between two looks for due health
	// checks.
	HealthTick time.Duration
	// Rescan, when it receives, reconciles every group now, as a resync
	// does (the node changed under the agent: a simulated fault).
	Rescan <-chan struct{}
}

// schedule holds when each group comes back: after a failure, with
// exponential backoff (the longest for a failure that needs a human); after
// a success that asked for it, at Result.RequeueAfter.
type schedule struct {
	backoff map[string]time.Duration
	at      map[string]time.Time
}

func newSchedule() *schedule {
	return &schedule{backoff: map[string]time.Duration{}, at: map[string]time.Time{}}
}

// done records the outcome of a reconcile of key at now and returns when
// the key comes back (0: only on a change).
func (s *schedule) done(key string, res Result, err error, now time.Time) time.Duration {
	var in time.Duration
	switch {
	case err != nil:
		in = s.backoff[key]*2 + minBackoff
		if in > maxBackoff || IsStalled(err) {
			in = maxBackoff
		}
		s.backoff[key] = in
	case res.RequeueAfter > 0:
		delete(s.backoff, key)
		in = res.RequeueAfter
	default:
		delete(s.backoff, key)
		delete(s.at, key)
		return 0
	}
	s.at[key] = now.Add(in)
	return in
}

// waiting reports whether key must wait for its time (a change does not
// bring a failing group back before its backoff ends).
func (s *schedule) waiting(key string, now time.Time) bool {
	t, ok := s.at[key]
	return ok && now.Before(t) && s.backoff[key] > 0
}

// due removes and returns the keys whose time came, sorted.
func (s *schedule) due(now time.Time) []string {
	var keys []string
	for k, t := range s.at {
		if !now.Before(t) {
			keys = append(keys, k)
			delete(s.at, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// next is how long until the first key is due; false when none waits.
func (s *schedule) next(now time.Time) (time.Duration, bool) {
	var first time.Time
	for _, t := range s.at {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	if first.IsZero() {
		return 0, false
	}
	return max(first.Sub(now), 0), true
}

// Run reconciles until ctx ends: every group at start, on every signal of
// changes, on each resync; failed groups come back with exponential
// backoff, and a group whose Result asks for it comes back then. Every wait
// is on the agent's clock.
func (a *Agent) Run(ctx context.Context, changes <-chan struct{}, opt Options) {
	a.mu.Lock()
	a.init()
	a.mu.Unlock()
	if opt.Resync <= 0 {
		opt.Resync = 30 * time.Second
	}
	if opt.HealthTick <= 0 {
		opt.HealthTick = 20 * time.Millisecond
	}
	clk := a.Clock
	q := newQueue()
	sched := newSchedule()
	all := func() {
		if groups, err := a.groups(ctx); err == nil {
			q.add(groups...)
		} else if ctx.Err() == nil {
			a.Log.Error(err, "List groups", "node", a.Node)
		}
	}
	// Only groups whose inputs changed are reconciled on a store change;
	// the resync reconciles every group (watch events are hints).
	seen := map[string]string{}
	var epoch uint64
	changed := func() {
		d, err := a.Source.Desired(ctx)
		if err != nil {
			all()
			return
		}
		if d.Epoch != epoch {
			// A fence (or a return): every group now, none held back by
			// the backoff of an earlier failure, or a take-down would wait.
			epoch = d.Epoch
			sched = newSchedule()
		}
		cur := Fingerprints(d)
		var keys []string
		for g, f := range cur {
			if seen[g] != f {
				keys = append(keys, g)
			}
		}
		for g := range seen {
			if _, ok := cur[g]; !ok {
				keys = append(keys, g)
			}
		}
		seen = cur
		sort.Strings(keys)
		q.add(keys...)
	}
	changed() // nothing seen yet: every group
	resync := clk.NewTimer(opt.Resync)
	defer resync.Stop()
	health := func() {
		if changed, err := a.CheckHealth(ctx); err == nil {
			q.add(changed...)
		}
	}
	deferredHealth := false
	for {
		// Every queued group in one batch: the node is looked at once
		// for all of them, and their steps run side by side.
		for ctx.Err() == nil {
			var batch []string
			for {
				key, ok := q.pop()
				if !ok {
					break
				}
				if !sched.waiting(key, clk.Now()) { // else its backoff brings it back
					batch = append(batch, key)
				}
			}
			if len(batch) == 0 {
				break
			}
			outs := a.ReconcileBatch(ctx, batch)
			if ctx.Err() != nil {
				return
			}
			var failed []string
			var firstErr error
			for _, key := range batch {
				o := outs[key]
				in := sched.done(key, o.Result, o.Err, clk.Now())
				if o.Err != nil {
					a.Log.V(1).Info("Reconcile failed", "node", a.Node, "group", key, "retryIn", in.String(), "stalled", IsStalled(o.Err), "error", o.Err.Error())
					failed = append(failed, key)
					if firstErr == nil {
						firstErr = o.Err
					}
				}
			}
			if firstErr != nil {
				// One line for the batch: a node whose store is gone fails
				// every group the same way.
				a.Log.Error(firstErr, "Reconcile failed", "node", a.Node, "groups", len(failed), "first", failed[0])
			}
		}
		// A change that came while the batch ran goes first, once: the
		// groups a failover moves here arrive over several writes, and
		// probing the sites just started (all due at once) held the
		// rest of them up by half a second at thousands of groups. Only
		// once in a row, so that a stream of changes cannot starve the
		// health checks.
		if !deferredHealth {
			select {
			case <-changes:
				changed()
				deferredHealth = true
				continue
			default:
			}
		}
		deferredHealth = false
		// Timers only for what is due: an idle agent wakes for nothing
		// but the next health check of a site it serves.
		var retry, healthDue <-chan time.Time
		var timers []clock.Timer
		if in, ok := sched.next(clk.Now()); ok {
			t := clk.NewTimer(in)
			timers, retry = append(timers, t), t.C()
		}
		health()
		a.mu.Lock()
		next := a.nextDue
		a.mu.Unlock()
		if !next.IsZero() {
			t := clk.NewTimer(max(next.Sub(clk.Now()), opt.HealthTick))
			timers, healthDue = append(timers, t), t.C()
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-changes:
			changed()
		case <-resync.C():
			resync.Reset(opt.Resync)
			all()
		case <-opt.Rescan:
			all()
		case <-healthDue:
		case <-retry:
			q.add(sched.due(clk.Now())...)
		}
		for _, t := range timers {
			t.Stop()
		}
	}
}

// groups lists every group the node may have to act on: those of the
// desired state and those of objects being deleted.
func (a *Agent) groups(ctx context.Context) ([]string, error) {
	d, err := a.Source.Desired(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range d.Graph.Groups {
		out = append(out, g.Name)
	}
	for _, del := range d.Deleting {
		out = append(out, del.Group)
	}
	return out, nil
}

// Fingerprints summarises, per group, everything a reconcile of that group
// depends on in the desired state: who serves it, whether it moves or is
// suspended, its members' generations, and the epoch (a fence or a return
// makes every group be looked at again: a report skipped while fenced is
// written then).
func Fingerprints(d *plan.Desired) map[string]string {
	out := make(map[string]string, len(d.Graph.Groups)+1)
	var b strings.Builder
	for _, g := range d.Graph.Groups {
		b.Reset()
		fmt.Fprintf(&b, "%d|%s|%s|%t", d.Epoch, d.Active[g.Name], d.Moving[g.Name], d.Suspended[g.Name])
		for _, m := range g.Members {
			fmt.Fprintf(&b, "|%s@%d", m, d.Graph.Object(m).Meta().Generation)
		}
		out[g.Name] = b.String()
	}
	if len(d.Deleting) > 0 {
		b.Reset()
		for _, del := range d.Deleting {
			fmt.Fprintf(&b, "%s|", v1alpha1.RefOf(del.Object))
		}
		out[DeletingGroup] = b.String()
	}
	return out
}
