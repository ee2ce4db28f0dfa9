package placement

import (
	"fmt"
	"slices"
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
	setReady, setProg, setDeg := condSetter(&st, gen, now, v1alpha1.ConditionReady), condSetter(&st, gen, now, v1alpha1.ConditionProgressing), condSetter(&st, gen, now, v1alpha1.ConditionDegraded)
	rep, ok := w.Reports[d.Active]
	switch {
	case g.Suspended:
		setReady(v1alpha1.ConditionUnknown, v1alpha1.ReasonSuspended, "sitekeeper does not act on this group (sitekeeper resume to lift)")
		setProg(v1alpha1.ConditionFalse, v1alpha1.ReasonSuspended, "suspended")
	case d.Active == "" && d.Target != "":
		setReady(v1alpha1.ConditionFalse, v1alpha1.ReasonApplying, fmt.Sprintf("moving from %s to %s", d.Releasing, d.Target))
		setProg(v1alpha1.ConditionTrue, v1alpha1.ReasonApplying, fmt.Sprintf("waiting for %s to release the group", d.Releasing))
	case d.Active == "":
		setReady(v1alpha1.ConditionFalse, v1alpha1.ReasonNoHealthyNode, d.Message)
		setProg(v1alpha1.ConditionFalse, v1alpha1.ReasonNoHealthyNode, "no node can serve the group")
	case !ok || rep.Generations[ref] != gen || rep.Phase == store.PhaseProgressing:
		setReady(v1alpha1.ConditionFalse, v1alpha1.ReasonApplying, fmt.Sprintf("%s is converging on generation %d", d.Active, gen))
		setProg(v1alpha1.ConditionTrue, v1alpha1.ReasonApplying, fmt.Sprintf("%s is converging", d.Active))
	case rep.Phase == store.PhaseStalled:
		setReady(v1alpha1.ConditionFalse, v1alpha1.ReasonStalled, rep.Message)
		setProg(v1alpha1.ConditionFalse, v1alpha1.ReasonStalled, "needs a human: "+rep.Message)
	case rep.Phase == store.PhaseFailed:
		setReady(v1alpha1.ConditionFalse, v1alpha1.ReasonStepFailed, rep.Message)
		setProg(v1alpha1.ConditionTrue, v1alpha1.ReasonStepFailed, "retrying: "+rep.Message)
	case !rep.Healthy:
		setReady(v1alpha1.ConditionFalse, v1alpha1.ReasonUnhealthy, rep.Message)
		setProg(v1alpha1.ConditionFalse, v1alpha1.ReasonUnhealthy, rep.Message)
	default:
		setReady(v1alpha1.ConditionTrue, v1alpha1.ReasonConverged, fmt.Sprintf("served by %s", d.Active))
		setProg(v1alpha1.ConditionFalse, v1alpha1.ReasonConverged, "converged")
		st.ObservedGeneration = gen
	}
	if st.ObservedGeneration == 0 {
		st.ObservedGeneration = prev.ObservedGeneration
	}
	switch {
	case d.Active != "" && len(g.Placement.Nodes) > 0 && d.Active != g.Placement.Nodes[0]:
		setDeg(v1alpha1.ConditionTrue, v1alpha1.ReasonFailedOver, fmt.Sprintf("serving from %s, not its first node %s", d.Active, g.Placement.Nodes[0]))
	case len(unreachable) > 0:
		setDeg(v1alpha1.ConditionTrue, v1alpha1.ReasonNodeUnreachable, fmt.Sprintf("%v unreachable: no standby there", unreachable))
	default:
		setDeg(v1alpha1.ConditionFalse, v1alpha1.ReasonAsExpected, "served from its first node with every standby reachable")
	}
	return st
}

func condSetter(st *v1alpha1.Status, gen int64, now time.Time, typ string) func(v1alpha1.ConditionStatus, string, string) {
	return func(s v1alpha1.ConditionStatus, reason, msg string) {
		v1alpha1.SetCondition(&st.Conditions, v1alpha1.Condition{Type: typ, Status: s, ObservedGeneration: gen, Reason: reason, Message: msg}, now)
	}
}
