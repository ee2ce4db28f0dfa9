package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/clock"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/version"
)

// DesiredStore is what the desired state is read from.
type DesiredStore interface {
	ListSpecs(ctx context.Context) (store.Snapshot, error)
	Decisions(ctx context.Context) (map[string]store.Decision, error)
	Suspensions(ctx context.Context) (store.Suspensions, error)
}

// MemberStore is what a node's agent reads and writes in the cluster store.
type MemberStore interface {
	DesiredStore
	RegisterNode(ctx context.Context, info store.NodeInfo, ttl time.Duration) (store.LeaseID, error)
	UpdateNode(ctx context.Context, info store.NodeInfo, id store.LeaseID) error
	RenewLease(ctx context.Context, id store.LeaseID) error
	NodeLease(ctx context.Context, node string) (store.LeaseID, bool, error)
	RevokeLease(ctx context.Context, id store.LeaseID) error
	Changes(ctx context.Context, families ...store.Family) <-chan struct{}
	PutReport(ctx context.Context, r store.Report) error
	PutReports(ctx context.Context, reps []store.Report) error
	PutObserved(ctx context.Context, o plan.Observed) error
	AckDeleted(ctx context.Context, node string, refs ...v1alpha1.Ref) error
}

// Member runs one node's agent against the cluster store: it holds the
// node's lease, reads the desired state, reports status and fences itself
// when it cannot renew its lease.
type Member struct {
	Node     string
	Store    MemberStore
	Backend  backend.Node
	LeaseTTL time.Duration
	Resync   time.Duration
	Log      logr.Logger
	// Recorder hears the agent's events; the caller makes it asynchronous
	// (record.Async), so that no event holds up a take-down.
	Recorder record.Recorder
	// Clock times renewals, the fence deadline and the agent's loop; the
	// real clock's readings are monotonic.
	Clock clock.Clock
	// Metrics counts the agent's steps, reconciles, probes and take-over
	// times; nil counts nothing.
	Metrics *metrics.Set

	// crashed makes a stop look like a power loss: the lease is left to
	// expire instead of being revoked.
	crashed atomic.Bool

	mu         sync.Mutex
	lastRenew  time.Time // monotonic reading of when the last successful renewal was sent
	started    time.Time
	published  store.NodeInfo     // the record last written
	loadCancel context.CancelFunc // cancels the desired-state read in flight
	epoch      uint64             // bumped at each fence and return
	runCtx     context.Context
	fenceCtx   context.Context // cancelled when the node fences itself
	fenceStop  context.CancelFunc
	fenced     bool
	suspect    bool // fenced since the cache was read: never bring up from it
	agent      *Agent
	dirty      bool
	dirtyGen   uint64 // bumped by every change, so a reload racing one keeps it dirty
	cache      *plan.Desired
	reloadSet  bool      // a reload is scheduled for when the throttle ends
	reloads    float64   // reads the throttle still allows at once (a token bucket)
	reloadsAt  time.Time // when reloads was last refilled
	kick       chan struct{}
	rescan     chan struct{}
	graphs     graph.Memo // the desired state's graph, built again only when an object changed
}

// Reads of the whole desired state are throttled: a burst of reloadBurst
// at once (a failover is two or three decisions in a few milliseconds,
// acted on at once), then one per minReload. While the leader places a
// thousand groups, a change arrives for each; a read for each was a
// thousand reads of everything. A throttled change is read at the end of
// the window, so none is missed: it is acted on at most minReload later.
const (
	minReload   = 100 * time.Millisecond
	reloadBurst = 4
)

