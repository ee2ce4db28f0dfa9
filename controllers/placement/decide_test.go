package placement

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func group(sb v1alpha1.SwitchbackPolicy, active string, gen int64) GroupView {
	return GroupView{Name: "web1", Members: []string{"IISSite/web1"}, Generation: gen,
		Placement: v1alpha1.Placement{Nodes: []string{"node1", "node2"}, Switchback: sb, ActiveNode: active, MaxFailures: 3}}
}

func live(nodes ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range nodes {
		m[n] = true
	}
	return m
}

func TestDecide(t *testing.T) {
	healthy := func(n string) store.Report { return store.Report{Node: n, Active: true, Healthy: true} }
	tests := []struct {
		name       string
		g          GroupView
		prev       *store.Decision
		w          World
		wantActive string
		wantTarget string
		wantReason string // prefix of the change's reason, "" for none
	}{
		{"first placement on the primary", group("", "", 1), nil, World{Live: live("node1", "node2")}, "node1", "", "Placed"},
		{"primary down at start: the next node", group("", "", 1), nil, World{Live: live("node2")}, "node2", "", "Placed"},
		{"healthy: nothing to do", group("", "", 1), &store.Decision{Active: "node1"}, World{Live: live("node1", "node2"), Reports: map[string]store.Report{"node1": healthy("node1")}}, "node1", "", ""},
		{"lease expired, no budget published: fail over at once", group("", "", 1), &store.Decision{Active: "node1"}, World{Live: live("node2")}, "node2", "", "FailedOver"},
		{"lease expired: wait out its take-down budget", group("", "", 1), &store.Decision{Active: "node1"},
			World{Live: live("node2"), Budgets: map[string]time.Duration{"node1": time.Second}}, "", "node2", "FailedOver"},
		{"no automatic switchback to an unsafe node", group(v1alpha1.SwitchbackAutomatic, "", 1), &store.Decision{Active: "node2"},
			World{Live: live("node1", "node2"), Unsafe: map[string]string{"node1": "a step hung"}}, "node2", "", ""},
		{"an unsafe standby is not failed over to", group("", "", 1), &store.Decision{Active: "node1"},
			World{Live: live("node2"), Unsafe: map[string]string{"node2": "a step hung"}}, "", "", "NoHealthyNode"},
		{"unhealthy after local recovery: move after take-down", group("", "", 1), &store.Decision{Active: "node1"},
			World{Live: live("node1", "node2"), Reports: map[string]store.Report{"node1": {Active: true, Healthy: false, Message: "probe failed"}}}, "", "node2", "FailedOver"},
		{"move completes when the old node released", group("", "", 1), &store.Decision{Target: "node2", Releasing: "node1"},
			World{Live: live("node1", "node2"), Reports: map[string]store.Report{"node1": {Released: true}}}, "node2", "", ""},
		{"move waits for the release", group("", "", 1), &store.Decision{Target: "node2", Releasing: "node1"},
			World{Live: live("node1", "node2"), Reports: map[string]store.Report{"node1": {Active: true, Healthy: true}}}, "", "node2", ""},
		{"manual switchback stays after heal", group(v1alpha1.SwitchbackManual, "", 1), &store.Decision{Active: "node2"}, World{Live: live("node1", "node2")}, "node2", "", ""},
		{"automatic switchback", group(v1alpha1.SwitchbackAutomatic, "", 1), &store.Decision{Active: "node2"}, World{Live: live("node1", "node2")}, "", "node1", "SwitchedBack"},
		{"switchover request", group("", "node2", 2), &store.Decision{Active: "node1"}, World{Live: live("node1", "node2")}, "", "node2", "SwitchedOver"},
		{"an honoured request is not repeated", group("", "node2", 2), &store.Decision{Active: "node1", Requested: "node2", RequestedGeneration: 2}, World{Live: live("node1", "node2")}, "node1", "", ""},
		{"another field changed: activeNode is not asked again", group(v1alpha1.SwitchbackManual, "node2", 7), &store.Decision{Active: "node1", Requested: "node2"}, World{Live: live("node1", "node2")}, "node1", "", ""},
		{"a switchover asks for the same activeNode again", func() GroupView { g := group("", "node2", 2); g.SwitchoverToken = "t2"; return g }(),
			&store.Decision{Active: "node1", Requested: "node2", RequestedToken: "t1"}, World{Live: live("node1", "node2")}, "", "node2", "SwitchedOver"},
		{"a switchover mark dropped by an apply is no request", group("", "node2", 3), &store.Decision{Active: "node1", Requested: "node2", RequestedToken: "t1"}, World{Live: live("node1", "node2")}, "node1", "", ""},
		{"no healthy node says so", group("", "", 1), &store.Decision{Active: "node1"}, World{Live: live()}, "", "", "NoHealthyNode"},
		{"too many failures: not moved there again", group(v1alpha1.SwitchbackAutomatic, "", 1),
			&store.Decision{Active: "node2", Failures: map[string][]time.Time{"node1": {t0.Add(-3 * time.Minute), t0.Add(-2 * time.Minute), t0.Add(-time.Minute)}}},
			World{Live: live("node1", "node2")}, "node2", "", ""},
		{"failures outside the window are forgotten", group(v1alpha1.SwitchbackAutomatic, "", 1),
			&store.Decision{Active: "node2", Failures: map[string][]time.Time{"node1": {t0.Add(-3 * time.Hour), t0.Add(-2 * time.Hour), t0.Add(-time.Hour)}}},
			World{Live: live("node1", "node2")}, "", "node1", "SwitchedBack"},
		{"suspended group: untouched", func() GroupView { g := group("", "", 1); g.Suspended = true; return g }(), &store.Decision{Active: "node1"}, World{Live: live("node2")}, "node1", "", ""},
		{"suspended active node: untouched", group("", "", 1), &store.Decision{Active: "node1"}, World{Live: live("node2"), SuspendedNodes: live("node1")}, "node1", "", ""},
		{"draining: moves off once released", group("", "", 1), &store.Decision{Active: "node1"}, World{Live: live("node1", "node2"), Draining: live("node1")}, "", "node2", "Drained"},
		{"draining with no other node: stays, said once", group("", "", 1), &store.Decision{Active: "node1"}, World{Live: live("node1"), Draining: live("node1")}, "node1", "", "DrainBlocked"},
		{"draining, already said: nothing new", group("", "", 1), &store.Decision{Active: "node1", Reason: "DrainBlocked"}, World{Live: live("node1"), Draining: live("node1")}, "node1", "", ""},
		{"no automatic switchback to a draining node", group(v1alpha1.SwitchbackAutomatic, "", 1), &store.Decision{Active: "node2"}, World{Live: live("node1", "node2"), Draining: live("node1")}, "node2", "", ""},
		{"nothing new placed on a draining node", group("", "", 1), nil, World{Live: live("node1", "node2"), Draining: live("node1")}, "node2", "", "Placed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, changes := Decide(tt.g, tt.prev, tt.w, t0)
			if d.Active != tt.wantActive || d.Target != tt.wantTarget {
				t.Errorf("active %q target %q, want %q %q (reason %q)", d.Active, d.Target, tt.wantActive, tt.wantTarget, d.Reason)
			}
			var reason string
			if len(changes) > 0 {
				reason = changes[0].Reason
			}
			if reason != tt.wantReason {
				t.Errorf("change reason %q, want %q (%+v)", reason, tt.wantReason, changes)
			}
		})
	}
}

