// Package placement is the leader's controller: for every resource group it
// decides which node serves it — keep it while healthy, fail over when the
// active node's lease expires or it reports the group unhealthy after local
// recovery, switch back automatically or on request — and derives every
// object's status. Only one leader runs (etcd election).
package placement

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// GroupView is what the decision needs to know of a group.
type GroupView struct {
	Name      string
	Members   []string
	Placement v1alpha1.Placement
	// Generation is the highest generation among the members that declare
	// the placement (for messages).
	Generation int64
	// SwitchoverToken is the latest switchover request among the members
	// (the sitekeeper.io/switchover annotation): a new one asks for
	// activeNode again even when its value did not change.
	SwitchoverToken string
	Suspended       bool
}

// World is the cluster as the leader sees it.
type World struct {
	Live           map[string]bool
	SuspendedNodes map[string]bool
	// Reports maps node to that node's report on the group.
	Reports map[string]store.Report
	// StartupGrace is true while the leader has just started: a group never
	// placed waits for its preferred node to register instead of going to
	// whichever node came up first.
	StartupGrace bool
	// Budgets is each node's published take-down budget, known also after
	// its lease expired.
	Budgets map[string]time.Duration
	// Unsafe names the live nodes that may not be given groups, with why.
	Unsafe map[string]string
	// NodeLosses are, per node, the times its lease expired (each counts
	// once for the node, not once per group): a node that lost it
	// maxFailures times within the window gets no automatic switchback.
	NodeLosses map[string][]time.Time
	// UpSince is, per live node, since when the leader has seen it hold
	// its lease without a break (a new leader counts from its first look:
	// it waits longer rather than less).
	UpSince map[string]time.Time
	// Draining are the nodes being drained: nothing new is placed there,
	// and a group on one moves off (when the pass lets it: a drain moves
	// so many groups at a time).
	Draining map[string]bool
	// DownSince is, per known node without a lease, since when the leader
	// has seen it so (a new leader counts from its first look: it waits
	// longer rather than less). A group leaves such a node once the node's
	// take-down budget has passed since then, in one write.
	DownSince map[string]time.Time
}

// budgetPassed says whether node n, without a lease, has had its whole
// take-down budget since the leader saw it down, and if not, when it
// will have; known is false when the leader has no record of when it
// went down.
func (w World) budgetPassed(n string, now time.Time) (passed bool, at time.Time, known bool) {
	since, ok := w.DownSince[n]
	if !ok {
		return false, time.Time{}, false
	}
	at = since.Add(w.Budgets[n])
	return !now.Before(at), at, true
}

// serviceable reports whether n could serve the group now, failures aside.
func (w World) serviceable(n string) bool {
	return w.Live[n] && !w.SuspendedNodes[n] && w.Unsafe[n] == "" && !w.Draining[n]
}

// flapping reports whether node n lost its lease too often lately.
func (w World) flapping(g GroupView, n string, now time.Time) bool {
	return len(recent(w.NodeLosses[n], now, window(g))) >= maxFailures(g)
}

