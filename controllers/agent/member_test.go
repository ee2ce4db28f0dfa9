package agent

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/clock"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/memstore"
)

// The in-memory store must be usable wherever an agent's store is.
var _ MemberStore = (*memstore.Store)(nil)

type memberEnv struct {
	t   *testing.T
	st  *memstore.Store
	n   *fake.Node
	clk *clock.Fake
	m   *Member
}

// placedOnNode1 is an in-memory store holding web1's group, placed on
// node1.
func placedOnNode1(t *testing.T) *memstore.Store {
	t.Helper()
	docs, errs := manifest.Decode("test.yaml", []byte(manifestFor(8080)))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	st := memstore.New()
	st.Seed(manifest.Objects(docs)...)
	if err := st.PutDecision(context.Background(), store.Decision{Group: "web1", Active: "node1"}, store.LeaderGuard{}); err != nil {
		t.Fatal(err)
	}
	return st
}

// startMember runs node1's member against an in-memory store where group
// web1 is placed on node1, on a fake clock.
func startMember(t *testing.T) *memberEnv {
	t.Helper()
	st := placedOnNode1(t)
	e := &memberEnv{t: t, st: st, n: fake.New(), clk: clock.NewFake(time.Unix(1000, 0))}
	e.m = &Member{Node: "node1", Store: st, Backend: e.n, LeaseTTL: 2 * time.Second, Resync: time.Hour, Log: logr.Discard(), Recorder: st, Clock: e.clk}
	runMember(t, e.m)
	e.waitCalls("StartSite web1")
	return e
}

// advance moves the fake clock by d in small steps, letting the member's
// goroutines (renewal, fence, loop) act and re-arm their timers between
// steps, as they would while real time passes.
func (e *memberEnv) advance(d time.Duration) {
	const step = 20 * time.Millisecond
	for moved := time.Duration(0); moved < d; moved += step {
		e.clk.Advance(step)
		time.Sleep(time.Millisecond)
	}
}

// waitCalls waits until the backend was called with want (in any order
// with other calls), consuming the calls seen.
func (e *memberEnv) waitCalls(want ...string) {
	e.t.Helper()
	var seen []string
	waitUntil(e.t, func() bool {
		seen = append(seen, e.n.TakeCalls()...)
		for _, w := range want {
			if !slices.Contains(seen, w) {
				return false
			}
		}
		return true
	})
}

// TestMemberFencesWhenItCannotRenew: a node whose renewals fail takes its
// groups out of service at three quarters of the lease, from what it had
// read (no store read), and rejoins as standby once it renews again.
func TestMemberFencesWhenItCannotRenew(t *testing.T) {
	e := startMember(t)
	e.st.SetFail(func(op, _ string) error {
		if op == "renew" {
			return errors.New("etcdserver: no leader")
		}
		return nil
	})
	// Renewals at 2/3 s and 4/3 s fail; the fence is due at 1.5 s.
	e.advance(1600 * time.Millisecond)
	e.waitCalls("StopSite web1", "RemoveAddress 127.0.20.1/32")
	var fenced bool
	waitUntil(t, func() bool {
		e.m.mu.Lock()
		defer e.m.mu.Unlock()
		fenced = e.m.fenced
		return fenced
	})
	// The store answers again: the next renewal lifts the fence, and the
	// node serves again only once a fresh read of the store says so.
	e.st.SetFail(nil)
	e.advance(time.Second)
	waitUntil(t, func() bool {
		e.m.mu.Lock()
		defer e.m.mu.Unlock()
		return !e.m.fenced
	})
	e.waitCalls("StartSite web1")
}

// TestMemberRegistersAgainAfterItsLeaseExpired: the lease is gone (the
// node was cut off longer than the TTL): it fences, registers under a new
// lease and says so in a Fenced event.
func TestMemberRegistersAgainAfterItsLeaseExpired(t *testing.T) {
	e := startMember(t)
	e.st.Expire("node1")
	e.advance(time.Second) // the next renewal finds no lease
	waitUntil(t, func() bool {
		nodes, _ := e.st.Nodes(context.Background())
		_, back := nodes["node1"]
		return back
	})
	waitUntil(t, func() bool {
		for _, ev := range e.st.Events() {
			if ev.Reason == "Fenced" && ev.Object == "node/node1" {
				return true
			}
		}
		return false
	})
}