// Run holds the lease and reconciles until ctx ends.
func (m *Member) Run(ctx context.Context) error {
	if m.LeaseTTL <= 0 {
		m.LeaseTTL = 2 * time.Second
	}
	m.kick = make(chan struct{}, 1)
	m.dirty = true
	m.Clock = clock.Or(m.Clock)
	m.mu.Lock()
	m.runCtx, m.started = ctx, time.Now().UTC()
	m.fenceCtx, m.fenceStop = context.WithCancel(ctx)
	m.mu.Unlock()
	a := &Agent{Node: m.Node, Backend: m.Backend, Source: m, Reporter: m, Log: m.Log, Recorder: m.Recorder, Clock: m.Clock, Fence: m.fence, Metrics: m.Metrics}
	a.mu.Lock()
	a.init()
	a.mu.Unlock()
	m.mu.Lock()
	m.agent = a
	m.mu.Unlock()
	lease, err := m.boot(ctx, a)
	if err != nil {
		return err
	}
	// Watch before the first read, so that nothing between them is missed.
	changes := m.Store.Changes(ctx, store.AgentInputs...)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.keepAlive(ctx, lease) }()
	go func() { defer wg.Done(); m.watch(ctx, changes) }()
	a.Run(ctx, m.kick, Options{Resync: m.Resync, Rescan: m.rescanCh()})
	wg.Wait()
	return nil
}

// boot makes a starting agent safe before it serves anything: when its
// previous lease is still alive (a restart within the TTL: the placement
// cannot have moved anything off it), it adopts that lease and what it
// holds, without a blip; otherwise it takes down every protected site,
// address and volume it finds before it registers, so that it never serves
// from state it had before its restart.
func (m *Member) boot(ctx context.Context, a *Agent) (store.LeaseID, error) {
	if id, ok, err := m.Store.NodeLease(ctx, m.Node); err == nil && ok {
		sent := m.Clock.Now()
		rctx, cancel := context.WithTimeout(ctx, m.renewTimeout())
		err := m.Store.RenewLease(rctx, id)
		cancel()
		if err == nil {
			m.mu.Lock()
			m.lastRenew = sent
			m.mu.Unlock()
			m.publish(ctx, id)
			m.Log.Info("Previous lease still alive: adopting what the node holds", "node", m.Node)
			record.Eventf(m.Recorder, store.Normal, v1alpha1.EventBootAdopted, "node/"+m.Node, m.Node,
				"%s restarted within its lease: it keeps what it holds and serves on", m.Node)
			return id, nil
		}
	}
	d, err := LoadDesired(ctx, m.Store, m.Node)
	if err != nil {
		return 0, fmt.Errorf("boot of %s: read the desired state: %w", m.Node, err)
	}
	// A backend that sees only the volumes it is told of (Windows) must
	// see every protected one now: after a crash Windows brings a shared
	// disk back online at boot, and it is taken offline here, before the
	// node joins.
	if vp, ok := m.Backend.(backend.VolumeProtector); ok {
		vols, _ := a.placedHere(d)
		vp.Protect(vols)
	}
	obs, err := plan.Observe(ctx, m.Node, m.Backend)
	if err != nil {
		return 0, fmt.Errorf("boot of %s: observe the node: %w", m.Node, err)
	}
	var down []plan.Step
	for _, s := range plan.Compute(withoutNode(d, m.Node), obs) {
		if s.Action.TakesDown() {
			down = append(down, s)
		}
	}
	if len(down) > 0 {
		var mu sync.Mutex
		var done []string
		// Group by group, side by side: with hundreds of groups, one step
		// after the other kept the node unregistered for a minute (found
		// by the network-namespace fault run with 200 groups).
		err := plan.ExecuteGroups(ctx, m.Backend, down, backend.ParallelismOf(m.Backend), func(s plan.Step, err error) {
			if err == nil {
				mu.Lock()
				done = append(done, string(s.Action)+" "+s.Target)
				mu.Unlock()
			}
		})
		m.Log.Info("Took down what the node held before its restart", "node", m.Node, "steps", len(done))
		shown := done
		more := ""
		if len(shown) > 10 {
			shown, more = shown[:10], fmt.Sprintf(" and %d more", len(done)-10)
		}
		record.Eventf(m.Recorder, store.Warning, v1alpha1.EventBootTakedown, "node/"+m.Node, m.Node,
			"%s restarted without its previous lease: took down what it held before registering (%s%s)", m.Node, strings.Join(shown, ", "), more)
		if err != nil {
			return 0, fmt.Errorf("boot of %s: take down what it held: %w", m.Node, err)
		}
	}
	return m.register(ctx)
}

func (m *Member) register(ctx context.Context) (store.LeaseID, error) {
	sent := m.Clock.Now()
	info := m.info()
	id, err := m.Store.RegisterNode(ctx, info, m.LeaseTTL)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	m.lastRenew, m.published = sent, info
	m.mu.Unlock()
	return id, nil
}

