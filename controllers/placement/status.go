package placement

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// ComputeStatus derives an object's status from its group's decision, the
// nodes' reports and leases. prev keeps condition transition times.
func ComputeStatus(o v1alpha1.Object, g GroupView, d store.Decision, w World, prev v1alpha1.Status, now time.Time) v1alpha1.Status {
	ref := v1alpha1.RefOf(o).String()
	gen := o.Meta().Generation
	st := v1alpha1.Status{ActiveNode: d.Active, Conditions: slices.Clone(prev.Conditions)}
	var unreachable []string
	for _, n := range g.Placement.Nodes {
		ns := v1alpha1.NodeStatus{Node: n}
		rep, ok := w.Reports[n]
		switch {
		case !w.Live[n]:
			ns.State, ns.Message = v1alpha1.NodeUnreachable, "lease expired"
			unreachable = append(unreachable, n)
		case n == d.Active:
			ns.State = v1alpha1.NodeActive
		default:
			ns.State = v1alpha1.NodeStandby
		}
		if ok && ns.Message == "" {
			ns.Message = string(rep.Phase)
			if rep.Message != "" {
				ns.Message += ": " + rep.Message
			}
		}
		st.Nodes = append(st.Nodes, ns)
	}
	in := conditionInput{group: g, decision: d, gen: gen, unreachable: unreachable}
	in.report, in.reported = w.Reports[d.Active]
	in.converged = in.reported && in.report.Generations[ref] == gen && in.report.Phase != store.PhaseProgressing
	setReady(&st, in, now)
	setProgressing(&st, in, now)
	setDegraded(&st, in, now)
	setStandbyReady(&st, in, w, now)
	if c := v1alpha1.FindCondition(st.Conditions, v1alpha1.ConditionReady); c != nil && c.Status == v1alpha1.ConditionTrue {
		st.ObservedGeneration = gen
	} else {
		st.ObservedGeneration = prev.ObservedGeneration
	}
	return st
}

// conditionInput is what the conditions of one object are derived from.
type conditionInput struct {
	group       GroupView
	decision    store.Decision
	gen         int64
	report      store.Report // the active node's report on the group
	reported    bool
	converged   bool // the active node reported this generation, not still progressing
	unreachable []string
}

func set(st *v1alpha1.Status, typ string, in conditionInput, now time.Time, s v1alpha1.ConditionStatus, reason, msg string) {
	v1alpha1.SetCondition(&st.Conditions, v1alpha1.Condition{Type: typ, Status: s, ObservedGeneration: in.gen, Reason: reason, Message: msg}, now)
}

// setReady: True once the active node converged on this generation and its
// sites are healthy; otherwise False (Unknown while suspended) with why.
func setReady(st *v1alpha1.Status, in conditionInput, now time.Time) {
	d, rep := in.decision, in.report
	mark := func(s v1alpha1.ConditionStatus, reason, msg string) {
		set(st, v1alpha1.ConditionReady, in, now, s, reason, msg)
	}
	switch {
	case in.group.Suspended:
		mark(v1alpha1.ConditionUnknown, v1alpha1.ReasonSuspended, "sitekeeper does not act on this group (sitekeeper resume to lift)")
	case d.Active == "" && d.Target != "":
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonApplying, fmt.Sprintf("moving from %s to %s", d.Releasing, d.Target))
	case d.Active == "":
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonNoHealthyNode, d.Message)
	// A step that keeps failing (an address in use, a disk not attached)
	// is why the group has not converged: say so, not "Applying".
	case rep.Phase == store.PhaseStalled:
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonStalled, rep.Message)
	case rep.Phase == store.PhaseFailed:
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonStepFailed, rep.Message)
	case !in.converged:
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonApplying, fmt.Sprintf("%s is converging on generation %d", d.Active, in.gen))
	case !rep.Healthy:
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonUnhealthy, rep.Message)
	default:
		mark(v1alpha1.ConditionTrue, v1alpha1.ReasonConverged, fmt.Sprintf("served by %s", d.Active))
	}
}

