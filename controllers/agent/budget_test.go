package agent

import (
	"context"

	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/clock"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/plan"
)

func TestBudget(t *testing.T) {
	ms := time.Millisecond
	held := plan.Observed{
		Sites:     []backend.Site{{State: backend.SiteStarted}, {State: backend.SiteStarted}, {State: backend.SiteStopped}},
		Addresses: []backend.Address{{CIDR: "127.0.0.1/32"}, {CIDR: "127.0.0.2/32"}},
		Volumes:   []backend.Volume{{Online: true}, {Online: false}},
	}
	tests := []struct {
		name    string
		obs     plan.Observed
		steps   map[plan.Action]time.Duration
		look    time.Duration
		overrun time.Duration
		want    time.Duration
	}{
		// floor 2×10 + look 3×10 (not measured)
		{"holds nothing", plan.Observed{}, nil, 0, 0, 50 * ms},
		// + 3/2 × (2 sites + 2 addresses + 1 volume) × 10 (not measured)
		{"estimates before any measurement", held, nil, 0, 0, 125 * ms},
		// + 3/2 × (2×100 + 2×10 + 1×10) with stops measured at 100
		{"measured steps replace the estimate", held, map[plan.Action]time.Duration{plan.StopSite: 100 * ms}, 0, 0, 395 * ms},
		{"a measured look replaces its estimate", held, nil, 200 * ms, 0, 295 * ms},
		{"a look faster than the backend's estimate counts as the estimate", held, nil, ms, 0, 125 * ms},
		{"an overrun raises it", held, nil, 0, time.Second, 1500 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(time.Unix(1000, 0))
			td := newTakedowns(&fake.Node{Cost: 10 * ms}, clk.Now)
			td.observe(tt.obs, nil, "node1")
			for a, d := range tt.steps {
				td.step(a, d)
			}
			td.step(plan.StartSite, time.Hour) // a bring-up step is no take-down
			if tt.look > 0 {
				td.observeTook(tt.look)
			}
			if tt.overrun > 0 {
				td.overrun(tt.overrun)
			}
			if got := td.budget(); got != tt.want {
				t.Errorf("budget %s, want %s", got, tt.want)
			}
		})
	}
}

// mutableSource is a desired state a test changes between reconciles.
type mutableSource struct {
	mu sync.Mutex
	d  *plan.Desired
}

func (s *mutableSource) Desired(context.Context) (*plan.Desired, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d, nil
}

func (s *mutableSource) set(d *plan.Desired) {
	s.mu.Lock()
	s.d = d
	s.mu.Unlock()
}

func activeOnNode1(t *testing.T, n *fake.Node) (*Agent, *mutableSource, *recorder) {
	t.Helper()
	src := &mutableSource{d: desiredFor(t, 8080, "node1")}
	rec := &recorder{}
	a := &Agent{Node: "node1", Backend: n, Source: src, Reporter: rec, Recorder: rec, Log: logr.Discard()}
	if _, err := a.Reconcile(context.Background(), "web1"); err != nil {
		t.Fatal(err)
	}
	return a, src, rec
}

func TestTakedownOverrunRaisesTheBudget(t *testing.T) {
	n := fake.New()
	n.Cost = 5 * time.Millisecond
	a, src, rec := activeOnNode1(t, n)
	before, _ := a.Safety()
	n.SetDelay("StopSite", 3*before)
	src.set(desiredFor(t, 8080, "node2"))
	if _, err := a.Reconcile(context.Background(), "web1"); err != nil {
		t.Fatal(err)
	}
	after, unsafe := a.Safety()
	if after < 3*before || unsafe != "" {
		t.Errorf("budget %s after a take-down of more than %s (was %s); unsafe %q", after, 3*before, before, unsafe)
	}
	var overrun string
	for _, e := range rec.events {
		if e.Reason == "TakedownOverrun" {
			overrun = e.Message
		}
	}
	if !strings.Contains(overrun, "slowest step node1: stop IISSite/web1") {
		t.Errorf("overrun event %q does not name the slow step", overrun)
	}
}

func TestHungTakedownMakesTheNodeUnsafeUntilOneCompletes(t *testing.T) {
	n := fake.New()
	n.Timeout = 50 * time.Millisecond
	a, src, rec := activeOnNode1(t, n)
	n.SetDelay("StopSite", time.Hour)
	src.set(desiredFor(t, 8080, "node2"))
	if _, err := a.Reconcile(context.Background(), "web1"); err == nil || !strings.Contains(err.Error(), "hung") {
		t.Fatalf("reconcile with a hung stop: %v", err)
	}
	if _, unsafe := a.Safety(); !strings.Contains(unsafe, "stop IISSite/web1") || !strings.HasSuffix(unsafe, "hung, cut off after 50ms") {
		t.Fatalf("unsafe %q", unsafe)
	}
	n.SetDelay("StopSite", 0)
	if _, err := a.Reconcile(context.Background(), "web1"); err != nil {
		t.Fatal(err)
	}
	if _, unsafe := a.Safety(); unsafe != "" {
		t.Errorf("still unsafe after the take-down completed: %q", unsafe)
	}
	if got := rec.reasons(); !contains(got, "Unsafe node/node1") || !contains(got, "Safe node/node1") {
		t.Errorf("events %v", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestBudgetForgetsOldSlowness: worst durations count for ten minutes; a
// node slow for a while gets its budget back, and follows its backend's
// current estimate at once.
func TestBudgetForgetsOldSlowness(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	n := &fake.Node{Cost: 10 * time.Millisecond}
	td := newTakedowns(n, clk.Now)
	td.observe(plan.Observed{Sites: []backend.Site{{State: backend.SiteStarted}}}, nil, "node1")
	fast := td.budget()
	td.step(plan.StopSite, time.Second)
	td.overrun(2 * time.Second)
	if got := td.budget(); got < 3*time.Second {
		t.Fatalf("budget %s right after an overrun of 2s", got)
	}
	clk.Advance(11 * time.Minute)
	if got := td.budget(); got != fast {
		t.Errorf("budget %s eleven minutes later, want %s again", got, fast)
	}
	n.Cost = 500 * time.Millisecond // the backend knows it is slow now
	if got := td.budget(); got < 5*500*time.Millisecond {
		t.Errorf("budget %s does not follow the backend's estimate of 500ms a call", got)
	}
}

// TestBudgetCountsOnlyProtectedAddresses: the node's own interface address
// is never taken down, so it costs the budget nothing.
func TestBudgetCountsOnlyProtectedAddresses(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	td := newTakedowns(&fake.Node{Cost: 10 * time.Millisecond}, clk.Now)
	d := desiredFor(t, 8080, "node1")
	own := plan.Observed{Addresses: []backend.Address{{CIDR: "10.0.0.11/24"}}}
	td.observe(own, d, "node1")
	base := td.budget()
	withVIP := plan.Observed{Addresses: []backend.Address{{CIDR: "10.0.0.11/24"}, {CIDR: "127.0.20.1/32"}}}
	td.observe(withVIP, d, "node1")
	if got, want := td.budget(), base+15*time.Millisecond; got != want {
		t.Errorf("budget %s with the protected address, want %s (%s for the node's own address alone)", got, want, base)
	}
}
