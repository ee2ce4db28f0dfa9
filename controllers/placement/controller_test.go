package placement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/clock"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/memstore"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// The in-memory store must be usable wherever the leader's store is.
var _ Store = (*memstore.Store)(nil)

// groups returns n generated groups (site-0 ... site-n-1) placed on node1
// then node2, with the given switchback.
func groups(t *testing.T, n int, switchback v1alpha1.SwitchbackPolicy) []v1alpha1.Object {
	t.Helper()
	objs := testmanifests.Objects(n, testmanifests.Options{Net: 90, Port: 8080, Nodes: []string{"node1", "node2"}})
	for _, o := range objs {
		if s, ok := o.(*v1alpha1.IISSite); ok {
			s.Spec.Placement.Switchback = switchback
		}
	}
	return objs
}

// placed summarises the decisions: "group=active" or "group=->target
// (releasing)", sorted.
func placed(t *testing.T, st *memstore.Store) []string {
	t.Helper()
	ds, _ := st.Decisions(context.Background())
	var out []string
	for g, d := range ds {
		switch {
		case d.Target != "":
			out = append(out, fmt.Sprintf("%s=->%s (releasing %s)", g, d.Target, d.Releasing))
		default:
			out = append(out, fmt.Sprintf("%s=%s", g, d.Active))
		}
	}
	slices.Sort(out)
	return out
}

type env struct {
	t   *testing.T
	st  *memstore.Store
	clk *clock.Fake
	c   *Controller
	l   store.Leadership
}