// info is the node record to publish now: the take-down budget and
// whether the node is safe to place groups on.
func (m *Member) info() store.NodeInfo {
	m.mu.Lock()
	a, started := m.agent, m.started
	m.mu.Unlock()
	info := store.NodeInfo{Name: m.Node, Started: started, Version: version.Version}
	if a != nil {
		b, unsafe := a.Safety()
		info.TakedownBudget, info.Unsafe = store.Duration{Duration: b}, unsafe
		info.BringUp = store.Duration{Duration: a.timings.bringUp()}
	}
	return info
}

// publish writes the node record again when the budget or safety changed.
func (m *Member) publish(ctx context.Context, lease store.LeaseID) {
	info := m.info()
	m.mu.Lock()
	same := info == m.published
	m.mu.Unlock()
	if same {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, m.renewTimeout())
	defer cancel()
	if err := m.Store.UpdateNode(pctx, info, lease); err != nil {
		m.Log.V(1).Info("Publish node record", "node", m.Node, "error", err.Error())
		return
	}
	m.mu.Lock()
	m.published = info
	m.mu.Unlock()
	m.Log.V(1).Info("Published node record", "node", m.Node, "takedownBudget", info.TakedownBudget.String(), "unsafe", info.Unsafe)
}

// keepAlive renews the lease every third of its TTL. A renewal that finds
// the lease gone re-registers the node (it rejoins as standby: the leader
// moved its groups away while it was gone).
func (m *Member) keepAlive(ctx context.Context, lease store.LeaseID) {
	renew := m.Clock.NewTimer(m.LeaseTTL / 3)
	defer renew.Stop()
	// The fence deadline runs on its own timer, re-armed at each renewal:
	// a renewal blocked on a store without quorum must not delay it.
	fenceAfter := m.LeaseTTL * 3 / 4
	fence := m.Clock.NewTimer(fenceAfter + time.Millisecond)
	defer fence.Stop()
	holdFor := m.LeaseTTL - 100*time.Millisecond
	hold := m.Clock.NewTimer(time.Hour)
	hold.Stop()
	defer hold.Stop()
	// When the renewal after sent is late, holds are extended once to just
	// short of when the lease could expire (whole seconds): a renewal held
	// up by an etcd election does not let them lapse before the fence, and
	// a frozen agent's still lapse before anyone may take them over.
	armHold := func(sent time.Time) {
		// 400 ms early: a timer that fires late on a loaded machine must
		// still find a whole second left.
		if d := sent.Add(holdFor - time.Second - 400*time.Millisecond).Sub(m.Clock.Now()); d > 0 {
			hold.Reset(d)
		}
	}
	m.mu.Lock()
	armHold(m.lastRenew) // the registration counts as a renewal
	m.mu.Unlock()
	fenceDone := make(chan struct{})
	defer func() { <-fenceDone }()
	go func() {
		defer close(fenceDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-fence.C():
			}
			m.checkFence()
			m.mu.Lock()
			late := m.fenced
			m.mu.Unlock()
			if late {
				fence.Reset(50 * time.Millisecond) // keep checking until renewed
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			if m.crashed.Load() {
				return
			}
			// A clean stop hands the groups over at once.
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := m.Store.RevokeLease(rctx, lease); err != nil {
				m.Log.Info("Could not revoke the lease on stop; the groups move once it expires", "node", m.Node, "error", err.Error())
			}
			cancel()
			return
		case <-hold.C():
			m.mu.Lock()
			until, fenced := m.lastRenew.Add(holdFor), m.fenced
			m.mu.Unlock()
			if lf, ok := m.Backend.(backend.LeaseFollower); ok && !fenced {
				lf.HoldUntil(until)
			}
		case <-renew.C():
			renew.Reset(m.LeaseTTL / 3)
			// The fence deadline counts from when the renewal was sent:
			// etcd may have extended the lease any time after that. The
			// call's own deadline is well inside the TTL/4 margin.
			sent := m.Clock.Now()
			rctx, cancel := context.WithTimeout(ctx, m.renewTimeout())
			err := m.Store.RenewLease(rctx, lease)
			cancel()
			switch {
			case err == nil:
				m.mu.Lock()
				m.lastRenew = sent
				m.mu.Unlock()
				if lf, ok := m.Backend.(backend.LeaseFollower); ok {
					lf.LeaseRenewed()
				}
				m.checkFence()
				fence.Reset(fenceAfter + time.Millisecond)
				m.publish(ctx, lease)
				armHold(sent)
			case errors.Is(err, store.ErrLeaseExpired):
				m.Log.Info("Lease expired; fenced, registering again", "node", m.Node)
				m.setFenced(true)
				if id, err := m.register(ctx); err == nil {
					lease = id
					m.markDirty()
					m.checkFence()
					fence.Reset(fenceAfter + time.Millisecond)
				}
			case ctx.Err() == nil:
				// Try again soon, not a whole interval later: a renewal
				// that failed during an etcd election succeeds as soon as a
				// leader is elected.
				renew.Reset(renewRetry)
				m.Log.V(1).Info("Lease renewal failed", "node", m.Node, "error", err.Error())
			}
		}
	}
}