// TestFailoverSwitchbackStory replays F4/F5: node1 fails, the group moves to
// node2; node1 is repaired; manual switchback keeps it on node2 until asked.
func TestFailoverSwitchbackStory(t *testing.T) {
	g := group(v1alpha1.SwitchbackManual, "", 1)
	var log []string
	step := func(prev *store.Decision, w World, at time.Duration) *store.Decision {
		d, changes := Decide(g, prev, w, t0.Add(at))
		for _, c := range changes {
			log = append(log, c.Reason+": "+c.Message)
		}
		return &d
	}
	d := step(nil, World{Live: live("node1", "node2")}, 0)
	d = step(d, World{Live: live("node2")}, time.Second)
	d = step(d, World{Live: live("node1", "node2")}, time.Minute)
	g.Placement.ActiveNode, g.Generation = "node1", 2
	d = step(d, World{Live: live("node1", "node2")}, 2*time.Minute)
	stale := step(d, World{Live: live("node1", "node2"), Reports: map[string]store.Report{"node2": {Released: true, Decided: t0.Add(time.Second)}}}, 2*time.Minute+time.Second)
	if stale.Active != "" {
		t.Fatalf("a release reported for an earlier decision completed the move: %+v", stale)
	}
	d = step(d, World{Live: live("node1", "node2"), Reports: map[string]store.Report{"node2": {Released: true, Decided: d.Since}}}, 2*time.Minute+time.Second)
	want := []string{
		"Placed: node1 serves the group",
		"FailedOver: node1 lease expired; node2 serves the group now",
		"SwitchedOver: requested activeNode node1 (generation 2)",
	}
	if diff := cmp.Diff(want, log); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// node1's lease loss counts against the node, not as the group's
	// failure there.
	if d.Active != "node1" || len(d.Failures) != 0 {
		t.Errorf("final decision %+v", d)
	}
	if d.Reason != v1alpha1.ReasonSwitchedOver {
		t.Errorf("reason %q", d.Reason)
	}
}