// setProgressing: True while a node works towards the desired state (a
// move, a bring-up, a step being retried); False when converged or when
// nothing will progress without a human.
func setProgressing(st *v1alpha1.Status, in conditionInput, now time.Time) {
	d, rep := in.decision, in.report
	mark := func(s v1alpha1.ConditionStatus, reason, msg string) {
		set(st, v1alpha1.ConditionProgressing, in, now, s, reason, msg)
	}
	switch {
	case in.group.Suspended:
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonSuspended, "suspended")
	case d.Active == "" && d.Target != "":
		mark(v1alpha1.ConditionTrue, v1alpha1.ReasonApplying, fmt.Sprintf("waiting for %s to release the group", d.Releasing))
	case d.Active == "":
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonNoHealthyNode, "no node can serve the group")
	case rep.Phase == store.PhaseStalled:
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonStalled, "needs a human: "+rep.Message)
	case rep.Phase == store.PhaseFailed:
		mark(v1alpha1.ConditionTrue, v1alpha1.ReasonStepFailed, "retrying: "+rep.Message)
	case !in.converged:
		mark(v1alpha1.ConditionTrue, v1alpha1.ReasonApplying, fmt.Sprintf("%s is converging", d.Active))
	case !rep.Healthy:
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonUnhealthy, rep.Message)
	default:
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonConverged, "converged")
	}
}

// setDegraded: True while the group serves from a node other than its
// first, or a node of its placement is unreachable (no standby there).
func setDegraded(st *v1alpha1.Status, in conditionInput, now time.Time) {
	d, nodes := in.decision, in.group.Placement.Nodes
	mark := func(s v1alpha1.ConditionStatus, reason, msg string) {
		set(st, v1alpha1.ConditionDegraded, in, now, s, reason, msg)
	}
	switch {
	case d.Active != "" && (in.report.Phase == store.PhaseFailed || in.report.Phase == store.PhaseStalled):
		mark(v1alpha1.ConditionTrue, v1alpha1.ReasonStepFailed, fmt.Sprintf("on %s: %s", d.Active, in.report.Message))
	case d.Active != "" && len(nodes) > 0 && d.Active != nodes[0]:
		mark(v1alpha1.ConditionTrue, v1alpha1.ReasonFailedOver, fmt.Sprintf("serving from %s, not its first node %s", d.Active, nodes[0]))
	case len(in.unreachable) > 0:
		mark(v1alpha1.ConditionTrue, v1alpha1.ReasonNodeUnreachable, fmt.Sprintf("%v unreachable: no standby there", in.unreachable))
	default:
		mark(v1alpha1.ConditionFalse, v1alpha1.ReasonAsExpected, "served from its first node with every standby reachable")
	}
}

// setStandbyReady: True when at least one standby of the group proved it
// could take it over now, False with each standby's reason otherwise.
func setStandbyReady(st *v1alpha1.Status, in conditionInput, w World, now time.Time) {
	ready, why := StandbyReadiness(in.group, in.decision, w)
	if len(ready) > 0 {
		set(st, v1alpha1.ConditionStandbyReady, in, now, v1alpha1.ConditionTrue, v1alpha1.ReasonStandbyReady, "ready: "+strings.Join(ready, ", ")+readinessDetail(why))
		return
	}
	set(st, v1alpha1.ConditionStandbyReady, in, now, v1alpha1.ConditionFalse, v1alpha1.ReasonNoReadyStandby, "no standby could take the group over now"+readinessDetail(why))
}

func readinessDetail(why map[string]string) string {
	if len(why) == 0 {
		return ""
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(why)) {
		parts = append(parts, n+": "+why[n])
	}
	return "; not ready: " + strings.Join(parts, "; ")
}

// StandbyReadiness is, for the group's nodes other than its active one,
// those that could take it over now, and why each other one could not: no
// lease, suspended, draining, unsafe, a step failing there, not
// configured yet, or what its own proof found missing.
func StandbyReadiness(g GroupView, d store.Decision, w World) (ready []string, why map[string]string) {
	why = map[string]string{}
	for _, n := range g.Placement.Nodes {
		if n == d.Active {
			continue
		}
		rep, reported := w.Reports[n]
		ok, reason := store.StandbyState{Live: w.Live[n], Suspended: w.SuspendedNodes[n], Draining: w.Draining[n], Unsafe: w.Unsafe[n], Report: rep, Reported: reported}.Readiness()
		if ok {
			ready = append(ready, n)
		} else {
			why[n] = reason
		}
	}
	return ready, why
}