// checkFence fences the node once three quarters of the TTL passed without a
// renewal, so that its groups are out of service before the lease expires.
// The deadline is checked on the monotonic clock.
func (m *Member) checkFence() {
	m.mu.Lock()
	late := m.Clock.Now().Sub(m.lastRenew) > m.LeaseTTL*3/4
	m.mu.Unlock()
	m.setFenced(late)
}

func (m *Member) setFenced(f bool) {
	m.mu.Lock()
	changed := m.fenced != f
	m.fenced = f
	if changed {
		m.epoch++ // every group is looked at again, moving ones included
		if f && m.fenceStop != nil {
			m.fenceStop() // a bring-up in flight stops here
		} else if !f && m.fenceCtx != nil {
			m.fenceCtx, m.fenceStop = context.WithCancel(m.runCtx)
		}
	}
	if f {
		m.suspect = true
		if m.loadCancel != nil {
			m.loadCancel()
		}
	}
	m.mu.Unlock()
	if changed {
		if f {
			m.Log.Info("Cannot renew lease: taking active groups out of service (self-fencing)", "node", m.Node)
		} else {
			m.Log.Info("Lease renewed: rejoining as standby", "node", m.Node)
		}
		m.mu.Lock()
		last, a := m.lastRenew, m.agent
		m.mu.Unlock()
		if a != nil {
			a.timings.fenced(f, last, m.Clock.Now())
		}
		if !f {
			// Back: a fresh read decides what serves here. Without it the
			// node would wait for the next change or resync, with its
			// groups down if the leader never moved them.
			m.markDirty()
		}
		m.signal()
	}
}

// Holding says whether the node holds its lease now (a renewal, a round
// trip to the store, within three quarters of the TTL), and why not.
func (m *Member) Holding() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.lastRenew.IsZero():
		return false, "not registered with the store yet"
	case m.fenced:
		return false, fmt.Sprintf("fenced: no lease renewal for %s (the store is unreachable or has no quorum)", m.Clock.Now().Sub(m.lastRenew).Round(time.Millisecond))
	}
	return true, ""
}

// Rescan makes the agent look at every group now, as its resync does.
func (m *Member) Rescan() {
	select {
	case m.rescanCh() <- struct{}{}:
	default:
	}
}

// rescanCh is made on first use: Rescan may come before Run.
func (m *Member) rescanCh() chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rescan == nil {
		m.rescan = make(chan struct{}, 1)
	}
	return m.rescan
}

// Crash marks the next stop as a power loss (no lease revoke).
func (m *Member) Crash() { m.crashed.Store(true) }

func (m *Member) signal() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Member) markDirty() {
	m.mu.Lock()
	m.dirty = true
	m.dirtyGen++
	m.mu.Unlock()
	m.signal()
}

func (m *Member) watch(ctx context.Context, changes <-chan struct{}) {
	store.Follow(ctx, changes,
		func() <-chan struct{} { return m.Store.Changes(ctx, store.AgentInputs...) },
		func() <-chan time.Time { return m.Clock.After(200 * time.Millisecond) },
		m.markDirty)
}