// TestDecideWaitsOutTheTakedownBudget: a group leaves a node whose lease
// expired only once that node's published take-down budget has passed; a
// node that dies while releasing gets its budget from when it was seen dead.
func TestDecideWaitsOutTheTakedownBudget(t *testing.T) {
	g := group("", "", 1)
	budgets := map[string]time.Duration{"node1": 1500 * time.Millisecond}
	w := World{Live: live("node2"), Budgets: budgets}
	d, _ := Decide(g, &store.Decision{Active: "node1"}, w, t0)
	if d.Active != "" || d.Target != "node2" || d.Releasing != "node1" || !d.ReleaseAfter.Equal(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("at expiry: %+v", d)
	}
	if !strings.Contains(d.Message, "take-down budget (1.5s)") {
		t.Errorf("message %q does not name the budget", d.Message)
	}
	if d2, _ := Decide(g, &d, w, t0.Add(1499*time.Millisecond)); d2.Active != "" {
		t.Fatalf("moved before the budget passed: %+v", d2)
	}
	// A stale report of node1 is no confirmation from a dead node.
	stale := w
	stale.Reports = map[string]store.Report{"node1": {Released: true}}
	if d2, _ := Decide(g, &d, stale, t0.Add(time.Millisecond)); d2.Active != "" {
		t.Fatalf("a dead node's old report completed the move: %+v", d2)
	}
	if d2, _ := Decide(g, &d, w, t0.Add(1500*time.Millisecond)); d2.Active != "node2" || d2.Target != "" || !d2.ReleaseAfter.IsZero() {
		t.Fatalf("after the budget: %+v", d2)
	}

	// The leader that saw node1 go down waits its budget out writing
	// nothing, then moves the group in one write.
	seen := w
	seen.DownSince = map[string]time.Time{"node1": t0}
	prev := store.Decision{Group: g.Name, Members: g.Members, Active: "node1", Reason: v1alpha1.ReasonPlaced, Failures: map[string][]time.Time{}}
	d, changes := Decide(g, &prev, seen, t0.Add(time.Second))
	if d.Active != "node1" || d.Target != "" || len(changes) != 0 || !d.WakeAt.Equal(t0.Add(1500*time.Millisecond)) || !sameDecision(d, prev) {
		t.Fatalf("within the budget: %+v %v; want the decision unchanged, a wake-up at the budget's end", d, changes)
	}
	d, changes = Decide(g, &prev, seen, t0.Add(1500*time.Millisecond))
	if d.Active != "node2" || d.Target != "" || d.Releasing != "" || len(changes) != 1 || d.Reason != v1alpha1.ReasonFailedOver ||
		!strings.Contains(d.Message, "node2 serves the group now that node1's take-down budget (1.5s) has passed") {
		t.Fatalf("at the budget's end: %+v %v", d, changes)
	}

	// A switchover whose releasing node dies mid-way.
	moving := store.Decision{Target: "node2", Releasing: "node1"}
	d, _ = Decide(g, &moving, w, t0)
	if d.Active != "" || !d.ReleaseAfter.Equal(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("releasing node died: %+v", d)
	}
	if d2, _ := Decide(g, &d, w, t0.Add(2*time.Second)); d2.Active != "node2" {
		t.Fatalf("after its budget: %+v", d2)
	}
}