func newEnv(t *testing.T, objs []v1alpha1.Object, nodes ...string) *env {
	st := memstore.New()
	st.Seed(objs...)
	for _, n := range nodes {
		if _, err := st.RegisterNode(context.Background(), store.NodeInfo{Name: n}, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	clk := clock.NewFake(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	l, err := st.Campaign(context.Background(), "leader")
	if err != nil {
		t.Fatal(err)
	}
	// Led long enough that the start-up grace is over.
	c := &Controller{Store: st, Clock: clk, Log: logr.Discard(), Recorder: st, leadingSince: clk.Now().Add(-time.Minute)}
	return &env{t: t, st: st, clk: clk, c: c, l: l}
}

func (e *env) reconcile() (Result, error) {
	e.t.Helper()
	return e.c.ReconcileAll(context.Background(), e.l.Guard())
}

func (e *env) mustReconcile() {
	e.t.Helper()
	if _, err := e.reconcile(); err != nil {
		e.t.Fatal(err)
	}
}

// report makes node say it serves group (active, healthy) or released it.
func (e *env) report(node, group string, active bool) {
	e.t.Helper()
	ds, _ := e.st.Decisions(context.Background())
	r := store.Report{Node: node, Group: group, Active: active, Phase: store.PhaseConverged, Healthy: true, Released: !active, Decided: ds[group].Since}
	if err := e.st.PutReport(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) reasons() []string {
	var out []string
	for _, ev := range e.st.Events() {
		if ev.Component == Component {
			out = append(out, ev.Object+" "+ev.Reason)
		}
	}
	return out
}

// TestFailoverAndSwitchbackStory walks one group through first placement,
// a node loss, the node's return with automatic switchback, and a manual
// switchover, checking the decision after each step.
func TestFailoverAndSwitchbackStory(t *testing.T) {
	e := newEnv(t, groups(t, 1, v1alpha1.SwitchbackAutomatic), "node1", "node2")
	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"placed on its first node", func() {}, []string{"site-0=node1"}},
		{"converged there: nothing changes", func() { e.report("node1", "site-0", true) }, []string{"site-0=node1"}},
		{"node1's lease expires: failed over at once (node1 fenced itself)", func() { e.st.Expire("node1") }, []string{"site-0=node2"}},
		{"node2 serves it", func() { e.report("node2", "site-0", true) }, []string{"site-0=node2"}},
		{"node1 returns: automatic switchback waits for node2's release", func() {
			if _, err := e.st.RegisterNode(context.Background(), store.NodeInfo{Name: "node1"}, 2*time.Second); err != nil {
				t.Fatal(err)
			}
		}, []string{"site-0=->node1 (releasing node2)"}},
		{"node2 still active: still waiting", func() { e.report("node2", "site-0", true) }, []string{"site-0=->node1 (releasing node2)"}},
		{"node2 released: node1 serves", func() { e.report("node2", "site-0", false) }, []string{"site-0=node1"}},
		{"manual switchover to node2 (a new generation)", func() {
			objs := groups(t, 1, v1alpha1.SwitchbackAutomatic)
			for _, o := range objs {
				if s, ok := o.(*v1alpha1.IISSite); ok {
					s.Spec.Placement.ActiveNode = "node2"
				}
			}
			e.st.Seed(objs...)
		}, []string{"site-0=->node2 (releasing node1)"}},
		{"node1 released: node2 serves and stays (activeNode pins it)", func() { e.report("node1", "site-0", false) }, []string{"site-0=node2"}},
	}
	for _, s := range steps {
		s.do()
		e.clk.Advance(time.Second)
		e.mustReconcile()
		if diff := cmp.Diff(s.want, placed(t, e.st)); diff != "" {
			t.Fatalf("%s: decisions (-want +got):\n%s", s.name, diff)
		}
	}
	// StandbyReady: node2 released and stands by, proven (the first
	// standby since node2 took over from a node without a lease).
	want := []string{"group/site-0 Placed", "group/site-0 FailedOver", "group/site-0 SwitchedBack", "group/site-0 StandbyReady", "group/site-0 SwitchedOver"}
	if diff := cmp.Diff(want, e.reasons()); diff != "" {
		t.Errorf("placement events (-want +got):\n%s", diff)
	}
	site := e.st.Object(v1alpha1.Ref{Kind: "IISSite", Name: "site-0"})
	if site.StatusRef().ActiveNode != "node2" {
		t.Errorf("status.activeNode %q, want node2", site.StatusRef().ActiveNode)
	}
}

// TestOneFailingGroupDoesNotHoldUpTheOthers: a group whose decision cannot
// be written is retried with its own backoff while the others fail over.
func TestOneFailingGroupDoesNotHoldUpTheOthers(t *testing.T) {
	e := newEnv(t, groups(t, 3, ""), "node1", "node2")
	e.mustReconcile()
	e.st.Expire("node1")
	refused := errors.New("etcdserver: request timed out")
	e.st.SetFail(func(op, key string) error {
		if op == "decision" && key == "site-1" {
			return refused
		}
		return nil
	})
	res, err := e.reconcile()
	if !errors.Is(err, refused) {
		t.Fatalf("error %v, want the refused write of site-1", err)
	}
	if diff := cmp.Diff([]string{"site-0=node2", "site-1=node1", "site-2=node2"}, placed(t, e.st)); diff != "" {
		t.Fatalf("the other groups must still fail over (-want +got):\n%s", diff)
	}
	if res.RequeueAfter != minBackoff {
		t.Errorf("requeue after %s, want %s", res.RequeueAfter, minBackoff)
	}
	// Before its backoff ends, the failing group is not tried again.
	res, err = e.reconcile()
	if err != nil || res.RequeueAfter <= 0 || res.RequeueAfter > minBackoff {
		t.Fatalf("within the backoff: err %v, requeue %s", err, res.RequeueAfter)
	}
	// It fails again when due: the backoff doubles.
	e.clk.Advance(minBackoff)
	res, _ = e.reconcile()
	if want := 3 * minBackoff; res.RequeueAfter != want {
		t.Errorf("second backoff %s, want %s", res.RequeueAfter, want)
	}
	e.st.SetFail(nil)
	e.clk.Advance(res.RequeueAfter)
	res, err = e.reconcile()
	if err != nil || res.RequeueAfter != 0 {
		t.Fatalf("after the store recovers: err %v, requeue %s", err, res.RequeueAfter)
	}
	if diff := cmp.Diff([]string{"site-0=node2", "site-1=node2", "site-2=node2"}, placed(t, e.st)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestDeposedLeaderCannotWrite: a decision written with the guard of a
// term that ended is refused, so two leaders never both decide.
func TestDeposedLeaderCannotWrite(t *testing.T) {
	e := newEnv(t, groups(t, 1, ""), "node1", "node2")
	e.st.Depose()
	if _, err := e.reconcile(); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("error %v, want a conflict", err)
	}
	if got := placed(t, e.st); len(got) != 0 {
		t.Errorf("a deposed leader wrote %v", got)
	}
}

// TestDeleteFinishesOnceEveryLiveNodeConfirmed: the second phase of delete.
func TestDeleteFinishesOnceEveryLiveNodeConfirmed(t *testing.T) {
	e := newEnv(t, groups(t, 1, ""), "node1", "node2")
	e.mustReconcile()
	site := v1alpha1.Ref{Kind: "IISSite", Name: "site-0"}
	e.st.MarkDeleted(site, e.clk.Now())
	_ = e.st.AckDeleted(context.Background(), "node1", site)
	e.mustReconcile()
	if e.st.Object(site) == nil {
		t.Fatal("removed before node2 confirmed")
	}
	_ = e.st.AckDeleted(context.Background(), "node2", site)
	e.mustReconcile()
	if e.st.Object(site) != nil {
		t.Fatal("not removed after every live node confirmed")
	}
}

// TestRunLeadsAndRequeuesOnTheClock runs the whole loop on the fake clock:
// it campaigns, places the group, and after a refused write retries when
// the clock reaches the backoff, with no sleep waiting for a timer.
func TestRunLeadsAndRequeuesOnTheClock(t *testing.T) {
	st := memstore.New()
	st.Seed(groups(t, 1, "")...)
	for _, n := range []string{"node1", "node2"} {
		_, _ = st.RegisterNode(context.Background(), store.NodeInfo{Name: n}, 2*time.Second)
	}
	refuse := make(chan bool, 1)
	refuse <- true
	st.SetFail(func(op, key string) error {
		select {
		case r := <-refuse:
			if r {
				return errors.New("no quorum")
			}
		default:
		}
		return nil
	})
	clk := clock.NewFake(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	c := &Controller{Store: st, Clock: clk, Log: logr.Discard(), Identity: "node1", Grace: time.Nanosecond}
	runController(t, c)
	// The first pass fails; the loop then waits on its timers (tick, grace
	// end, retry). Advancing the clock by the backoff fires the retry.
	waitFor(t, func() bool { return clk.Waiters() >= 3 })
	if got := placed(t, st); len(got) != 0 {
		t.Fatalf("placed %v through a refused write", got)
	}
	clk.Advance(minBackoff)
	waitFor(t, func() bool { return slices.Equal(placed(t, st), []string{"site-0=node1"}) })
}

// runController runs the leader's loop until the test ends.
func runController(t *testing.T, c *Controller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls a condition another goroutine makes true; it waits on that
// goroutine's progress, never on a timer of the code under test.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not met")
}

// BenchmarkPlacementPass: one pass of the leader over n converged groups
// (in-memory store): decisions unchanged, statuses unchanged.
func BenchmarkPlacementPass(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			st := memstore.New()
			st.Seed(testmanifests.Objects(n, testmanifests.Options{Net: 90, Port: 8080, Nodes: []string{"node1", "node2"}})...)
			for _, node := range []string{"node1", "node2"} {
				_, _ = st.RegisterNode(context.Background(), store.NodeInfo{Name: node}, 2*time.Second)
			}
			l, _ := st.Campaign(context.Background(), "leader")
			clk := clock.NewFake(time.Unix(1000, 0))
			c := &Controller{Store: st, Clock: clk, Log: logr.Discard(), Recorder: st, leadingSince: clk.Now().Add(-time.Minute)}
			// The first pass places the groups; the statuses come after
			// the hold of a placement in bulk.
			for range 2 {
				if _, err := c.ReconcileAll(context.Background(), l.Guard()); err != nil {
					b.Fatal(err)
				}
				clk.Advance(statusHold)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.ReconcileAll(context.Background(), l.Guard()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDamagedDecisionIsReplacedWhereTheGroupServes: a placement value that
// does not decode fails no pass and blocks no other group; the group stays
// on the node that reports it active, the bad value is replaced, and one
// Warning event names the key.
func TestDamagedDecisionIsReplacedWhereTheGroupServes(t *testing.T) {
	e := newEnv(t, groups(t, 3, v1alpha1.SwitchbackManual), "node1", "node2")
	e.mustReconcile()
	// site-0 failed over to node2 earlier, and serves there.
	ds, _ := e.st.Decisions(context.Background())
	d := ds["site-0"]
	d.Active = "node2"
	if err := e.st.PutDecision(context.Background(), d, store.LeaderGuard{}); err != nil {
		t.Fatal(err)
	}
	e.report("node2", "site-0", true)
	e.st.DamageDecision("site-0", "invalid character 'x' looking for beginning of value")
	e.st.DamageDecision("site-1", "unexpected end of JSON input") // no node reports it active
	for range 2 {
		e.mustReconcile()
	}
	got := placed(t, e.st)
	want := []string{"site-0=node2", "site-1=node1", "site-2=node1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("placements after the damage (-want +got):\n%s", diff)
	}
	ds, _ = e.st.Decisions(context.Background())
	for g, d := range ds {
		if d.Damaged != "" {
			t.Errorf("group %s's damaged decision was not replaced", g)
		}
	}
	var warned []string
	for _, ev := range e.st.Events() {
		if ev.Reason == store.DamagedWarning {
			warned = append(warned, ev.Object)
		}
	}
	slices.Sort(warned)
	if diff := cmp.Diff([]string{"placement/site-0", "placement/site-1"}, warned); diff != "" {
		t.Errorf("Warning events for the damaged keys, one each (-want +got):\n%s", diff)
	}
}

// TestDamagedObjectStopsNoOtherGroup: an object value that does not decode
// is skipped with one Warning event; the other groups still fail over.
func TestDamagedObjectStopsNoOtherGroup(t *testing.T) {
	e := newEnv(t, groups(t, 2, v1alpha1.SwitchbackManual), "node1", "node2")
	e.mustReconcile()
	e.st.DamageObject(v1alpha1.Ref{Kind: v1alpha1.KindIISSite, Name: "site-1"}, "invalid character '}'")
	e.st.Expire("node1")
	for range 2 {
		e.mustReconcile()
		e.report("node2", "site-0", true)
	}
	if got := placed(t, e.st); !slices.Contains(got, "site-0=node2") {
		t.Fatalf("site-0 did not fail over with a damaged object in the store: %v", got)
	}
	n := 0
	for _, ev := range e.st.Events() {
		if ev.Reason == store.DamagedWarning && ev.Object == "objects/IISSite/site-1" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d Warning events for the damaged object, want 1", n)
	}
}

// batchStore writes placement batches through the in-memory store, and
// can refuse one batch.
type batchStore struct {
	*memstore.Store
	mu      sync.Mutex
	batches int
	refuse  bool     // the next batch is refused as a conflict
	kinds   []string // per batch: "decisions", "statuses" or "both"
	// slow holds each batch this long before it is written; inFlight
	// counts the batches of each kind being written, maxInFlight the
	// most seen at once.
	slow        time.Duration
	inFlight    [2]int // [0] status batches, [1] decision batches
	maxInFlight [2]int
}

func (b *batchStore) PutPlacements(ctx context.Context, ws []store.PlacementWrite, guard store.LeaderGuard) error {
	if b.slow > 0 {
		kind := 0
		if slices.ContainsFunc(ws, func(w store.PlacementWrite) bool { return w.Decision != nil }) {
			kind = 1
		}
		b.mu.Lock()
		b.inFlight[kind]++
		b.maxInFlight[kind] = max(b.maxInFlight[kind], b.inFlight[kind])
		b.mu.Unlock()
		time.Sleep(b.slow)
		defer func() {
			b.mu.Lock()
			b.inFlight[kind]--
			b.mu.Unlock()
		}()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches++
	decisions, statuses := 0, 0
	for _, w := range ws {
		if w.Decision != nil {
			decisions++
		}
		statuses += len(w.Statuses)
	}
	switch {
	case decisions > 0 && statuses > 0:
		b.kinds = append(b.kinds, "both")
	case decisions > 0:
		b.kinds = append(b.kinds, "decisions")
	default:
		b.kinds = append(b.kinds, "statuses")
	}
	if b.refuse {
		b.refuse = false
		return store.ErrConflict
	}
	for _, w := range ws {
		if w.Decision != nil {
			if err := b.PutDecision(ctx, *w.Decision, guard); err != nil {
				return err
			}
		}
		for ref, st := range w.Statuses {
			if err := b.PutStatus(ctx, ref, st); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestPassWritesInBatches: a pass that places many groups writes them in
// a few batches, not one write per group; a refused batch is written again
// group by group, and every group is still placed.
func TestPassWritesInBatches(t *testing.T) {
	const n = 60
	e := newEnv(t, groups(t, n, v1alpha1.SwitchbackManual), "node1", "node2")
	bs := &batchStore{Store: e.st, refuse: true}
	e.c.Store = bs
	if _, err := e.c.ReconcileAll(context.Background(), e.l.Guard()); err != nil {
		t.Fatal(err)
	}
	// The decisions in batches of their own, then the statuses.
	if want := (n+decisionsPerTxn-1)/decisionsPerTxn + (n+groupsPerTxn-1)/groupsPerTxn; bs.batches != want {
		t.Errorf("%d batches for %d groups, want %d", bs.batches, n, want)
	}
	if got := len(placed(t, e.st)); got != n {
		t.Errorf("%d groups placed after a refused batch, want %d", got, n)
	}
	for _, g := range placed(t, e.st) {
		if !strings.HasSuffix(g, "=node1") {
			t.Errorf("placement %s, want every group on node1 (its first node)", g)
		}
	}
}

// TestPassWritesDecisionsBeforeStatuses: the nodes act on decisions, so a
// pass that places many groups commits every decision, and no status (a
// status is four times a decision's size, and the nodes are busy taking
// the groups over); the decision batches go side by side. The statuses
// come with the first pass after the nodes answered every move, their
// batches one at a time (the nodes' reads and reports come between them).
func TestPassWritesDecisionsBeforeStatuses(t *testing.T) {
	const n = 2*decisionsPerTxn + 100
	e := newEnv(t, groups(t, n, v1alpha1.SwitchbackManual), "node1", "node2")
	bs := &batchStore{Store: e.st, slow: 20 * time.Millisecond}
	e.c.Store = bs
	res, err := e.c.ReconcileAll(context.Background(), e.l.Guard())
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Repeat([]string{"decisions"}, (n+decisionsPerTxn-1)/decisionsPerTxn)
	if diff := cmp.Diff(want, bs.kinds); diff != "" {
		t.Errorf("batches of the pass that placed the groups (-want +got):\n%s", diff)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > statusHold {
		t.Errorf("requeue after %s, want a pass for the statuses within %s", res.RequeueAfter, statusHold)
	}
	// A pass while answers are owed (one group not answered) writes none.
	ds, _ := e.st.Decisions(context.Background())
	var reps []store.Report
	for i := 1; i < n; i++ {
		g := fmt.Sprintf("site-%d", i)
		reps = append(reps, store.Report{Node: "node1", Group: g, Active: true, Phase: store.PhaseConverged, Healthy: true, Decided: ds[g].Since})
	}
	if err := e.st.PutReports(context.Background(), reps); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(statusHold / 2)
	if _, err := e.c.ReconcileAll(context.Background(), e.l.Guard()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, bs.kinds); diff != "" {
		t.Errorf("batches after a pass with an answer owed (-want +got):\n%s", diff)
	}
	e.report("node1", "site-0", true)
	if _, err := e.c.ReconcileAll(context.Background(), e.l.Guard()); err != nil {
		t.Fatal(err)
	}
	want = append(want, slices.Repeat([]string{"statuses"}, (n+groupsPerTxn-1)/groupsPerTxn)...)
	if diff := cmp.Diff(want, bs.kinds); diff != "" {
		t.Errorf("batches once every move was answered (-want +got):\n%s", diff)
	}
	if got := bs.maxInFlight[1]; got < 2 {
		t.Errorf("at most %d decision batch(es) written at once, want them side by side", got)
	}
	if got := bs.maxInFlight[0]; got != 1 {
		t.Errorf("%d status batches written at once, want 1", got)
	}
	st, err := e.st.Statuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 3*n {
		t.Errorf("%d statuses written, want %d", len(st), 3*n)
	}
}

// TestStartupGraceWaitsForThePreferredNode: a new leader does not give a
// never-placed group to the second node just because the first registered
// a moment later, however many passes run in between (a CI run saw the
// second pass place a Manual-switchback group on node2 for good: the first
// pass had stored an empty decision, and the grace only held for groups
// without one).
func TestStartupGraceWaitsForThePreferredNode(t *testing.T) {
	e := newEnv(t, groups(t, 2, v1alpha1.SwitchbackManual), "node2")
	e.c.leadingSince = e.clk.Now()
	for pass := range 3 {
		e.mustReconcile()
		if got := placed(t, e.st); slices.ContainsFunc(got, func(s string) bool { return strings.HasSuffix(s, "=node2") }) {
			t.Fatalf("pass %d, node1 not yet registered, inside the grace: placed %v; want nothing placed yet", pass, got)
		}
		e.clk.Advance(100 * time.Millisecond)
	}
	if _, err := e.st.RegisterNode(context.Background(), store.NodeInfo{Name: "node1"}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	e.mustReconcile()
	if got, want := placed(t, e.st), []string{"site-0=node1", "site-1=node1"}; !cmp.Equal(got, want) {
		t.Errorf("once node1 registered: placed %v, want %v", got, want)
	}

	// A group whose preferred node never comes is placed when the grace ends.
	late := newEnv(t, groups(t, 1, v1alpha1.SwitchbackManual), "node2")
	late.c.leadingSince = late.clk.Now()
	late.mustReconcile()
	late.clk.Advance(late.c.grace())
	late.mustReconcile()
	if got, want := placed(t, late.st), []string{"site-0=node2"}; !cmp.Equal(got, want) {
		t.Errorf("after the grace, node1 still missing: placed %v, want %v", got, want)
	}
}

// A drain moves its node's groups off so many at a time, and places
// nothing new there.
func TestDrainMovesGroupsOffParallelAtATime(t *testing.T) {
	e := newEnv(t, groups(t, 3, v1alpha1.SwitchbackAutomatic), "node1", "node2")
	e.mustReconcile()
	for _, g := range []string{"site-0", "site-1", "site-2"} {
		e.report("node1", g, true)
	}
	if err := e.st.SetDrain(context.Background(), "node1", 2); err != nil {
		t.Fatal(err)
	}
	e.mustReconcile()
	moving := 0
	for _, p := range placed(t, e.st) {
		if strings.Contains(p, "->node2 (releasing node1)") {
			moving++
		}
	}
	if moving != 2 {
		t.Fatalf("%d groups moving off the drained node at once, want 2 (--parallel 2): %v", moving, placed(t, e.st))
	}
	// They release; the third moves next; all end on node2.
	for range 3 {
		ds, _ := e.st.Decisions(context.Background())
		for g, d := range ds {
			if d.Releasing == "node1" {
				e.report("node1", g, false)
			}
		}
		e.mustReconcile()
	}
	want := []string{"site-0=node2", "site-1=node2", "site-2=node2"}
	if diff := cmp.Diff(want, placed(t, e.st)); diff != "" {
		t.Fatalf("after the drain (-want +got):\n%s", diff)
	}
	// Automatic switchback does not pull them back while it drains.
	for _, g := range []string{"site-0", "site-1", "site-2"} {
		e.report("node2", g, true)
	}
	e.mustReconcile()
	if diff := cmp.Diff(want, placed(t, e.st)); diff != "" {
		t.Fatalf("switched back to a draining node (-want +got):\n%s", diff)
	}
}

// The leader wakes itself up when a pending switchback is due.
func TestSwitchbackAfterWakesTheLeader(t *testing.T) {
	objs := groups(t, 1, v1alpha1.SwitchbackAutomatic)
	for _, o := range objs {
		if s, ok := o.(*v1alpha1.IISSite); ok {
			s.Spec.Placement.SwitchbackAfter = &v1alpha1.Duration{Duration: 10 * time.Minute}
		}
	}
	e := newEnv(t, objs, "node1", "node2")
	e.mustReconcile()
	e.report("node1", "site-0", true)
	e.st.Expire("node1")
	e.mustReconcile()
	e.report("node2", "site-0", true)
	if _, err := e.st.RegisterNode(context.Background(), store.NodeInfo{Name: "node1"}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	e.report("node1", "site-0", false) // node1 back, configured as a standby
	res, err := e.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if got := placed(t, e.st); !slices.Equal(got, []string{"site-0=node2"}) {
		t.Fatalf("moved back before node1 was up for 10 minutes: %v", got)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > 10*time.Minute {
		t.Fatalf("the leader asks to look again in %s, want by the switchback, 10m", res.RequeueAfter)
	}
	e.clk.Advance(res.RequeueAfter)
	e.mustReconcile()
	if got := placed(t, e.st); !slices.Equal(got, []string{"site-0=->node1 (releasing node2)"}) {
		t.Fatalf("after 10 minutes up: %v, want the switchback under way", got)
	}
}

// A standby that cannot prove it could take the group over is passed over
// while a ready one exists, the decision says why, and the group's
// StandbyReady condition and events follow the proofs.
func TestPlacementPrefersReadyStandbys(t *testing.T) {
	objs := testmanifests.Objects(1, testmanifests.Options{Net: 90, Port: 8080, Nodes: []string{"node1", "node2", "node3"}})
	e := newEnv(t, objs, "node1", "node2", "node3")
	e.mustReconcile()
	e.report("node1", "site-0", true)
	standby := func(node string, problems ...string) {
		ds, _ := e.st.Decisions(context.Background())
		r := store.Report{Node: node, Group: "site-0", Phase: store.PhaseConverged, Healthy: true, Released: true, Decided: ds["site-0"].Since,
			StandbyChecked: true, StandbyProblems: problems}
		if err := e.st.PutReport(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	standby("node2")
	standby("node3")
	e.mustReconcile()
	cond := func() *v1alpha1.Condition {
		site := e.st.Object(v1alpha1.Ref{Kind: "IISSite", Name: "site-0"})
		return v1alpha1.FindCondition(site.StatusRef().Conditions, v1alpha1.ConditionStandbyReady)
	}
	if c := cond(); c == nil || c.Status != v1alpha1.ConditionTrue || !strings.Contains(c.Message, "ready: node2, node3") {
		t.Fatalf("StandbyReady with two proven standbys: %+v", c)
	}
	standby("node2", "volume vol-0 (Mirror:E) is not visible to this node")
	e.mustReconcile()
	if c := cond(); c == nil || c.Status != v1alpha1.ConditionTrue || !strings.Contains(c.Message, "node2: volume vol-0") {
		t.Fatalf("StandbyReady with node3 still ready: %+v", c)
	}
	e.st.Expire("node1")
	e.mustReconcile()
	ds, _ := e.st.Decisions(context.Background())
	if d := ds["site-0"]; d.Active != "node3" || !strings.Contains(d.Message, "node2 is not a ready standby: volume vol-0") {
		t.Fatalf("failover went to %q (%s), want node3 with why node2 was passed over", d.Active, d.Message)
	}
	standby("node2", "certificate ABC is not in Cert:\\LocalMachine\\My with its private key")
	e.mustReconcile()
	if c := cond(); c == nil || c.Status != v1alpha1.ConditionFalse || c.Reason != v1alpha1.ReasonNoReadyStandby {
		t.Fatalf("StandbyReady with no proven standby: %+v", c)
	}
	if got := e.reasons(); !slices.Contains(got, "group/site-0 StandbyNotReady") {
		t.Fatalf("no StandbyNotReady event: %v", got)
	}
}

// TestFailoverWaitsOutAShortBudgetThenMovesInOneWrite: a pass that finds a
// node newly down puts itself off for that node's (short) take-down
// budget, writing nothing; the pass after moves the node's groups straight
// to the standby, with no intermediate "moving" decision.
func TestFailoverWaitsOutAShortBudgetThenMovesInOneWrite(t *testing.T) {
	e := newEnv(t, testmanifests.Objects(2, testmanifests.Options{Net: 91, Port: 8080, Nodes: []string{"node1", "node2"}}), "node1", "node2")
	if _, err := e.st.RegisterNode(context.Background(), store.NodeInfo{Name: "node1", TakedownBudget: store.Duration{Duration: 300 * time.Millisecond}}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	e.mustReconcile()
	for _, g := range []string{"site-0", "site-1"} {
		e.report("node1", g, true)
	}
	e.mustReconcile()
	before := placed(t, e.st)
	if diff := cmp.Diff([]string{"site-0=node1", "site-1=node1"}, before); diff != "" {
		t.Fatalf("placed (-want +got):\n%s", diff)
	}

	e.st.Expire("node1")
	res, err := e.reconcile()
	if err != nil || res.RequeueAfter != 300*time.Millisecond {
		t.Fatalf("first pass after the loss: %+v %v; want it put off for the 300ms budget", res, err)
	}
	if diff := cmp.Diff(before, placed(t, e.st)); diff != "" {
		t.Fatalf("the put-off pass wrote decisions (-before +after):\n%s", diff)
	}
	e.clk.Advance(300 * time.Millisecond)
	e.mustReconcile()
	if diff := cmp.Diff([]string{"site-0=node2", "site-1=node2"}, placed(t, e.st)); diff != "" {
		t.Fatalf("after the budget, in one pass (-want +got):\n%s", diff)
	}
}

// expiringStore lets a node's lease run out while a pass reads the specs:
// after the pass looked at the nodes, before it read everything else.
type expiringStore struct {
	*memstore.Store
	node string
	once bool
}

func (s *expiringStore) ListSpecs(ctx context.Context) (store.Snapshot, error) {
	if s.once {
		s.once = false
		s.Expire(s.node)
	}
	return s.Store.ListSpecs(ctx)
}

// servedByNode1 is a leader with two groups that node1 (take-down budget
// 300 ms) serves and node2 stands by for, and a reader of every status.
func servedByNode1(t *testing.T, net int) (*env, func() map[v1alpha1.Ref]v1alpha1.Status) {
	t.Helper()
	e := newEnv(t, testmanifests.Objects(2, testmanifests.Options{Net: net, Port: 8080, Nodes: []string{"node1", "node2"}}), "node1", "node2")
	if _, err := e.st.RegisterNode(context.Background(), store.NodeInfo{Name: "node1", TakedownBudget: store.Duration{Duration: 300 * time.Millisecond}}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	e.mustReconcile()
	for _, g := range []string{"site-0", "site-1"} {
		e.report("node1", g, true)
		e.report("node2", g, false)
	}
	e.mustReconcile()
	statuses := func() map[v1alpha1.Ref]v1alpha1.Status {
		st, err := e.st.Statuses(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	return e, statuses
}

func TestALeaseThatExpiresMidPassIsHeldByTheNextPass(t *testing.T) {
	e, statuses := servedByNode1(t, 92)
	before, placedBefore := statuses(), placed(t, e.st)

	exp := &expiringStore{Store: e.st, node: "node1", once: true}
	e.c.Store = exp
	e.mustReconcile()
	if diff := cmp.Diff(before, statuses()); diff != "" {
		t.Fatalf("the pass during which node1's lease ran out wrote status for the lease it did not look at (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(placedBefore, placed(t, e.st)); diff != "" {
		t.Fatalf("placement changed (-before +after):\n%s", diff)
	}
	res, err := e.reconcile()
	if err != nil || res.RequeueAfter != 300*time.Millisecond {
		t.Fatalf("next pass: %+v %v; want it put off for node1's 300ms budget", res, err)
	}
	e.clk.Advance(300 * time.Millisecond)
	e.mustReconcile()
	if diff := cmp.Diff([]string{"site-0=node2", "site-1=node2"}, placed(t, e.st)); diff != "" {
		t.Fatalf("after the budget, in one pass (-want +got):\n%s", diff)
	}
}

// countingStore counts full status reads.
type countingStore struct {
	*memstore.Store
	statusReads int
}

func (s *countingStore) Statuses(ctx context.Context) (map[v1alpha1.Ref]v1alpha1.Status, error) {
	s.statusReads++
	return s.Store.Statuses(ctx)
}

// TestTheLeadersOwnStatusCopyWritesWhatAFullReadWould runs one failover
// twice: with a leader that reads every status at every pass, and with
// one that keeps its own copy between ticks. They must write the same.
func TestTheLeadersOwnStatusCopyWritesWhatAFullReadWould(t *testing.T) {
	run := func(tick time.Duration) (map[v1alpha1.Ref]v1alpha1.Status, int) {
		e := newEnv(t, testmanifests.Objects(3, testmanifests.Options{Net: 93, Port: 8080, Nodes: []string{"node1", "node2"}}), "node1", "node2")
		cs := &countingStore{Store: e.st}
		e.c.Store, e.c.Tick = cs, tick
		e.mustReconcile()
		for _, g := range []string{"site-0", "site-1", "site-2"} {
			e.report("node1", g, true)
			e.report("node2", g, false)
		}
		e.clk.Advance(time.Second)
		e.mustReconcile()
		e.st.Expire("node1")
		e.clk.Advance(time.Second)
		e.mustReconcile()
		for _, g := range []string{"site-0", "site-1", "site-2"} {
			e.report("node2", g, true)
		}
		e.clk.Advance(time.Second)
		e.mustReconcile()
		st, err := e.st.Statuses(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st, cs.statusReads
	}
	full, fullReads := run(0)
	kept, keptReads := run(time.Minute)
	if diff := cmp.Diff(full, kept); diff != "" {
		t.Errorf("statuses written from the leader's copy differ from those written after full reads (-full +kept):\n%s", diff)
	}
	if fullReads != 4 || keptReads != 1 {
		t.Errorf("full status reads: %d without a tick, %d with one; want 4 and 1", fullReads, keptReads)
	}
	if st := full[v1alpha1.Ref{Kind: "IISSite", Name: "site-0"}]; st.ActiveNode != "node2" {
		t.Errorf("site-0 status after the failover: active %q, want node2", st.ActiveNode)
	}
}

// TestStatusesAreReadAgainAfterTheTickNotInTheNextChange: a pass made for
// a change keeps the leader's copy even when the last full read is a Tick
// old (that pass is as likely a failover's); the pass after the Tick reads
// every status again, and so does any pass two Ticks after the last read.
func TestStatusesAreReadAgainAfterTheTickNotInTheNextChange(t *testing.T) {
	e := newEnv(t, testmanifests.Objects(2, testmanifests.Options{Net: 94, Port: 8080, Nodes: []string{"node1", "node2"}}), "node1", "node2")
	cs := &countingStore{Store: e.st}
	e.c.Store, e.c.Tick = cs, time.Minute
	e.mustReconcile()
	reads := []int{cs.statusReads}
	e.clk.Advance(61 * time.Second) // a Tick since the last read; a change comes
	e.report("node1", "site-0", true)
	e.mustReconcile()
	reads = append(reads, cs.statusReads)
	e.c.statusesDue() // the Tick
	e.mustReconcile()
	reads = append(reads, cs.statusReads)
	e.mustReconcile()
	reads = append(reads, cs.statusReads)
	e.clk.Advance(121 * time.Second) // two Ticks without one: a loop that stalled
	e.mustReconcile()
	reads = append(reads, cs.statusReads)
	if diff := cmp.Diff([]int{1, 1, 2, 2, 3}, reads); diff != "" {
		t.Errorf("full status reads after each pass (-want +got):\n%s", diff)
	}
}

// TestANewLeaderHoldsForTheBudgetOfANodeThatWentDownWithTheOldOne: the
// leader lived on the node that lost power; the one elected next never
// saw that node live, and must still put its first pass off for the
// node's budget and then move its groups in one write.
func TestANewLeaderHoldsForTheBudgetOfANodeThatWentDownWithTheOldOne(t *testing.T) {
	e, statuses := servedByNode1(t, 94)
	before, placedBefore := statuses(), placed(t, e.st)

	e.st.Expire("node1")
	cs := &countingStore{Store: e.st}
	e.c = &Controller{Store: cs, Clock: e.clk, Log: logr.Discard(), Recorder: e.st, leadingSince: e.clk.Now().Add(-time.Minute), Tick: time.Minute}
	res, err := e.reconcile()
	if err != nil || res.RequeueAfter != 300*time.Millisecond {
		t.Fatalf("the new leader's first pass: %+v %v; want it put off for node1's 300ms budget", res, err)
	}
	// It read the statuses while the budget runs, not after it.
	if cs.statusReads != 1 {
		t.Fatalf("%d full status reads in the put-off pass, want 1", cs.statusReads)
	}
	if diff := cmp.Diff(before, statuses()); diff != "" {
		t.Fatalf("the put-off pass wrote status (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(placedBefore, placed(t, e.st)); diff != "" {
		t.Fatalf("the put-off pass moved groups (-before +after):\n%s", diff)
	}
	e.clk.Advance(300 * time.Millisecond)
	e.mustReconcile()
	if diff := cmp.Diff([]string{"site-0=node2", "site-1=node2"}, placed(t, e.st)); diff != "" {
		t.Fatalf("after the budget, in one pass (-want +got):\n%s", diff)
	}
	if cs.statusReads != 1 {
		t.Errorf("%d full status reads, want the one read ahead", cs.statusReads)
	}
}

// endingWatchStore ends the leader's first watch at once, as a member that
// lost its raft leader does, and counts the passes (spec reads).
type endingWatchStore struct {
	*memstore.Store
	watches, passes atomic.Int32
}

func (s *endingWatchStore) Changes(ctx context.Context, families ...store.Family) <-chan struct{} {
	if s.watches.Add(1) == 1 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return s.Store.Changes(ctx, families...)
}

func (s *endingWatchStore) ListSpecs(ctx context.Context) (store.Snapshot, error) {
	s.passes.Add(1)
	return s.Store.ListSpecs(ctx)
}

// TestAnEndedWatchIsTakenAgainNotSpunOn: the leader's watch of the store
// ends; the leader does not run a pass at every select on the closed
// channel (thousands in a few milliseconds), it watches again after a
// pause, runs a pass for what came in between, and goes on following the
// store's changes through the new watch.
func TestAnEndedWatchIsTakenAgainNotSpunOn(t *testing.T) {
	st := &endingWatchStore{Store: memstore.New()}
	st.Seed(groups(t, 1, "")...)
	for _, n := range []string{"node1", "node2"} {
		_, _ = st.RegisterNode(context.Background(), store.NodeInfo{Name: n}, 2*time.Second)
	}
	clk := clock.NewFake(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	c := &Controller{Store: st, Clock: clk, Log: logr.Discard(), Identity: "node1", Grace: time.Hour}
	runController(t, c)
	// The loop waits on the tick, the grace end and the re-watch pause.
	waitFor(t, func() bool { return clk.Waiters() >= 3 })
	time.Sleep(50 * time.Millisecond) // room to spin, were it spinning
	if n := st.passes.Load(); n > 2 {
		t.Fatalf("%d passes with an ended watch and nothing changed, want at most 2", n)
	}
	before := st.passes.Load()
	clk.Advance(rewatchPause)
	waitFor(t, func() bool { return st.watches.Load() == 2 && st.passes.Load() > before })
	// A change seen through the new watch starts a pass: a new group is
	// placed with no tick and no timer.
	before = st.passes.Load()
	st.Seed(testmanifests.Objects(2, testmanifests.Options{Net: 90, Port: 8080, Nodes: []string{"node1", "node2"}})...)
	waitFor(t, func() bool { return st.passes.Load() > before })
}

// TestStatusHoldsAreBounded: a hold with answers never coming ends after
// statusHold; passes that keep moving groups in bulk hold the statuses at
// most every 2 × statusHold; a pass moving a few holds none.
func TestStatusHoldsAreBounded(t *testing.T) {
	c := &Controller{}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	moving := func(n int) []*groupWrite {
		ws := make([]*groupWrite, n)
		for i := range ws {
			ws[i] = &groupWrite{PlacementWrite: store.PlacementWrite{Group: fmt.Sprintf("site-%d", i),
				Decision: &store.Decision{Group: fmt.Sprintf("site-%d", i), Active: "node2", Since: t0}}}
		}
		return ws
	}
	steps := []struct {
		at    time.Duration
		moves int
		held  bool
	}{
		{0, statusHoldMoves - 1, false},
		{100 * time.Millisecond, statusHoldMoves, true},
		{statusHold / 2, statusHoldMoves, true},
		{statusHold + 100*time.Millisecond, statusHoldMoves, false},
		{2*statusHold - time.Millisecond, 1000, false},
		{2*statusHold + 100*time.Millisecond, 1000, true},
		{3*statusHold + 100*time.Millisecond, 0, false},
	}
	for _, s := range steps {
		if got := c.holdStatuses(moving(s.moves), nil, t0.Add(s.at)); got != s.held {
			t.Errorf("at %s with %d moves: held %v, want %v", s.at, s.moves, got, s.held)
		}
	}
}

// slowPassStore makes each pass take 300 ms of the fake clock (its read
// of the specs) and counts the passes.
type slowPassStore struct {
	*memstore.Store
	clk    *clock.Fake
	passes atomic.Int32
}

func (s *slowPassStore) ListSpecs(ctx context.Context) (store.Snapshot, error) {
	s.passes.Add(1)
	s.clk.Advance(300 * time.Millisecond)
	return s.Store.ListSpecs(ctx)
}

// TestABulkMoveSpacesThePassesChangesWake: after a pass that placed many
// groups (statuses held until the nodes answer), the change of its own
// decisions does not start another pass of every group at once, while
// the nodes take the groups over: it waits as long as the pass took.
func TestABulkMoveSpacesThePassesChangesWake(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	st := &slowPassStore{Store: memstore.New(), clk: clk}
	st.Seed(groups(t, statusHoldMoves, v1alpha1.SwitchbackManual)...)
	for _, n := range []string{"node1", "node2"} {
		_, _ = st.RegisterNode(context.Background(), store.NodeInfo{Name: n}, 2*time.Second)
	}
	c := &Controller{Store: st, Clock: clk, Log: logr.Discard(), Identity: "node1", Grace: time.Hour}
	runController(t, c)
	waitFor(t, func() bool { return len(placed(t, st.Store)) == statusHoldMoves })
	time.Sleep(50 * time.Millisecond) // room for a pass, were one started at once
	if n := st.passes.Load(); n != 1 {
		t.Fatalf("%d passes right after the bulk placement, want 1 (the next waits as long as it took)", n)
	}
	clk.Advance(300 * time.Millisecond)
	waitFor(t, func() bool { return st.passes.Load() == 2 })
}