// Desired implements Source: the store's desired state, cached until the
// store changes; while fenced, no group is active here.
func (m *Member) Desired(ctx context.Context) (*plan.Desired, error) {
	d, epoch, err := m.desired(ctx)
	if err != nil {
		return nil, err
	}
	c := *d
	c.Epoch = epoch
	return &c, nil
}

// desired is the desired state and the fence epoch it is good for.
func (m *Member) desired(ctx context.Context) (*plan.Desired, uint64, error) {
	m.mu.Lock()
	cache, dirty, fenced, suspect, gen, epoch := m.cache, m.dirty, m.fenced, m.suspect, m.dirtyGen, m.epoch
	m.mu.Unlock()
	if fenced && cache != nil {
		// No store read while fenced: the take-down must not wait on a
		// store that has no quorum.
		return withoutNode(cache, m.Node), epoch, nil
	}
	if dirty && cache != nil && !fenced && !suspect && m.throttled() {
		return cache, epoch, nil
	}
	if dirty || cache == nil {
		// A fence cancels the read: the take-down must not wait on a store
		// that has no quorum.
		lctx, cancel := context.WithTimeout(ctx, m.LeaseTTL)
		m.mu.Lock()
		m.loadCancel = cancel
		m.mu.Unlock()
		d, err := m.load(lctx)
		cancel()
		m.mu.Lock()
		m.loadCancel = nil
		fencedNow, epochNow := m.fenced, m.epoch
		m.mu.Unlock()
		if epochNow != epoch {
			// The node fenced (and maybe came back) while the read was
			// on its way: what it returned may be from before the fence,
			// when this node still served groups the leader has moved
			// since (a frozen agent, thawed, read the old placement
			// this way and put its address back). Bring nothing up from
			// it; the next pass reads again.
			if d == nil || err != nil {
				d = cache
			}
			if d == nil {
				return nil, epoch, fmt.Errorf("read desired state: the node fenced during the read")
			}
			return withoutNode(d, m.Node), epoch, nil
		}
		if fencedNow && cache != nil {
			return withoutNode(cache, m.Node), epoch, nil
		}
		if err != nil && cache == nil {
			return nil, epoch, err
		}
		if err == nil {
			cache, suspect = d, false
			m.mu.Lock()
			m.cache, m.suspect = d, false
			if m.dirtyGen == gen {
				m.dirty = false // no change arrived while reading
			}
			m.mu.Unlock()
		}
	}
	if fenced || suspect {
		// Fenced since the last good read: the placement may have moved
		// while the node was cut off, so nothing starts here until a
		// fresh read says so (it rejoins as standby).
		return withoutNode(cache, m.Node), epoch, nil
	}
	return cache, epoch, nil
}

// throttled reports whether the cache was read less than minReload ago;
// if so, it makes sure a reload is signalled when the window ends.
func (m *Member) throttled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.Clock.Now()
	if m.reloadsAt.IsZero() {
		m.reloads = reloadBurst
	} else {
		m.reloads = min(reloadBurst, m.reloads+float64(now.Sub(m.reloadsAt))/float64(minReload))
	}
	m.reloadsAt = now
	if m.reloads >= 1 {
		m.reloads--
		return false
	}
	wait := time.Duration((1 - m.reloads) * float64(minReload))
	if !m.reloadSet {
		m.reloadSet = true
		t := m.Clock.NewTimer(wait)
		go func() {
			<-t.C()
			m.mu.Lock()
			m.reloadSet = false
			m.mu.Unlock()
			m.signal()
		}()
	}
	return true
}

// withoutNode is d with no group active on node.
func withoutNode(d *plan.Desired, node string) *plan.Desired {
	c := *d
	c.Active = map[string]string{}
	for g, n := range d.Active {
		if !strings.EqualFold(n, node) {
			c.Active[g] = n
		}
	}
	return &c
}

func (m *Member) load(ctx context.Context) (*plan.Desired, error) {
	return loadDesired(ctx, m.Store, m.Node, &m.graphs)
}

// LoadDesired reads the desired state from the store as node sees it (a
// suspended node has every group suspended).
func LoadDesired(ctx context.Context, st DesiredStore, node string) (*plan.Desired, error) {
	return loadDesired(ctx, st, node, &graph.Memo{})
}