// TestNodeLossesNeverParkAGroup: nodes that lose their leases again and
// again (a flapping network) move the group each time, but the group never
// ends NoHealthyNode while a node is live: a lease loss is not the group's
// failure. A node that lost its lease maxFailures times gets no automatic
// switchback.
func TestNodeLossesNeverParkAGroup(t *testing.T) {
	g := group(v1alpha1.SwitchbackAutomatic, "", 1)
	d, _ := Decide(g, nil, World{Live: live("node1", "node2")}, t0)
	losses := map[string][]time.Time{}
	at := t0
	for i := range 3 {
		at = at.Add(time.Minute)
		down, up := d.Active, map[string]string{"node1": "node2", "node2": "node1"}[d.Active]
		losses[down] = append(losses[down], at)
		d, _ = Decide(g, &d, World{Live: live(up), NodeLosses: losses}, at)
		if d.Active != up {
			t.Fatalf("loss %d of %s: active %q, want %s (%s: %s)", i+1, down, d.Active, up, d.Reason, d.Message)
		}
		d, _ = Decide(g, &d, World{Live: live("node1", "node2"), NodeLosses: losses}, at.Add(10*time.Second))
		d.Active, d.Target, d.Releasing = d.Target+d.Active, "", "" // node2 confirmed its release
	}
	if len(d.Failures) != 0 {
		t.Errorf("lease losses counted as group failures: %v", d.Failures)
	}
	if d.Active != "node2" {
		t.Errorf("active %s: node1 lost its lease %d times and still got the group back automatically", d.Active, len(losses["node1"]))
	}
}

// TestSpentFailureBudgetsHoldOffThenPlaceAgain: every live node failed the
// group maxFailures times: the group waits a hold-off (NoHealthyNode, with
// when), then is placed again with a Warning, and the next hold-off is
// longer.
func TestSpentFailureBudgetsHoldOffThenPlaceAgain(t *testing.T) {
	g := group("", "", 1)
	failed := map[string][]time.Time{
		"node1": {t0.Add(-3 * time.Minute), t0.Add(-2 * time.Minute), t0.Add(-time.Minute)},
		"node2": {t0.Add(-3 * time.Minute), t0.Add(-2 * time.Minute), t0.Add(-time.Minute)},
	}
	w := World{Live: live("node1", "node2")}
	d, changes := Decide(g, &store.Decision{Failures: failed}, w, t0)
	if d.Active != "" || d.RetryAt != t0.Add(30*time.Second) || len(changes) != 1 || !changes[0].Warning {
		t.Fatalf("first pass: %+v %+v, want NoHealthyNode with a 30s hold-off", d, changes)
	}
	if again, _ := Decide(g, &d, w, t0.Add(10*time.Second)); again.Active != "" {
		t.Fatalf("placed before the hold-off ended: %+v", again)
	}
	d, changes = Decide(g, &d, w, t0.Add(30*time.Second))
	if d.Active != "node1" || len(changes) != 1 || changes[0].Reason != v1alpha1.ReasonPlaced || !changes[0].Warning {
		t.Fatalf("after the hold-off: %+v %+v, want placed on node1 with a Warning", d, changes)
	}
	// It fails again on both nodes: the next hold-off is twice as long.
	d.Active, d.Failures = "", failed
	d, _ = Decide(g, &d, w, t0.Add(time.Minute))
	if got := d.RetryAt.Sub(t0.Add(time.Minute)); got != time.Minute {
		t.Errorf("second hold-off %s, want 1m", got)
	}
}

