package placement

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

var nodes12 = v1alpha1.Placement{Nodes: []string{"node1", "node2"}}

// cond is a condition's status and reason, what the tables compare.
type cond struct {
	Status v1alpha1.ConditionStatus
	Reason string
}

func only(t *testing.T, st v1alpha1.Status, typ string) cond {
	t.Helper()
	c := v1alpha1.FindCondition(st.Conditions, typ)
	if c == nil {
		t.Fatalf("no %s condition", typ)
	}
	return cond{c.Status, c.Reason}
}

// input builds a conditionInput: the group active on active (or moving to
// target), with the active node's report.
func input(active, target string, rep *store.Report) conditionInput {
	in := conditionInput{group: GroupView{Name: "web", Placement: nodes12}, gen: 2,
		decision: store.Decision{Active: active, Target: target, Message: "none of node1, node2 is live"}}
	if target != "" {
		in.decision.Releasing = "node1"
	}
	if rep != nil {
		in.report, in.reported = *rep, true
		in.converged = rep.Generations["IISSite/web"] == 2 && rep.Phase != store.PhaseProgressing
	}
	return in
}

func rep(phase store.Phase, healthy bool, gen int64) *store.Report {
	return &store.Report{Phase: phase, Healthy: healthy, Generations: map[string]int64{"IISSite/web": gen}}
}

var conditionCases = []struct {
	name      string
	in        conditionInput
	ready     cond
	progress  cond
	suspended bool
}{
	{"converged and healthy", input("node1", "", rep(store.PhaseConverged, true, 2)),
		cond{v1alpha1.ConditionTrue, v1alpha1.ReasonConverged}, cond{v1alpha1.ConditionFalse, v1alpha1.ReasonConverged}, false},
	{"suspended", input("node1", "", rep(store.PhaseConverged, true, 2)),
		cond{v1alpha1.ConditionUnknown, v1alpha1.ReasonSuspended}, cond{v1alpha1.ConditionFalse, v1alpha1.ReasonSuspended}, true},
	{"moving", input("", "node2", nil),
		cond{v1alpha1.ConditionFalse, v1alpha1.ReasonApplying}, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonApplying}, false},
	{"no node can serve", input("", "", nil),
		cond{v1alpha1.ConditionFalse, v1alpha1.ReasonNoHealthyNode}, cond{v1alpha1.ConditionFalse, v1alpha1.ReasonNoHealthyNode}, false},
	{"not reported yet", input("node1", "", nil),
		cond{v1alpha1.ConditionFalse, v1alpha1.ReasonApplying}, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonApplying}, false},
	{"an older generation converged", input("node1", "", rep(store.PhaseConverged, true, 1)),
		cond{v1alpha1.ConditionFalse, v1alpha1.ReasonApplying}, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonApplying}, false},
	{"still progressing", input("node1", "", rep(store.PhaseProgressing, true, 2)),
		cond{v1alpha1.ConditionFalse, v1alpha1.ReasonApplying}, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonApplying}, false},
	{"a step failed: retried", input("node1", "", rep(store.PhaseFailed, true, 2)),
		cond{v1alpha1.ConditionFalse, v1alpha1.ReasonStepFailed}, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonStepFailed}, false},
	{"a step keeps failing before the generation converged (address in use)", input("node1", "", rep(store.PhaseFailed, true, 1)),
		cond{v1alpha1.ConditionFalse, v1alpha1.ReasonStepFailed}, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonStepFailed}, false},
	{"stalled: needs a human", input("node1", "", rep(store.PhaseStalled, true, 2)),
		cond{v1alpha1.ConditionFalse, v1alpha1.ReasonStalled}, cond{v1alpha1.ConditionFalse, v1alpha1.ReasonStalled}, false},
	{"unhealthy after local recovery", input("node1", "", rep(store.PhaseConverged, false, 2)),
		cond{v1alpha1.ConditionFalse, v1alpha1.ReasonUnhealthy}, cond{v1alpha1.ConditionFalse, v1alpha1.ReasonUnhealthy}, false},
}

func TestSetReady(t *testing.T) {
	for _, tt := range conditionCases {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.group.Suspended = tt.suspended
			var st v1alpha1.Status
			setReady(&st, in, t0)
			if diff := cmp.Diff(tt.ready, only(t, st, v1alpha1.ConditionReady)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetProgressing(t *testing.T) {
	for _, tt := range conditionCases {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.group.Suspended = tt.suspended
			var st v1alpha1.Status
			setProgressing(&st, in, t0)
			if diff := cmp.Diff(tt.progress, only(t, st, v1alpha1.ConditionProgressing)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetDegraded(t *testing.T) {
	tests := []struct {
		name        string
		active      string
		unreachable []string
		want        cond
		report      *store.Report
	}{
		{"a step keeps failing on the active node", "node1", nil, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonStepFailed}, rep(store.PhaseFailed, true, 1)},
		{"on its first node, standbys reachable", "node1", nil, cond{v1alpha1.ConditionFalse, v1alpha1.ReasonAsExpected}, nil},
		{"failed over", "node2", nil, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonFailedOver}, nil},
		{"failed over and the first node down", "node2", []string{"node1"}, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonFailedOver}, nil},
		{"standby unreachable", "node1", []string{"node2"}, cond{v1alpha1.ConditionTrue, v1alpha1.ReasonNodeUnreachable}, nil},
		{"moving: not degraded by that alone", "", nil, cond{v1alpha1.ConditionFalse, v1alpha1.ReasonAsExpected}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(tt.active, "", tt.report)
			in.unreachable = tt.unreachable
			var st v1alpha1.Status
			setDegraded(&st, in, t0)
			if diff := cmp.Diff(tt.want, only(t, st, v1alpha1.ConditionDegraded)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestTransitionTimeMovesOnlyOnFlip: a condition whose status stays keeps
// its transition time, even when its message changes.
func TestTransitionTimeMovesOnlyOnFlip(t *testing.T) {
	var st v1alpha1.Status
	failing := input("node1", "", rep(store.PhaseFailed, true, 2))
	setReady(&st, failing, t0)
	failing.report.Message = "another error"
	setReady(&st, failing, t0.Add(time.Minute))
	if c := v1alpha1.FindCondition(st.Conditions, v1alpha1.ConditionReady); !c.LastTransitionTime.Equal(t0) {
		t.Errorf("transition time %s moved without a flip", c.LastTransitionTime)
	}
	setReady(&st, input("node1", "", rep(store.PhaseConverged, true, 2)), t0.Add(2*time.Minute))
	if c := v1alpha1.FindCondition(st.Conditions, v1alpha1.ConditionReady); !c.LastTransitionTime.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("transition time %s did not move on the flip to True", c.LastTransitionTime)
	}
}