func loadDesired(ctx context.Context, st DesiredStore, node string, graphs *graph.Memo) (*plan.Desired, error) {
	snap, err := st.ListSpecs(ctx)
	if err != nil {
		return nil, err
	}
	decisions, err := st.Decisions(ctx)
	if err != nil {
		return nil, err
	}
	suspended, err := st.Suspensions(ctx)
	if err != nil {
		return nil, err
	}
	var active []v1alpha1.Object
	d := &plan.Desired{Active: map[string]string{}, Moving: map[string]string{}, Suspended: map[string]bool{}, Decided: map[string]plan.Decided{}}
	for _, o := range snap.Objects {
		if o.Meta().DeletionTimestamp != nil {
			d.Deleting = append(d.Deleting, plan.Deletion{Object: o, Group: DeletingGroup})
		} else {
			active = append(active, o)
		}
	}
	sort.SliceStable(d.Deleting, func(i, j int) bool {
		return v1alpha1.KindOrder(d.Deleting[i].Object.GetKind()) < v1alpha1.KindOrder(d.Deleting[j].Object.GetKind())
	})
	d.Graph = graphs.Of(active)
	nodeSuspended := suspended.Node(node)
	for _, g := range d.Graph.Groups {
		if dec, ok := decisions[g.Name]; ok && dec.Damaged == "" {
			d.Active[g.Name] = dec.Active
			d.Decided[g.Name] = plan.Decided{Reason: dec.Reason, Message: dec.Message, At: dec.Since}
			if dec.Target != "" {
				d.Moving[g.Name] = dec.Target
			}
		} else {
			// The leader has not placed this group yet (new, or renamed),
			// or its decision is damaged until the leader replaces it:
			// touch nothing until it has, rather than stop what may be
			// serving.
			d.Suspended[g.Name] = true
		}
		if nodeSuspended {
			d.Suspended[g.Name] = true
		}
		for _, mem := range g.Members {
			if suspended.Object(mem) {
				d.Suspended[g.Name] = true
			}
		}
	}
	return d, nil
}

// fence implements Agent.Fence.
func (m *Member) fence() (context.Context, uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fenceCtx, m.epoch, m.fenced
}

func (m *Member) isFenced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fenced
}

// write runs one store write on the reconcile path: not at all while the
// node is fenced (ErrFenced at once), and bounded otherwise.
func (m *Member) write(ctx context.Context, f func(context.Context) error) error {
	if m.isFenced() {
		return ErrFenced
	}
	ctx, cancel := context.WithTimeout(ctx, m.storeTimeout())
	defer cancel()
	return f(ctx)
}

// Report implements Reporter.
func (m *Member) Report(ctx context.Context, r store.Report) error {
	return m.write(ctx, func(ctx context.Context) error { return m.Store.PutReport(ctx, r) })
}

// ReportBatch implements BatchReporter.
func (m *Member) ReportBatch(ctx context.Context, reps []store.Report) error {
	return m.write(ctx, func(ctx context.Context) error { return m.Store.PutReports(ctx, reps) })
}

// PublishObserved implements Reporter.
func (m *Member) PublishObserved(ctx context.Context, o plan.Observed) error {
	return m.write(ctx, func(ctx context.Context) error { return m.Store.PutObserved(ctx, o) })
}

// AckDeleted implements Reporter.
func (m *Member) AckDeleted(ctx context.Context, refs []v1alpha1.Ref) error {
	return m.write(ctx, func(ctx context.Context) error { return m.Store.AckDeleted(ctx, m.Node, refs...) })
}

// renewRetry is the wait before another try after a failed renewal.
const renewRetry = 100 * time.Millisecond

// renewTimeout bounds one renewal: an eighth of the TTL, so that a renewal
// started before the fence deadline ends well before the lease could.
func (m *Member) renewTimeout() time.Duration { return m.LeaseTTL / 8 }

// storeTimeout bounds every store call on the reconcile path, so that a node
// cut off from quorum notices its fence (at 3/4 of the TTL) and acts on it
// well before its lease expires.
func (m *Member) storeTimeout() time.Duration { return m.LeaseTTL / 8 }