// TestAnUnplacedGroupWaitsForItsLastHolder: a group left unplaced when
// its node's lease expired and no other node could take it is not placed
// elsewhere before that node's take-down budget has passed (a 200-group
// network fault run saw node1 add a VIP node2 was still taking down, for
// 4.4 s), nor while that node is back and has not released it.
func TestAnUnplacedGroupWaitsForItsLastHolder(t *testing.T) {
	g := group(v1alpha1.SwitchbackManual, "", 1)
	budgets := map[string]time.Duration{"node2": 30 * time.Second}
	unsafe := map[string]string{"node1": "just restarted, a step hung"}
	d, _ := Decide(g, &store.Decision{Active: "node2"}, World{Live: live("node1"), Budgets: budgets, Unsafe: unsafe}, t0)
	if d.Active != "" || d.Reason != v1alpha1.ReasonNoHealthyNode || d.Releasing != "node2" {
		t.Fatalf("node2 lost, node1 not eligible: %+v", d)
	}
	d, _ = Decide(g, &d, World{Live: live("node1"), Budgets: budgets}, t0.Add(7*time.Second))
	if d.Active != "" || d.Target != "node1" {
		t.Fatalf("node1 eligible 7 s later, node2's budget 30 s: %+v; want node1 as target, not active", d)
	}
	d, _ = Decide(g, &d, World{Live: live("node1"), Budgets: budgets}, t0.Add(31*time.Second))
	if d.Active != "node1" || d.Target != "" {
		t.Errorf("after node2's budget: %+v, want node1 active", d)
	}

	// The last holder back before anyone took the group: it must release
	// it (through the store) before it is placed again.
	d, _ = Decide(g, &store.Decision{Active: "node2"}, World{Live: live("node1"), Budgets: budgets, Unsafe: unsafe}, t0)
	d, _ = Decide(g, &d, World{Live: live("node1", "node2"), Budgets: budgets}, t0.Add(40*time.Second))
	if d.Active != "" {
		t.Errorf("node2 back, not yet released: %+v, want no active node", d)
	}
}

// switchbackAfter: the first node must have been up, with the group
// configured, that long before the group moves back; the decision says
// when.
func TestSwitchbackAfter(t *testing.T) {
	g := group(v1alpha1.SwitchbackAutomatic, "", 1)
	g.Placement.SwitchbackAfter = &v1alpha1.Duration{Duration: 10 * time.Minute}
	standby := map[string]store.Report{"node1": {Node: "node1", Phase: store.PhaseConverged, Released: true}, "node2": {Node: "node2", Active: true, Healthy: true, Phase: store.PhaseConverged}}
	for _, tc := range []struct {
		name      string
		upSince   time.Time
		reports   map[string]store.Report
		wantMove  bool
		wantAtSet bool
	}{
		{"up 5 minutes: waits, says until when", t0.Add(-5 * time.Minute), standby, false, true},
		{"up 11 minutes: switches back", t0.Add(-11 * time.Minute), standby, true, false},
		{"up long but the group not configured there yet: waits", t0.Add(-time.Hour), map[string]store.Report{"node2": standby["node2"]}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := World{Live: live("node1", "node2"), Reports: tc.reports, UpSince: map[string]time.Time{"node1": tc.upSince, "node2": t0.Add(-time.Hour)}}
			d, _ := Decide(g, &store.Decision{Active: "node2", Reason: "FailedOver"}, w, t0)
			if moved := d.Target == "node1"; moved != tc.wantMove {
				t.Fatalf("moved %t, want %t (decision %+v)", moved, tc.wantMove, d)
			}
			if tc.wantAtSet && !d.SwitchbackAt.Equal(tc.upSince.Add(10*time.Minute)) {
				t.Fatalf("switchbackAt %v, want %v", d.SwitchbackAt, tc.upSince.Add(10*time.Minute))
			}
			if !tc.wantAtSet && !d.SwitchbackAt.IsZero() {
				t.Fatalf("switchbackAt %v, want none", d.SwitchbackAt)
			}
			if tc.wantAtSet && !strings.Contains(d.Summary(), "switchback to the first node at") {
				t.Fatalf("the decision does not say when: %q", d.Summary())
			}
		})
	}
}
