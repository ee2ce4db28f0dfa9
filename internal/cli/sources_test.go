package cli

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// TestSourceSuccessMeansServing: a source is Ready only when every object
// of its applied revision is Ready; until then it is Progressing, and past
// the timeout Degraded, naming the objects that are not.
func TestSourceSuccessMeansServing(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ready := func(s v1alpha1.ConditionStatus) v1alpha1.Status {
		return v1alpha1.Status{Conditions: []v1alpha1.Condition{{Type: v1alpha1.ConditionReady, Status: s}}}
	}
	inv := []store.InventoryEntry{{Ref: "IISSite/web1"}, {Ref: "IPResource/vip1"}}
	site, vip := v1alpha1.Ref{Kind: "IISSite", Name: "web1"}, v1alpha1.Ref{Kind: "IPResource", Name: "vip1"}
	for _, tc := range []struct {
		name     string
		src      store.Source
		statuses map[v1alpha1.Ref]v1alpha1.Status
		status   string
		ready    bool
		notReady []string
	}{
		{"refused", store.Source{LastAttempt: store.Attempt{Error: "bad"}, Inventory: inv}, nil, "Refused", false, nil},
		{"applied, no readiness yet", store.Source{Inventory: inv, AppliedAt: now}, nil, "Applied", false, nil},
		{"all Ready", store.Source{Inventory: inv, AppliedAt: now}, map[v1alpha1.Ref]v1alpha1.Status{site: ready("True"), vip: ready("True")}, "Healthy", true, nil},
		{"one not Ready yet", store.Source{Inventory: inv, AppliedAt: now.Add(-time.Minute)}, map[v1alpha1.Ref]v1alpha1.Status{site: ready("False"), vip: ready("True")}, "Progressing", false, []string{"IISSite/web1"}},
		{"still not Ready after the timeout", store.Source{Inventory: inv, AppliedAt: now.Add(-6 * time.Minute)}, map[v1alpha1.Ref]v1alpha1.Status{site: ready("False"), vip: ready("True")}, "Degraded", false, []string{"IISSite/web1"}},
	} {
		r := sourceRow{Source: tc.src}
		r.health(tc.statuses, now, store.DefaultSourceTimeout)
		if r.Status != tc.status || r.Ready != tc.ready || !cmp.Equal(r.NotReady, tc.notReady) {
			t.Errorf("%s: status %s ready %t notReady %v, want %s %t %v", tc.name, r.Status, r.Ready, r.NotReady, tc.status, tc.ready, tc.notReady)
		}
	}
}
