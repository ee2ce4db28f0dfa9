package clusterview

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// Whether a standby could take its group over, from what nodes publish.
func TestStandbyReadiness(t *testing.T) {
	nodes := []string{"node1", "node2"}
	for _, tc := range []struct {
		name    string
		state   func(*State)
		want    Standby
		healthy bool
	}{
		{"ready", func(*State) {}, Standby{Node: "node2", Ready: true, Why: "configured, standing by"}, true},
		{"no lease", func(s *State) { delete(s.Nodes, "node2") }, Standby{Node: "node2", Why: "no lease (down or cut off)"}, true},
		{"suspended", func(s *State) { s.Suspended = store.Suspensions{"Node/node2": true} }, Standby{Node: "node2", Why: "node suspended"}, true},
		{"unsafe", func(s *State) { s.Nodes["node2"] = store.NodeInfo{Name: "node2", Unsafe: "take-down step hung"} }, Standby{Node: "node2", Why: "unsafe: take-down step hung"}, true},
		{"a step failed", func(s *State) {
			s.Reports[1] = store.Report{Node: "node2", Group: "site-0", Phase: store.PhaseFailed, Message: "address in use"}
		}, Standby{Node: "node2", Why: "a step failed: address in use"}, true},
		{"not reported", func(s *State) { s.Reports = s.Reports[:1] }, Standby{Node: "node2", Why: "has not reported on the group yet"}, true},
		{"active node unhealthy", func(s *State) { s.Reports[0].Healthy = false }, Standby{Node: "node2", Ready: true, Why: "configured, standing by"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &State{
				Graph:     graph.Of(testmanifests.Objects(1, testmanifests.Options{Net: 94, Port: 8080, Nodes: nodes})),
				Decisions: map[string]store.Decision{"site-0": {Group: "site-0", Active: "node1"}},
				Nodes:     map[string]store.NodeInfo{"node1": {Name: "node1"}, "node2": {Name: "node2"}},
				Reports: []store.Report{
					{Node: "node1", Group: "site-0", Active: true, Healthy: true, Phase: store.PhaseConverged},
					{Node: "node2", Group: "site-0", Phase: store.PhaseConverged, Released: true},
				},
			}
			tc.state(s)
			rows := s.GroupRows("")
			if len(rows) != 1 {
				t.Fatalf("%d rows", len(rows))
			}
			if diff := cmp.Diff([]Standby{tc.want}, rows[0].Standbys); diff != "" {
				t.Errorf("standbys (-want +got):\n%s", diff)
			}
			if rows[0].Healthy != tc.healthy {
				t.Errorf("healthy %t, want %t", rows[0].Healthy, tc.healthy)
			}
		})
	}
}