// bootEnv is a node whose backend already serves web1 (a previous agent
// process brought it up) and a store where web1 is placed on node1.
func bootEnv(t *testing.T) (*memstore.Store, *fake.Node, *Member) {
	t.Helper()
	st := placedOnNode1(t)
	n := fake.New()
	before := &Agent{Node: "node1", Backend: n, Source: staticSource{desiredFor(t, 8080, "node1")}, Log: logr.Discard()}
	if _, err := before.Reconcile(context.Background(), "web1"); err != nil {
		t.Fatal(err)
	}
	n.TakeCalls()
	m := &Member{Node: "node1", Store: st, Backend: n, LeaseTTL: 2 * time.Second, Resync: time.Hour, Log: logr.Discard(), Recorder: st, Clock: clock.NewFake(time.Unix(1000, 0))}
	return st, n, m
}

func runMember(t *testing.T, m *Member) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func hasEvent(st *memstore.Store, reason string) bool {
	for _, e := range st.Events() {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

// TestBootAdoptsWhenItsLeaseIsAlive: restarted within its lease, the agent
// keeps serving what it holds: no step at all.
func TestBootAdoptsWhenItsLeaseIsAlive(t *testing.T) {
	st, n, m := bootEnv(t)
	if _, err := st.RegisterNode(context.Background(), store.NodeInfo{Name: "node1"}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	runMember(t, m)
	waitUntil(t, func() bool { return hasEvent(st, "BootAdopted") })
	time.Sleep(50 * time.Millisecond) // the loop's first pass over every group
	if calls := n.TakeCalls(); len(calls) != 0 {
		t.Errorf("an adopting node made calls: %v", calls)
	}
}

// TestBootTakesDownWithoutItsLease: the lease is gone (the restart took
// longer than the TTL): what the node held is taken down before it
// registers, then brought up again because the placement says so.
func TestBootTakesDownWithoutItsLease(t *testing.T) {
	st, n, m := bootEnv(t)
	before := callsBeforeRegister(t, st, n, m)
	for _, want := range []string{"StopSite web1", "RemoveAddress 127.0.20.1/32", "TakeOffline Mirror:E"} {
		if !slices.Contains(before, want) {
			t.Errorf("before registering: %v, want %s among them", before, want)
		}
	}
	waitUntil(t, func() bool { return hasEvent(st, "BootTakedown") })
}

// TestFenceStopsABringUpInFlight: a node whose bring-up is still running
// when it fences itself stops it there: the site never starts, and what it
// brought online is taken down.
func TestFenceStopsABringUpInFlight(t *testing.T) {
	st := placedOnNode1(t)
	e := &memberEnv{t: t, st: st, n: fake.New(), clk: clock.NewFake(time.Unix(1000, 0))}
	e.n.SetDelay("AddAddress", time.Hour) // the bring-up hangs on the address
	e.m = &Member{Node: "node1", Store: st, Backend: e.n, LeaseTTL: 2 * time.Second, Resync: time.Hour, Log: logr.Discard(), Recorder: st, Clock: e.clk}
	runMember(t, e.m)
	e.waitCalls("BringOnline Mirror:E")
	e.st.SetFail(func(op, _ string) error {
		if op == "renew" {
			return errors.New("etcdserver: no leader")
		}
		return nil
	})
	e.advance(1600 * time.Millisecond)
	e.waitCalls("TakeOffline Mirror:E")
	time.Sleep(20 * time.Millisecond)
	if calls := e.n.TakeCalls(); slices.Contains(calls, "StartSite web1") {
		t.Errorf("the site started after the fence: %v", calls)
	}
}

// slowDecisions answers Decisions with what the store held when asked,
// but only once released: a read that was on its way while the node
// froze, fenced and came back.
type slowDecisions struct {
	*memstore.Store
	once          sync.Once
	read, release chan struct{}
}

func (s *slowDecisions) Decisions(ctx context.Context) (map[string]store.Decision, error) {
	d, err := s.Store.Decisions(ctx)
	s.once.Do(func() {
		close(s.read)
		<-s.release
	})
	return d, err
}

// TestReadAcrossAFenceBringsNothingUp: a desired-state read that began
// before a fence and returns after the node came back is from before the
// leader moved the group: the node must not serve from it, and a plan made
// from it must not pass the fence gate.
func TestReadAcrossAFenceBringsNothingUp(t *testing.T) {
	st := placedOnNode1(t)
	slow := &slowDecisions{Store: st, read: make(chan struct{}), release: make(chan struct{})}
	m := &Member{Node: "node1", Store: slow, Backend: fake.New(), LeaseTTL: 2 * time.Second, Log: logr.Discard(), Clock: clock.NewFake(time.Unix(1000, 0))}
	type result struct {
		d   *plan.Desired
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := m.Desired(context.Background())
		done <- result{d, err}
	}()
	<-slow.read // the read saw web1 on node1
	m.setFenced(true)
	cur, err := st.Decisions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutDecision(context.Background(), store.Decision{Group: "web1", Active: "node2", Revision: cur["web1"].Revision}, store.LeaderGuard{}); err != nil {
		t.Fatal(err)
	}
	m.setFenced(false)
	close(slow.release)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := r.d.Active["web1"]; got == "node1" {
		t.Fatalf("the read from before the fence put web1 back on node1")
	}
	if _, epoch, fenced := m.fence(); !fenced && epoch == r.d.Epoch {
		t.Fatalf("a plan from the read before the fence (epoch %d) would pass the gate at epoch %d", r.d.Epoch, epoch)
	}
	// The next read is fresh: web1 is node2's.
	d, err := m.Desired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Active["web1"]; got != "node2" {
		t.Fatalf("after the fence a fresh read says web1 is on %q, want node2", got)
	}
}

// protectingNode is a backend that sees only the volumes it was told to
// protect, as the Windows backend does.
type protectingNode struct {
	*fake.Node
	mu        sync.Mutex
	protected map[backend.VolumeID]bool
}

func (p *protectingNode) Protect(vols []backend.Volume) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.protected = map[backend.VolumeID]bool{}
	for _, v := range vols {
		p.protected[v.ID] = true
	}
}

func (p *protectingNode) ListVolumes(ctx context.Context) ([]backend.Volume, error) {
	all, err := p.Node.ListVolumes(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []backend.Volume
	for _, v := range all {
		if p.protected[v.ID] {
			out = append(out, v)
		}
	}
	return out, err
}

// TestBootTakesProtectedVolumesOfflineOnABackendThatMustBeTold: a node
// that crashed while active comes back with its volume online (Windows
// brings a shared disk online at boot); the agent, on a backend that sees
// only the volumes it is told of, takes it offline before it registers.
func TestBootTakesProtectedVolumesOfflineOnABackendThatMustBeTold(t *testing.T) {
	st, n, m := bootEnv(t)
	m.Backend = &protectingNode{Node: n}
	if before := callsBeforeRegister(t, st, n, m); !slices.Contains(before, "TakeOffline Mirror:E") {
		t.Errorf("before registering: %v, want the volume taken offline", before)
	}
}

// callsBeforeRegister runs m and returns the backend calls it made before
// it registered the node.
func callsBeforeRegister(t *testing.T, st *memstore.Store, n *fake.Node, m *Member) []string {
	t.Helper()
	registered := make(chan []string, 1)
	st.SetFail(func(op, _ string) error {
		if op == "register" {
			select {
			case registered <- n.TakeCalls():
			default:
			}
		}
		return nil
	})
	runMember(t, m)
	select {
	case before := <-registered:
		return before
	case <-time.After(5 * time.Second):
		t.Fatal("never registered")
		return nil
	}
}
