package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/clock"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

type staticSource struct{ d *plan.Desired }

func (s staticSource) Desired(context.Context) (*plan.Desired, error) { return s.d, nil }

// recorder is the Reporter of the tests, and their event Recorder.
type recorder struct {
	mu       sync.Mutex
	reports  []store.Report
	observed []plan.Observed
	deleted  []v1alpha1.Ref
	events   []store.Event
}

func (r *recorder) PublishObserved(_ context.Context, o plan.Observed) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observed = append(r.observed, o)
	return nil
}

func (r *recorder) AckDeleted(_ context.Context, refs []v1alpha1.Ref) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, refs...)
	return nil
}

func (r *recorder) Record(e store.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// reasons lists the recorded events as "Reason Object".
func (r *recorder) reasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Reason+" "+e.Object)
	}
	return out
}

func (r *recorder) Report(_ context.Context, rep store.Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, rep)
	return nil
}

func manifestFor(port int32) string {
	return fmt.Sprintf(`apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-web1, generation: 1}
spec: {address: 127.0.20.1/32}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-web1, generation: 1}
spec:
  driveLetter: E
  source: {mirror: {volume: E}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: web1, generation: 1}
spec:
  siteID: 2
  physicalPath: 'E:\web1'
  bindings: [{protocol: http, ipRef: vip-web1, port: %d}]
  health: {interval: 1s, timeout: 500ms, failureThreshold: 2, localRestarts: 1}
  placement: {nodes: [node1, node2]}
`, port)
}

func desiredFor(t *testing.T, port int32, active string) *plan.Desired {
	t.Helper()
	docs, errs := manifest.Decode("test.yaml", []byte(manifestFor(port)))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	res := validation.Validate(manifest.Objects(docs))
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	return &plan.Desired{Graph: res.Graph, Active: map[string]string{"web1": active}}
}