// holdOff is how long a group whose every node spent its failure budget
// waits before it is placed again: 30 s, doubling each time, at most 10 min.
func holdOff(times int) time.Duration {
	d := 30 * time.Second
	for range min(times, 5) {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// Change is one decision taken, for the event log.
type Change struct {
	Reason  string // CamelCase
	Message string
	Warning bool
}

func (w World) eligible(g GroupView, d *store.Decision, n string, now time.Time) bool {
	if !w.serviceable(n) {
		return false
	}
	if len(recent(d.Failures[n], now, window(g))) >= maxFailures(g) {
		return false
	}
	return true
}

func window(g GroupView) time.Duration {
	if g.Placement.FailureWindow != nil {
		return g.Placement.FailureWindow.Duration
	}
	return v1alpha1.DefaultFailureWindow
}

func maxFailures(g GroupView) int {
	if g.Placement.MaxFailures > 0 {
		return int(g.Placement.MaxFailures)
	}
	return v1alpha1.DefaultMaxFailures
}

func recent(ts []time.Time, now time.Time, w time.Duration) []time.Time {
	var out []time.Time
	for _, t := range ts {
		if now.Sub(t) < w {
			out = append(out, t)
		}
	}
	return out
}

func unhealthy(r store.Report, ok bool) bool { return ok && r.Active && !r.Healthy }

// best returns the highest-priority eligible node other than skip that
// proved it could take the group over (StandbyProblems), else the
// highest-priority eligible one: a standby that is not ready is never
// chosen while a ready one exists.
func (w World) best(g GroupView, d *store.Decision, skip string, now time.Time) string {
	fallback := ""
	for _, n := range g.Placement.Nodes {
		if n == skip || !w.eligible(g, d, n, now) {
			continue
		}
		if w.standbyReady(n) {
			return n
		}
		if fallback == "" {
			fallback = n
		}
	}
	return fallback
}

// standbyReady: a node whose last report on the group proved nothing
// missing (or made no proof: a backend that cannot tell).
func (w World) standbyReady(n string) bool {
	r, ok := w.Reports[n]
	return !ok || r.StandbyReady()
}

// passedOver says which higher-priority nodes were not chosen because
// their standby was not ready, for the decision's message.
func (w World) passedOver(g GroupView, d *store.Decision, chosen, skip string, now time.Time) string {
	var parts []string
	for _, n := range g.Placement.Nodes {
		if n == chosen {
			break
		}
		if n != skip && w.eligible(g, d, n, now) && !w.standbyReady(n) {
			parts = append(parts, n+" is not a ready standby: "+strings.Join(w.Reports[n].StandbyProblems, "; "))
		}
	}
	if r, ok := w.Reports[chosen]; ok && !r.StandbyReady() {
		parts = append(parts, "no ready standby; "+chosen+" lacks: "+strings.Join(r.StandbyProblems, "; "))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// Decide returns the group's next decision and what changed. It is pure.
func Decide(g GroupView, prev *store.Decision, w World, now time.Time) (store.Decision, []Change) {
	d := store.Decision{Group: g.Name}
	if prev != nil {
		d = *prev
		d.Failures = map[string][]time.Time{}
		for n, ts := range prev.Failures {
			if r := recent(ts, now, window(g)); len(r) > 0 {
				d.Failures[n] = r
			}
		}
	}
	d.Group, d.Members = g.Name, g.Members
	if d.Failures == nil {
		d.Failures = map[string][]time.Time{}
	}
	d.SwitchbackAt = time.Time{} // set again below while one is pending
	if len(d.Failures) == 0 && d.RetryAt.IsZero() {
		d.HoldOffs = 0 // a whole window without failures: the hold-off starts small again
	}
	var changes []Change
	set := func(reason, msg string, warning bool) {
		d.Reason, d.Message, d.Since = reason, msg, now
		changes = append(changes, Change{Reason: reason, Message: msg, Warning: warning})
	}
	if g.Suspended || (d.Active != "" && w.SuspendedNodes[d.Active]) {
		return d, nil
	}
	// Move the group to target: at once when from is gone (its lease
	// expired, so it fenced itself), else after from confirms its take-down.
	passed := func(n string) bool { ok, _, _ := w.budgetPassed(n, now); return ok }
	move := func(from, to, reason, msg string, warning bool) {
		set(reason, msg, warning)
		lastHolder, releaseAfter := d.Releasing, d.ReleaseAfter
		d.ReleaseAfter = time.Time{}
		switch {
		case from == "" && lastHolder != "" && (w.Live[lastHolder] || now.Before(releaseAfter)):
			// The group was left unplaced when its node's lease expired
			// and no other could take it: that node may still be taking
			// it down, for up to its budget, or be back. Wait for it.
			d.Active, d.Target, d.Releasing, d.ReleaseAfter = "", to, lastHolder, releaseAfter
		case from == "":
			d.Active, d.Target, d.Releasing = to, "", ""
		case !w.Live[from] && w.Budgets[from] <= 0:
			d.Active, d.Target, d.Releasing = to, "", ""
		case !w.Live[from] && passed(from):
			d.Active, d.Target, d.Releasing = to, "", ""
		case !w.Live[from]:
			// Its lease expired: it fenced itself and may still be taking
			// its groups down, for up to its published budget.
			d.Active, d.Target, d.Releasing = "", to, from
			d.ReleaseAfter = now.Add(w.Budgets[from])
		default:
			d.Active, d.Target, d.Releasing = "", to, from
		}
	}
	// activeNode is a request when its value changes, or when a switchover
	// asks for it again; never because another field of the object changed
	// (a commit of an unrelated port moved a group back after a failover,
	// overriding switchback: Manual).
	requested := g.Placement.ActiveNode != "" && (!strings.EqualFold(g.Placement.ActiveNode, d.Requested) ||
		(g.SwitchoverToken != "" && g.SwitchoverToken != d.RequestedToken))

	switch {
	case d.Target != "":
		rep, ok := w.Reports[d.Releasing]
		switch {
		case w.Live[d.Releasing] && ok && !rep.Active && rep.Released && !rep.Decided.Before(d.Since):
			// Confirmed through the store, for this decision.
			d.Active, d.Target, d.Releasing, d.ReleaseAfter = d.Target, "", "", time.Time{}
			return d, changes
		case !w.Live[d.Releasing] && d.ReleaseAfter.IsZero() && w.Budgets[d.Releasing] > 0:
			// It died while releasing: wait out its take-down budget from now.
			d.ReleaseAfter = now.Add(w.Budgets[d.Releasing])
		case !w.Live[d.Releasing] && !now.Before(d.ReleaseAfter):
			d.Active, d.Target, d.Releasing, d.ReleaseAfter = d.Target, "", "", time.Time{}
			return d, changes
		}
		if !w.eligible(g, &d, d.Target, now) {
			if alt := w.best(g, &d, d.Releasing, now); alt != "" && alt != d.Target {
				d.Target = alt
			}
		}
		return d, changes
	case d.Active != "" && !w.Live[d.Active]:
		failed := d.Active
		ok, at, known := w.budgetPassed(failed, now)
		if b := w.Budgets[failed]; b > 0 && known && !ok {
			// It fenced itself and may still be taking the group down.
			// Nothing is written until its budget has passed: then the
			// group moves in one write, where an intermediate "moving"
			// write would cost a node with thousands of groups a whole
			// pass more before the new node may start.
			d.WakeAt = at
			return d, nil
		}
		if to := w.best(g, &d, failed, now); to != "" {
			msg := fmt.Sprintf("%s lease expired; %s serves the group now", failed, to)
			if b := w.Budgets[failed]; b > 0 && known {
				msg = fmt.Sprintf("%s lease expired; %s serves the group now that %s's take-down budget (%s) has passed", failed, to, failed, b)
			} else if b > 0 {
				msg = fmt.Sprintf("%s lease expired; %s serves the group once %s's take-down budget (%s) has passed", failed, to, failed, b)
			}
			move(failed, to, v1alpha1.ReasonFailedOver, msg+w.passedOver(g, &d, to, failed, now), true)
		} else {
			// Unplaced, but not forgotten: the failed node fenced itself
			// and may hold the group until its take-down budget has
			// passed, so whoever is placed later waits for that.
			d.Active, d.Releasing, d.ReleaseAfter = "", failed, now.Add(w.Budgets[failed])
			set(v1alpha1.ReasonNoHealthyNode, fmt.Sprintf("%s lease expired and no other node of %s can serve the group", failed, strings.Join(g.Placement.Nodes, ", ")), true)
		}
	case d.Active != "" && unhealthyReport(w, d.Active):
		failed := d.Active
		why := w.Reports[failed].Message
		if to := w.best(g, &d, failed, now); to != "" {
			d.Failures[failed] = append(d.Failures[failed], now)
			move(failed, to, v1alpha1.ReasonFailedOver, fmt.Sprintf("%s reported the group unhealthy (%s); moving to %s", failed, why, to)+w.passedOver(g, &d, to, failed, now), true)
		} else if d.Reason != v1alpha1.ReasonNoHealthyNode {
			d.Failures[failed] = append(d.Failures[failed], now)
			set(v1alpha1.ReasonNoHealthyNode, fmt.Sprintf("%s reported the group unhealthy (%s) and no other node can serve it; staying", failed, why), true)
		}
	case d.Active != "" && w.Draining[d.Active]:
		from := d.Active
		if to := w.best(g, &d, from, now); to != "" {
			move(from, to, v1alpha1.ReasonDrained, fmt.Sprintf("%s is being drained; %s serves the group", from, to)+w.passedOver(g, &d, to, from, now), false)
		} else if d.Reason != v1alpha1.ReasonDrainBlocked {
			set(v1alpha1.ReasonDrainBlocked, fmt.Sprintf("%s is being drained, but no other node of %s can serve the group now; it stays", from, strings.Join(g.Placement.Nodes, ", ")), true)
		}
	case d.Active != "" && requested:
		d.Requested, d.RequestedToken = g.Placement.ActiveNode, g.SwitchoverToken
		to := g.Placement.ActiveNode
		if to != d.Active && w.Live[to] && !w.SuspendedNodes[to] {
			move(d.Active, to, v1alpha1.ReasonSwitchedOver, fmt.Sprintf("requested activeNode %s (generation %d)", to, g.Generation), false)
		}
	case d.Active != "" && g.Placement.Switchback == v1alpha1.SwitchbackAutomatic && len(g.Placement.Nodes) > 0 &&
		g.Placement.Nodes[0] != d.Active && w.eligible(g, &d, g.Placement.Nodes[0], now) && !w.flapping(g, g.Placement.Nodes[0], now) && firstIsPreferred(g) &&
		w.standbyReady(g.Placement.Nodes[0]):
		first := g.Placement.Nodes[0]
		if at, ok := w.switchbackAt(g, first); ok && now.Before(at) {
			d.SwitchbackAt = at // the decision says when (Summary: how long is left)
		} else if ok {
			move(d.Active, first, v1alpha1.ReasonSwitchedBack, fmt.Sprintf("automatic, %s healthy", first), false)
		}
	case d.Active == "":
		to := ""
		preferred := g.Placement.ActiveNode
		if preferred == "" && len(g.Placement.Nodes) > 0 {
			preferred = g.Placement.Nodes[0]
		}
		// Never placed: no decision, or the empty one an earlier pass of
		// this grace stored (it has no reason yet).
		if d.Reason == "" && w.StartupGrace && !w.Live[preferred] {
			return d, nil
		}
		if a := g.Placement.ActiveNode; a != "" && w.eligible(g, &d, a, now) {
			to = a
		} else {
			to = w.best(g, &d, "", now)
		}
		if requested {
			d.Requested, d.RequestedToken = g.Placement.ActiveNode, g.SwitchoverToken
		}
		if to == "" {
			var fallback string
			for _, n := range g.Placement.Nodes {
				if w.serviceable(n) {
					fallback = n
					break
				}
			}
			switch {
			case fallback == "":
				d.RetryAt = time.Time{}
				if d.Reason != v1alpha1.ReasonNoHealthyNode {
					set(v1alpha1.ReasonNoHealthyNode, fmt.Sprintf("none of %s is live and below its failure threshold", strings.Join(g.Placement.Nodes, ", ")), true)
				}
			case d.RetryAt.IsZero():
				wait := holdOff(d.HoldOffs)
				d.RetryAt = now.Add(wait)
				set(v1alpha1.ReasonNoHealthyNode, fmt.Sprintf("every live node of %s has failed the group %d time(s) within %s; placing it again on %s in %s (clear-failures does it now)", strings.Join(g.Placement.Nodes, ", "), maxFailures(g), window(g), fallback, wait), true)
			case !now.Before(d.RetryAt):
				d.RetryAt, d.HoldOffs = time.Time{}, d.HoldOffs+1
				d.Failures = map[string][]time.Time{}
				move("", fallback, v1alpha1.ReasonPlaced, fmt.Sprintf("%s serves the group again after a hold-off: every node had spent its failure budget", fallback), true)
			}
			return d, changes
		}
		d.RetryAt = time.Time{}
		move("", to, v1alpha1.ReasonPlaced, fmt.Sprintf("%s serves the group", to)+w.passedOver(g, &d, to, "", now), false)
	}
	return d, changes
}

// switchbackAt is when the group may switch back to first: at once without
// placement.switchbackAfter; else that long after first came up, and only
// once first has the group configured as a standby (its report converged).
func (w World) switchbackAt(g GroupView, first string) (time.Time, bool) {
	if g.Placement.SwitchbackAfter == nil || g.Placement.SwitchbackAfter.Duration <= 0 {
		return time.Time{}, true
	}
	if r, ok := w.Reports[first]; !ok || r.Phase != store.PhaseConverged {
		return time.Time{}, false
	}
	return w.UpSince[first].Add(g.Placement.SwitchbackAfter.Duration), true
}

// firstIsPreferred: an explicit activeNode request pins the group; automatic
// switchback applies only when no other node was asked for.
func firstIsPreferred(g GroupView) bool {
	return g.Placement.ActiveNode == "" || g.Placement.ActiveNode == g.Placement.Nodes[0]
}

func unhealthyReport(w World, node string) bool {
	r, ok := w.Reports[node]
	return unhealthy(r, ok)
}

// Inherit finds, for a group without a decision, the decision of a group
// that shared members with it (the group was renamed, or merged).
func Inherit(members []string, orphans map[string]store.Decision) (string, bool) {
	for name, d := range orphans {
		for _, m := range d.Members {
			if slices.Contains(members, m) {
				return name, true
			}
		}
	}
	return "", false
}
