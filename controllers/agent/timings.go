package agent

import (
	"fmt"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// takeover follows one group brought up here after the leader moved it:
// when it was decided, when the last bring-up step finished, and when its
// first health check passed.
type takeover struct {
	reason    string
	message   string
	decided   time.Time
	broughtUp time.Time
}

// timings turns a failover or switchover into one event with its timings
// (decided, brought up, first healthy probe), and a fence into one event
// when the node is back (lost the store, fenced, took down, rejoined).
type timings struct {
	mu      sync.Mutex
	node    string
	pending map[string]*takeover // by group
	done    map[string]time.Time // group -> decision already reported

	fencedAt, lastDownAt, renewedBefore time.Time
	downSteps                           int
	rec                                 record.Recorder
	metrics                             *metrics.Set
	lastBringUp                         time.Duration // decision to first healthy probe, last take-over
	takedowns                           *takedowns
	budgetAtFence                       time.Duration
	overran                             bool // this fence's take-down already reported past its budget
}

func newTimings(node string, rec record.Recorder, td *takedowns) *timings {
	return &timings{node: node, pending: map[string]*takeover{}, done: map[string]time.Time{}, rec: rec, takedowns: td}
}

// moved reports whether a decision moved the group (not its first
// placement), and is recent enough to time.
func moved(d plan.Decided, now time.Time) bool {
	switch d.Reason {
	case v1alpha1.ReasonFailedOver, v1alpha1.ReasonSwitchedBack, v1alpha1.ReasonSwitchedOver:
		return now.Sub(d.At) < 2*time.Minute
	}
	return false
}

// step hears a step that ran on this node.
func (t *timings) step(d *plan.Desired, s plan.Step, err error, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		return
	}
	if s.Action.TakesDown() && !t.fencedAt.IsZero() {
		t.downSteps++
		t.lastDownAt = now
		if took := now.Sub(t.fencedAt); t.takedowns != nil && took > t.budgetAtFence && !t.overran {
			t.overran = true
			t.takedowns.overrun(took)
			t.rec.Record(store.Event{Type: store.Warning, Reason: v1alpha1.EventTakedownOverrun, Object: "node/" + t.node, Node: t.node, Time: now.UTC(),
				Message: fmt.Sprintf("%s fenced itself at %s; its take-down reached %s only at +%s, past its budget of %s; budget raised to %s",
					t.node, stamp(t.fencedAt), s, ms(took), t.budgetAtFence, t.takedowns.budget())})
		}
		return
	}
	if s.Action != plan.StartSite || d == nil {
		return
	}
	dec, ok := d.Decided[s.Group]
	if !ok || !moved(dec, now) || t.done[s.Group].Equal(dec.At) {
		return
	}
	p := t.pending[s.Group]
	if p == nil || !p.decided.Equal(dec.At) {
		p = &takeover{reason: dec.Reason, message: dec.Message, decided: dec.At}
		t.pending[s.Group] = p
	}
	p.broughtUp = now
}

// probe hears a health check of a site of group.
func (t *timings) probe(group string, err error, now time.Time) {
	t.mu.Lock()
	p := t.pending[group]
	if err != nil || p == nil || p.broughtUp.IsZero() {
		t.mu.Unlock()
		return
	}
	delete(t.pending, group)
	t.done[group] = p.decided
	t.lastBringUp = now.Sub(p.decided)
	t.mu.Unlock()
	kind, why := p.reason, p.message
	t.metrics.TookOver(kind, now.Sub(p.decided))
	verb := "decided" // a switchover is asked for, not detected
	if kind == v1alpha1.ReasonFailedOver {
		verb = "detected and decided"
	}
	t.rec.Record(store.Event{Type: store.Normal, Reason: kind + v1alpha1.EventTimingsSuffix, Object: "group/" + group, Node: t.node, Time: now.UTC(),
		Message: fmt.Sprintf("%s: %s %s (%s); brought up on %s %s (+%s); first healthy probe %s (+%s)",
			group, verb, stamp(p.decided), why, t.node, stamp(p.broughtUp), ms(p.broughtUp.Sub(p.decided)), stamp(now), ms(now.Sub(p.decided)))})
}

// fenced hears the node fence itself (true, with its last renewal) or
// rejoin (false).
func (t *timings) fenced(on bool, lastRenew, now time.Time) {
	t.mu.Lock()
	if on {
		t.fencedAt, t.renewedBefore, t.lastDownAt, t.downSteps, t.overran = now, lastRenew, time.Time{}, 0, false
		if t.takedowns != nil {
			t.budgetAtFence = t.takedowns.budget()
		}
		t.mu.Unlock()
		return
	}
	fencedAt, down, n, lastRenew := t.fencedAt, t.lastDownAt, t.downSteps, t.renewedBefore
	t.fencedAt = time.Time{}
	t.mu.Unlock()
	if fencedAt.IsZero() {
		return
	}
	msg := fmt.Sprintf("%s could not renew its lease after %s: fenced itself %s (+%s)", t.node, stamp(lastRenew), stamp(fencedAt), ms(fencedAt.Sub(lastRenew)))
	if n > 0 {
		msg += fmt.Sprintf(", took %d step(s) down by %s (+%s)", n, stamp(down), ms(down.Sub(lastRenew)))
	}
	msg += fmt.Sprintf("; back at %s as standby", stamp(now))
	t.rec.Record(store.Event{Type: store.Warning, Reason: v1alpha1.EventFenced, Object: "node/" + t.node, Node: t.node, Time: now.UTC(), Message: msg})
}

// bringUp is the last take-over's time from decision to first healthy
// probe on this node.
func (t *timings) bringUp() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastBringUp
}

func stamp(t time.Time) string { return t.Local().Format("15:04:05.000") }

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
