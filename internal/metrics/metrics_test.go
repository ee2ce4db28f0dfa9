package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

func TestEventsAndHooksCount(t *testing.T) {
	s := New()
	for _, e := range []store.Event{
		{Reason: v1alpha1.ReasonFailedOver, Object: "group/web"},
		{Reason: v1alpha1.ReasonFailedOver, Object: "group/web"},
		{Reason: v1alpha1.ReasonSwitchedBack, Object: "group/web"},
		{Reason: v1alpha1.ReasonFailedOver, Object: "IISSite/web"}, // a condition's reason, not a move
		{Reason: v1alpha1.EventLocalRestart, Object: "IISSite/web", Node: "node1"},
		{Reason: v1alpha1.EventFenced, Object: "node/node2", Node: "node2"},
		{Reason: v1alpha1.EventSourceApplied, Object: "source/shop"},
		{Reason: v1alpha1.EventSourceRefused, Object: "source/shop"},
		{Reason: v1alpha1.EventSourceFetchFailed, Object: "source/shop"},
		{Reason: v1alpha1.EventStep, Object: "IISSite/web", Node: "node1"},
	} {
		s.Record(e)
	}
	s.Step("node1", "StartSite", nil, true)
	s.Step("node1", "StartSite", errors.New("in use"), true)
	s.Step("node1", "AddAddress", nil, false)
	s.ProbeFailed("node1", "web")
	s.TookOver(v1alpha1.ReasonFailedOver, 2*time.Second)
	s.Reconciled("node1", 20*time.Millisecond)
	got, err := s.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]float64{
		"sitekeeper_placement_moves_total{group=web,reason=FailedOver}":    2,
		"sitekeeper_placement_moves_total{group=web,reason=SwitchedBack}":  1,
		"sitekeeper_local_restarts_total{node=node1,site=web}":             1,
		"sitekeeper_fences_total{node=node2}":                              1,
		"sitekeeper_source_change_sets_applied_total{source=shop}":         1,
		"sitekeeper_source_change_sets_refused_total{source=shop}":         2,
		"sitekeeper_steps_total{action=StartSite,node=node1,result=ok}":    1,
		"sitekeeper_steps_total{action=StartSite,node=node1,result=error}": 1,
		"sitekeeper_drift_repaired_total{kind=StartSite,node=node1}":       1,
		"sitekeeper_health_probe_failures_total{node=node1,site=web}":      1,
		"sitekeeper_takeover_duration_seconds{reason=FailedOver}_count":    1,
		"sitekeeper_reconcile_duration_seconds{node=node1}_count":          1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["sitekeeper_drift_repaired_total{kind=AddAddress,node=node1}"]; ok {
		t.Error("a step that was not repairing drift counted as drift")
	}
}

// A nil Set counts nothing and does not panic: controllers built without
// metrics (tests, benchmarks) need no stub.
func TestNilSetCountsNothing(t *testing.T) {
	var s *Set
	s.Record(store.Event{Reason: v1alpha1.ReasonFailedOver, Object: "group/web"})
	s.Step("n", "StartSite", nil, true)
	s.ProbeFailed("n", "web")
	s.TookOver("FailedOver", time.Second)
	s.Reconciled("n", time.Second)
}
