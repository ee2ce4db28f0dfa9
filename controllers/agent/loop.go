package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
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
}

// Run reconciles until ctx ends: every group at start, on every signal of
// changes, on each resync; failed groups come back with exponential backoff.
func (a *Agent) Run(ctx context.Context, changes <-chan struct{}, opt Options) {
	if opt.Resync <= 0 {
		opt.Resync = 30 * time.Second
	}
	if opt.HealthTick <= 0 {
		opt.HealthTick = 20 * time.Millisecond
	}
	q := newQueue()
	backoff := map[string]time.Duration{}
	retryAt := map[string]time.Time{}
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
	changed := func() {
		d, err := a.Source.Desired(ctx)
		if err != nil {
			all()
			return
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
	resync := time.NewTicker(opt.Resync)
	defer resync.Stop()
	health := func() {
		if changed, err := a.CheckHealth(ctx); err == nil {
			q.add(changed...)
		}
	}
	for {
		for {
			key, ok := q.pop()
			if !ok || ctx.Err() != nil {
				break
			}
			if t, wait := retryAt[key]; wait && time.Now().Before(t) {
				continue // the retry ticker brings it back
			}
			_, err := a.Reconcile(ctx, key)
			switch {
			case err == nil:
				delete(backoff, key)
				delete(retryAt, key)
			case ctx.Err() != nil:
				return
			default:
				b := backoff[key]*2 + minBackoff
				if b > maxBackoff || IsStalled(err) {
					b = maxBackoff
				}
				backoff[key] = b
				retryAt[key] = time.Now().Add(b)
				a.Log.Error(err, "Reconcile failed", "node", a.Node, "group", key, "retryIn", b.String(), "stalled", IsStalled(err))
			}
		}
		// Timers only for what is due: an idle agent wakes for nothing
		// but the next health check of a site it serves.
		var retry, healthDue <-chan time.Time
		if len(retryAt) > 0 {
			retry = time.After(minBackoff / 2)
		}
		health()
		a.mu.Lock()
		next := a.nextDue
		a.mu.Unlock()
		if !next.IsZero() {
			healthDue = time.After(max(time.Until(next), opt.HealthTick))
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-changes:
			changed()
		case <-resync.C:
			all()
		case <-healthDue:
		case <-retry:
			now := time.Now()
			var due []string
			for k, t := range retryAt {
				if !now.Before(t) {
					due = append(due, k)
				}
			}
			sort.Strings(due)
			for _, k := range due {
				delete(retryAt, k)
			}
			q.add(due...)
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
// suspended, and its members' generations.
func Fingerprints(d *plan.Desired) map[string]string {
	out := make(map[string]string, len(d.Graph.Groups)+1)
	var b strings.Builder
	for _, g := range d.Graph.Groups {
		b.Reset()
		fmt.Fprintf(&b, "%s|%s|%t", d.Active[g.Name], d.Moving[g.Name], d.Suspended[g.Name])
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
