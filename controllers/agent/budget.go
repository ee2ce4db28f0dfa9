package agent

import (
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/plan"
)

// defaultStepCost is the cost of a step of a backend that says nothing of
// it (backend.StepCoster).
const defaultStepCost = 50 * time.Millisecond

// takedowns measures the node's take-down steps and derives the take-down
// budget the node publishes: how long it may need, from its fence, to take
// out of service everything it holds now. The budget is
//
//	floor + worst observation + 3/2 × Σ over what the node holds (started
//	sites, addresses, volumes online) of the worst duration measured for
//	that step kind
//
// (the backend's estimate for what was never measured: a take-down starts
// with a look at the node, three calls), and never less than what an
// overrun raised it to.
type takedowns struct {
	mu       sync.Mutex
	floor    time.Duration
	stepCost time.Duration
	worst    map[plan.Action]time.Duration
	raised   time.Duration
	held     map[plan.Action]int
	observed time.Duration // the worst look at the node (plan.Observe)
}

func newTakedowns(b backend.Node) *takedowns {
	t := &takedowns{stepCost: defaultStepCost, worst: map[plan.Action]time.Duration{}, held: map[plan.Action]int{}}
	if c, ok := b.(backend.StepCoster); ok {
		t.stepCost = c.StepCost()
	}
	t.floor = 2 * t.stepCost
	return t
}

// step records the duration of a take-down step that ran.
func (t *takedowns) step(a plan.Action, d time.Duration) {
	if !a.TakesDown() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if d > t.worst[a] {
		t.worst[a] = d
	}
}

// observeTook records how long a look at the node took.
func (t *takedowns) observeTook(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observed = max(t.observed, d)
}

// observe counts what a full take-down of the node would have to undo.
func (t *takedowns) observe(o plan.Observed) {
	held := map[plan.Action]int{}
	for _, s := range o.Sites {
		if s.State == backend.SiteStarted {
			held[plan.StopSite]++
		}
	}
	held[plan.RemoveAddress] = len(o.Addresses)
	for _, v := range o.Volumes {
		if v.Online {
			held[plan.VolumeOffline]++
		}
	}
	t.mu.Lock()
	t.held = held
	t.mu.Unlock()
}

// overrun raises the budget at once to 3/2 of a take-down that took took.
func (t *takedowns) overrun(took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.raised = max(t.raised, took*3/2)
}

// budget is the take-down budget to publish now.
func (t *takedowns) budget() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var total time.Duration
	for a, n := range t.held {
		per := t.worst[a]
		if per == 0 {
			per = t.stepCost
		}
		total += time.Duration(n) * per
	}
	look := t.observed
	if look == 0 {
		look = 3 * t.stepCost
	}
	b := t.floor + look + total*3/2
	return max(b, t.raised).Round(time.Millisecond)
}