func TestReconcileConvergesAndReportsOnce(t *testing.T) {
	n := fake.New()
	rec := &recorder{}
	a := &Agent{Node: "node1", Backend: n, Source: staticSource{desiredFor(t, 8080, "node1")}, Reporter: rec, Log: logr.Discard()}
	ctx := context.Background()
	if _, err := a.Reconcile(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	want := []string{"BringOnline Mirror:E", "AddAddress 127.0.20.1/32", "CreateSite web1", "StartSite web1"}
	if diff := cmp.Diff(want, n.TakeCalls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if _, err := a.Reconcile(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if calls := n.TakeCalls(); len(calls) != 0 {
		t.Errorf("converged node made calls: %v", calls)
	}
	if len(rec.reports) != 1 {
		t.Fatalf("status written %d times, want once: %+v", len(rec.reports), rec.reports)
	}
	r := rec.reports[0]
	if !r.Active || r.Phase != store.PhaseConverged || !r.Healthy || r.Generations["IISSite/web1"] != 1 {
		t.Errorf("report: %+v", r)
	}
}

func TestFailedStepsRetryOrStall(t *testing.T) {
	tests := []struct {
		name    string
		fail    error
		phase   store.Phase
		stalled bool
	}{
		{"transient", errors.New("RPC server unavailable"), store.PhaseFailed, false},
		{"address held by an unknown machine", backend.ErrAddressInUse, store.PhaseStalled, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := fake.New()
			n.Fail["AddAddress"] = tt.fail
			rec := &recorder{}
			a := &Agent{Node: "node1", Backend: n, Source: staticSource{desiredFor(t, 8080, "node1")}, Reporter: rec, Log: logr.Discard()}
			_, err := a.Reconcile(context.Background(), "web1")
			if err == nil || IsStalled(err) != tt.stalled {
				t.Fatalf("err %v, stalled=%v, want stalled=%v", err, IsStalled(err), tt.stalled)
			}
			if diff := cmp.Diff([]string{"BringOnline Mirror:E", "AddAddress 127.0.20.1/32"}, n.TakeCalls()); diff != "" {
				t.Errorf("the failed step must stop the rest (-want +got):\n%s", diff)
			}
			if rec.reports[0].Phase != tt.phase {
				t.Errorf("phase %s, want %s", rec.reports[0].Phase, tt.phase)
			}
		})
	}
}

func TestLocalRecoveryThenUnhealthy(t *testing.T) {
	n := fake.New()
	rec := &recorder{}
	clk := clock.NewFake(time.Unix(1000, 0))
	a := &Agent{Node: "node1", Backend: n, Source: staticSource{desiredFor(t, 8080, "node1")}, Reporter: rec, Recorder: rec, Clock: clk, Log: logr.Discard()}
	ctx := context.Background()
	if _, err := a.Reconcile(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	n.TakeCalls()
	n.ProbeErr["127.0.20.1:8080:"] = errors.New("connection refused")
	var changed []string
	for i := 0; i < 4; i++ { // threshold 2, one local restart: fail, restart, fail, unhealthy
		clk.Advance(time.Second)
		c, err := a.CheckHealth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		changed = append(changed, c...)
	}
	if diff := cmp.Diff([]string{"StopSite web1", "StartSite web1"}, n.TakeCalls()); diff != "" {
		t.Errorf("local restart (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"web1"}, changed); diff != "" {
		t.Fatalf("groups turned unhealthy (-want +got):\n%s", diff)
	}
	var restarts []string
	for _, r := range rec.reasons() {
		if strings.HasPrefix(r, "LocalRestart") {
			restarts = append(restarts, r)
		}
	}
	if diff := cmp.Diff([]string{"LocalRestart IISSite/web1"}, restarts); diff != "" {
		t.Errorf("local restart events (-want +got):\n%s", diff)
	}
	if _, err := a.Reconcile(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	last := rec.reports[len(rec.reports)-1]
	if last.Healthy || last.Message == "" {
		t.Errorf("report after failed local recovery: %+v", last)
	}
}

func freePort(t *testing.T) int32 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// TestAgainstTheSimulator drives the real simulated IIS: the site serves its
// content over HTTP, drift is repaired, a switchover moves it.
func TestAgainstTheSimulator(t *testing.T) {
	w := sim.NewWorld(t.TempDir(), logr.Discard())
	n1, n2 := w.Node("node1"), w.Node("node2")
	t.Cleanup(func() { n1.PowerOff(); n2.PowerOff(); w.Close() })
	dir := w.VolumeDir(backend.VolumeID{Kind: backend.VolumeMirror, ID: "E"})
	if err := os.MkdirAll(filepath.Join(dir, "web1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web1", "index.html"), []byte("web1 content"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	d := desiredFor(t, port, "node1")
	src := staticSource{d}
	a1 := &Agent{Node: "node1", Backend: n1, Source: src, Log: logr.Discard()}
	a2 := &Agent{Node: "node2", Backend: n2, Source: src, Log: logr.Discard()}
	ctx := context.Background()
	reconcileAll := func() {
		t.Helper()
		// take-downs first, as the placement controller orders a move
		for _, a := range []*Agent{a1, a2} {
			if d.Active["web1"] != a.Node {
				if _, err := a.Reconcile(ctx, "web1"); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, a := range []*Agent{a1, a2} {
			if d.Active["web1"] == a.Node {
				if _, err := a.Reconcile(ctx, "web1"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	fetch := func() (string, string) {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("http://127.0.20.1:%d/", port))
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("X-Sitekeeper-Node")
	}
	reconcileAll()
	if body, node := fetch(); body != "web1 content" || node != "node1" {
		t.Fatalf("served %q by %s", body, node)
	}
	sites, _ := n2.ListSites(ctx)
	if len(sites) != 1 || sites[0].State != backend.SiteStopped || sites[0].AutoStart {
		t.Fatalf("standby instance on node2: %+v", sites)
	}
	// Drift: stopped behind sitekeeper's back, repaired.
	if err := n1.StopSite(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	reconcileAll()
	if body, _ := fetch(); body != "web1 content" {
		t.Fatalf("after drift repair: %q", body)
	}
	d.Active["web1"] = "node2"
	reconcileAll()
	if body, node := fetch(); body != "web1 content" || node != "node2" {
		t.Fatalf("after switchover served %q by %s", body, node)
	}
}

// TestRepeatedStepFailuresAreCounted: a step failing again and again with
// one error leaves an event at the 1st, 2nd, 4th and 8th failure, with the
// count, not one per retry; another error starts the count again.
func TestRepeatedStepFailuresAreCounted(t *testing.T) {
	n := fake.New()
	n.Fail["AddAddress"] = errors.New("bind: address already in use")
	var events []store.Event
	a := &Agent{Node: "node1", Backend: n, Source: staticSource{desiredFor(t, 8080, "node1")}, Reporter: &recorder{}, Log: logr.Discard(),
		Recorder: record.Func(func(e store.Event) {
			if e.Reason == v1alpha1.EventStepFailed {
				events = append(events, e)
			}
		})}
	for range 10 {
		if _, err := a.Reconcile(context.Background(), "web1"); err == nil {
			t.Fatal("the step did not fail")
		}
	}
	var counts []int
	for _, e := range events {
		counts = append(counts, e.Count)
	}
	if diff := cmp.Diff([]int{0, 2, 4, 8}, counts); diff != "" {
		t.Fatalf("events of 10 identical failures, by count (-want +got):\n%s", diff)
	}
	if !strings.Contains(events[3].Message, "failed 8 times since") {
		t.Errorf("message %q does not say how often", events[3].Message)
	}
	n.Fail["AddAddress"] = errors.New("another error")
	if _, err := a.Reconcile(context.Background(), "web1"); err == nil || len(events) != 5 || events[4].Count != 0 {
		t.Errorf("a new error: %d events, the last %+v", len(events), events[len(events)-1])
	}
}

// batchRecorder takes reports in batches, as the store member does.
type batchRecorder struct {
	recorder
	batches int
}

func (r *batchRecorder) ReportBatch(_ context.Context, reps []store.Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	r.reports = append(r.reports, reps...)
	return nil
}

// TestBatchRunsGroupsSideBySide: a batch of many groups is one look at the
// node, one publication and one write of reports; the groups' steps run
// side by side up to the backend's parallelism, and each group's own steps
// keep their order (volume, address, site).
func TestBatchRunsGroupsSideBySide(t *testing.T) {
	const groups, parallel = 40, 8
	objs := testmanifests.Objects(groups, testmanifests.Options{Net: 91, Port: 8080, Nodes: []string{"node1", "node2"}})
	res := validation.Validate(objs)
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	d := &plan.Desired{Graph: res.Graph, Active: map[string]string{}}
	var names []string
	for _, g := range res.Graph.Groups {
		d.Active[g.Name] = "node1"
		names = append(names, g.Name)
	}
	n := fake.New()
	n.Parallel = parallel
	n.SetDelay("AddAddress", 20*time.Millisecond)
	rec := &batchRecorder{}
	a := &Agent{Node: "node1", Backend: n, Source: staticSource{d}, Reporter: rec, Log: logr.Discard()}
	outs := a.ReconcileBatch(context.Background(), names)
	for g, o := range outs {
		if o.Err != nil {
			t.Fatalf("group %s: %v", g, o.Err)
		}
	}
	if got := n.MaxInFlight(); got < 2 || got > parallel {
		t.Errorf("%d slow steps ran at once, want between 2 and %d", got, parallel)
	}
	// Each group's calls in its own order.
	pos := map[string]int{}
	for i, c := range n.TakeCalls() {
		pos[c] = i
	}
	for i := range groups {
		seq := []string{fmt.Sprintf("BringOnline SharedDisk:DISK%d", i), fmt.Sprintf("AddAddress 127.91.0.%d/32", i+1), fmt.Sprintf("CreateSite site-%d", i), fmt.Sprintf("StartSite site-%d", i)}
		for j, c := range seq {
			if _, ok := pos[c]; !ok {
				t.Fatalf("group %d: call %q missing", i, c)
			}
			if j > 0 && pos[c] < pos[seq[j-1]] {
				t.Errorf("group %d: %q ran before %q", i, c, seq[j-1])
			}
		}
	}
	a.published()
	if len(rec.observed) != 1 {
		t.Errorf("the node's state was published %d times for one batch, want once", len(rec.observed))
	}
	if rec.batches != 1 || len(rec.reports) != groups {
		t.Errorf("reports written in %d batches (%d reports), want 1 batch of %d", rec.batches, len(rec.reports), groups)
	}
}

// Drift is a step on a converged group whose desired state and placement
// did not change: a first set-up and a move are not drift.
func TestDriftRepairIsCounted(t *testing.T) {
	n := fake.New()
	m := metrics.New()
	d := desiredFor(t, 8080, "node1")
	a := &Agent{Node: "node1", Backend: n, Source: staticSource{d}, Reporter: &recorder{}, Log: logr.Discard(), Metrics: m}
	ctx := context.Background()
	drift := func() float64 {
		got, err := m.Gather()
		if err != nil {
			t.Fatal(err)
		}
		return got["sitekeeper_drift_repaired_total{kind=StartSite,node=node1}"]
	}
	if _, err := a.Reconcile(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if got := drift(); got != 0 {
		t.Fatalf("first set-up counted as %v drift repair(s)", got)
	}
	if err := n.StopSite(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reconcile(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if got := drift(); got != 1 {
		t.Fatalf("a site stopped behind our back and started again: %v drift repair(s), want 1", got)
	}
	got, _ := m.Gather()
	if got["sitekeeper_steps_total{action=StartSite,node=node1,result=ok}"] != 2 || got["sitekeeper_reconcile_duration_seconds{node=node1}_count"] != 2 {
		t.Fatalf("steps and reconciles: %v", got)
	}
}
