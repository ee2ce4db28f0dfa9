package agent

import (
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/plan"
)

// defaultStepCost is the cost of a step of a backend that says nothing of
// it (backend.StepCoster).
const defaultStepCost = 50 * time.Millisecond

// takedowns measures the node's take-down steps and derives the take-down
// budget the node publishes: how long it may need, from its fence, to take
// out of service everything it holds now. The budget is
//
//	floor + worst observation + 3/2 × (Σ over what the node holds
//	(started sites, addresses, volumes online) of the worst duration
//	measured for that step kind) / parallelism + 3/2 × one step of each
//	kind held (the last round; only when parallel)
//
// where no step or look costs less than the backend's own current estimate
// (a take-down starts with a look at the node: three calls), and never less
// than what an overrun raised it to. The worst durations are those of the
// last window (ten minutes): a node that was slow for a while gets its
// budget back once it is fast again.
type takedowns struct {
	mu       sync.Mutex
	backend  backend.Node
	now      func() time.Time
	window   time.Duration
	worst    map[plan.Action]*highWater
	look     highWater // looks at the node (plan.Observe)
	raised   time.Duration
	raisedAt time.Time
	held     map[plan.Action]int
	// protected is the addresses the desired state protects on this node,
	// computed once per desired state (protectedFor), not per reconcile.
	protected    map[string]bool
	protectedFor *graph.Graph
}

// highWater is the largest duration seen within a window, kept as the
// maximum of each minute.
type highWater struct {
	buckets []bucket
}

type bucket struct {
	minute time.Time
	max    time.Duration
}

func (h *highWater) add(now time.Time, d time.Duration) {
	m := now.Truncate(time.Minute)
	if n := len(h.buckets); n > 0 && h.buckets[n-1].minute.Equal(m) {
		h.buckets[n-1].max = max(h.buckets[n-1].max, d)
		return
	}
	h.buckets = append(h.buckets, bucket{minute: m, max: d})
}

func (h *highWater) max(now time.Time, window time.Duration) time.Duration {
	var out time.Duration
	keep := h.buckets[:0]
	for _, b := range h.buckets {
		if now.Sub(b.minute) < window {
			keep = append(keep, b)
			out = max(out, b.max)
		}
	}
	h.buckets = keep
	return out
}

func newTakedowns(b backend.Node, now func() time.Time) *takedowns {
	return &takedowns{backend: b, now: now, window: 10 * time.Minute, worst: map[plan.Action]*highWater{}, held: map[plan.Action]int{}}
}

// stepCost is the backend's estimate of one call now.
func (t *takedowns) stepCost() time.Duration {
	if c, ok := t.backend.(backend.StepCoster); ok {
		return c.StepCost()
	}
	return defaultStepCost
}

// step records the duration of a take-down step that ran.
func (t *takedowns) step(a plan.Action, d time.Duration) {
	if !a.TakesDown() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.worst[a] == nil {
		t.worst[a] = &highWater{}
	}
	t.worst[a].add(t.now(), d)
}

// observeTook records how long a look at the node took.
func (t *takedowns) observeTook(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.look.add(t.now(), d)
}

// observe counts what a full take-down of the node would have to undo:
// its started sites, and of its addresses those that d protects (the
// node's own interface addresses are never taken down), and its online
// volumes. d may be nil (count every address).
func (t *takedowns) observe(o plan.Observed, d *plan.Desired, node string) {
	protected := t.protectedAddresses(d, node)
	held := map[plan.Action]int{}
	for _, s := range o.Sites {
		if s.State == backend.SiteStarted {
			held[plan.StopSite]++
		}
	}
	for _, a := range o.Addresses {
		if protected == nil || protected[a.CIDR] {
			held[plan.RemoveAddress]++
		}
	}
	for _, v := range o.Volumes {
		if v.Online {
			held[plan.VolumeOffline]++
		}
	}
	t.mu.Lock()
	t.held = held
	t.mu.Unlock()
}

// protectedAddresses is the set of addresses d protects on node (nil when
// d is nil: every address counts), cached per desired state.
func (t *takedowns) protectedAddresses(d *plan.Desired, node string) map[string]bool {
	if d == nil || d.Graph == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.protectedFor == d.Graph {
		return t.protected
	}
	protected := map[string]bool{}
	for _, g := range d.Graph.Groups {
		for _, m := range g.Members {
			if ip, ok := d.Graph.Object(m).(*v1alpha1.IPResource); ok {
				if a, ok := plan.RenderAddress(ip, node); ok {
					protected[a.CIDR] = true
				}
			}
		}
	}
	t.protected, t.protectedFor = protected, d.Graph
	return protected
}

// overrun raises the budget at once to 3/2 of a take-down that took took,
// for the window.
func (t *takedowns) overrun(took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := t.now(); took*3/2 > t.raised || now.Sub(t.raisedAt) >= t.window {
		t.raised, t.raisedAt = max(took*3/2, t.raisedIn(now)), now
	}
}

func (t *takedowns) raisedIn(now time.Time) time.Duration {
	if now.Sub(t.raisedAt) < t.window {
		return t.raised
	}
	return 0
}

// budget is the take-down budget to publish now.
func (t *takedowns) budget() time.Duration {
	cost := t.stepCost()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	// Groups are taken down side by side, par at a time (each group's
	// steps in order): the held steps take total/par, plus one more of
	// each kind for the last round.
	par := time.Duration(backend.ParallelismOf(t.backend))
	var total, tail time.Duration
	for a, n := range t.held {
		if n == 0 {
			continue
		}
		per := cost
		if w := t.worst[a]; w != nil {
			per = max(per, w.max(now, t.window))
		}
		total += time.Duration(n) * per
		tail += per
	}
	look := max(3*cost, t.look.max(now, t.window))
	b := 2*cost + look + total*3/2/par
	if par > 1 {
		b += tail * 3 / 2
	}
	return max(b, t.raisedIn(now)).Round(time.Millisecond)
}
