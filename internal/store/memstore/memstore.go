// Package memstore is an in-memory store for tests of the controllers: the
// same records and the same compare-and-swap rules as store/etcdstore (a
// decision is written only at the revision it was read, and only by the
// current leader's term), without etcd. Leases do not expire by themselves:
// a test ends one with Expire, as a node that stopped renewing would.
package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Store is an in-memory cluster store. The zero value is not usable; call
// New.
type Store struct {
	mu        sync.Mutex
	rev       int64
	objects   map[v1alpha1.Ref]v1alpha1.Object
	status    map[v1alpha1.Ref]v1alpha1.Status
	nodes     map[string]store.NodeInfo
	known     map[string]store.NodeInfo
	leases    map[store.LeaseID]string // lease -> node
	nextLease store.LeaseID
	reports   map[string]store.Report // group/node
	decisions map[string]store.Decision
	damaged   map[string]store.DamagedKey // objects' keys
	suspended store.Suspensions
	drains    map[string]int
	acks      map[v1alpha1.Ref]map[string]bool
	observed  map[string]plan.Observed
	events    []store.Event
	watchers  []watcher
	leader    *term
	terms     int64

	// failFn, when set, is asked before each call that can fail; a
	// non-nil error fails it (a store that lost quorum, a refused write).
	failFn func(op string, key string) error
}

// SetFail sets (nil: clears) the function asked before each call that can
// fail; safe while controllers run.
func (s *Store) SetFail(f func(op string, key string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failFn = f
}

type watcher struct {
	ctx      context.Context
	families []store.Family
	ch       chan struct{}
}

// New returns an empty store.
func New() *Store {
	return &Store{objects: map[v1alpha1.Ref]v1alpha1.Object{}, status: map[v1alpha1.Ref]v1alpha1.Status{},
		nodes: map[string]store.NodeInfo{}, known: map[string]store.NodeInfo{}, leases: map[store.LeaseID]string{}, reports: map[string]store.Report{},
		decisions: map[string]store.Decision{}, suspended: store.Suspensions{}, acks: map[v1alpha1.Ref]map[string]bool{},
		observed: map[string]plan.Observed{}}
}

func (s *Store) fail(op, key string) error {
	s.mu.Lock()
	f := s.failFn
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(op, key)
}

// changed bumps the revision and signals the watchers of family f. Called
// with s.mu held.
func (s *Store) changed(f store.Family) {
	s.rev++
	live := s.watchers[:0]
	for _, w := range s.watchers {
		if w.ctx.Err() != nil {
			close(w.ch)
			continue
		}
		live = append(live, w)
		if len(w.families) == 0 || slices.Contains(w.families, f) {
			select {
			case w.ch <- struct{}{}:
			default:
			}
		}
	}
	s.watchers = live
}

// Seed stores objects as an apply would (generation 1 for new ones, the
// next generation when the spec changed), without validation.
func (s *Store) Seed(objs ...v1alpha1.Object) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range objs {
		c := v1alpha1.DeepCopy(o)
		ref := v1alpha1.RefOf(c)
		c.Meta().Generation = 1
		if old, ok := s.objects[ref]; ok {
			c.Meta().Generation = old.Meta().Generation
			if string(old.SpecJSON()) != string(c.SpecJSON()) {
				c.Meta().Generation++
			}
		}
		*c.StatusRef() = v1alpha1.Status{}
		s.changed(store.FamilyObjects)
		c.Meta().ResourceVersion = strconv.FormatInt(s.rev, 10)
		s.objects[ref] = c
	}
}

// List returns every object with its status.
func (s *Store) List(context.Context) (store.Snapshot, error) { return s.list(true), nil }

// ListSpecs returns every object without status.
func (s *Store) ListSpecs(context.Context) (store.Snapshot, error) { return s.list(false), nil }

// Statuses returns every object's status.
func (s *Store) Statuses(context.Context) (map[v1alpha1.Ref]v1alpha1.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[v1alpha1.Ref]v1alpha1.Status, len(s.status))
	for r, st := range s.status {
		out[r] = st
	}
	return out, nil
}

func (s *Store) list(withStatus bool) store.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := store.Snapshot{Revision: s.rev}
	refs := slices.SortedFunc(maps.Keys(s.objects), func(a, b v1alpha1.Ref) int {
		if a.String() < b.String() {
			return -1
		}
		if a.String() > b.String() {
			return 1
		}
		return 0
	})
	for _, r := range refs {
		c := v1alpha1.DeepCopy(s.objects[r])
		if withStatus {
			*c.StatusRef() = s.status[r]
		}
		snap.Objects = append(snap.Objects, c)
	}
	for _, k := range slices.Sorted(maps.Keys(s.damaged)) {
		snap.Damaged = append(snap.Damaged, s.damaged[k])
	}
	return snap
}

// Object returns a stored object with its status, or nil.
func (s *Store) Object(ref v1alpha1.Ref) v1alpha1.Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[ref]
	if !ok {
		return nil
	}
	c := v1alpha1.DeepCopy(o)
	*c.StatusRef() = s.status[ref]
	return c
}

// MarkDeleted starts an object's two-phase delete.
func (s *Store) MarkDeleted(ref v1alpha1.Ref, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.objects[ref]; ok {
		t := now.UTC().Truncate(time.Second)
		o.Meta().DeletionTimestamp = &t
		s.changed(store.FamilyObjects)
	}
}

// Remove deletes an object for good, with its status and acknowledgements.
func (s *Store) Remove(_ context.Context, ref v1alpha1.Ref) error {
	if err := s.fail("remove", ref.String()); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, ref)
	delete(s.status, ref)
	delete(s.acks, ref)
	s.changed(store.FamilyObjects)
	return nil
}

// PutStatus writes an object's status.
func (s *Store) PutStatus(_ context.Context, ref v1alpha1.Ref, st v1alpha1.Status) error {
	if err := s.fail("status", ref.String()); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(st)
	var c v1alpha1.Status
	_ = json.Unmarshal(b, &c)
	s.status[ref] = c
	s.changed(store.FamilyStatus)
	return nil
}

// RegisterNode registers a node under a new lease.
func (s *Store) RegisterNode(_ context.Context, info store.NodeInfo, _ time.Duration) (store.LeaseID, error) {
	if err := s.fail("register", info.Name); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextLease++
	for id, n := range s.leases {
		if n == info.Name {
			delete(s.leases, id)
		}
	}
	s.leases[s.nextLease] = info.Name
	s.nodes[info.Name], s.known[info.Name] = info, info
	s.changed(store.FamilyNodes)
	return s.nextLease, nil
}

// UpdateNode publishes a node's record again on its lease.
func (s *Store) UpdateNode(_ context.Context, info store.NodeInfo, id store.LeaseID) error {
	if err := s.fail("node", info.Name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[id] != info.Name {
		return store.ErrLeaseExpired
	}
	s.nodes[info.Name], s.known[info.Name] = info, info
	s.changed(store.FamilyNodes)
	return nil
}

// KnownNodes returns every node's last record, live or not.
func (s *Store) KnownNodes(context.Context) (map[string]store.NodeInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.known), nil
}

// NodeLease returns the live lease of a registered node.
func (s *Store) NodeLease(_ context.Context, node string) (store.LeaseID, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, n := range s.leases {
		if n == node {
			return id, true, nil
		}
	}
	return 0, false, nil
}

// RenewLease renews a lease; store.ErrLeaseExpired once Expire ended it.
func (s *Store) RenewLease(_ context.Context, id store.LeaseID) error {
	if err := s.fail("renew", strconv.FormatInt(int64(id), 10)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.leases[id]; !ok {
		return store.ErrLeaseExpired
	}
	return nil
}

// RevokeLease ends a lease and the node record attached to it.
func (s *Store) RevokeLease(_ context.Context, id store.LeaseID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.leases[id]; ok {
		delete(s.leases, id)
		delete(s.nodes, n)
		s.changed(store.FamilyNodes)
	}
	return nil
}

// Expire ends a node's lease, as etcd does when it is not renewed in time.
func (s *Store) Expire(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, n := range s.leases {
		if n == node {
			delete(s.leases, id)
		}
	}
	if _, ok := s.nodes[node]; ok {
		delete(s.nodes, node)
		s.changed(store.FamilyNodes)
	}
}

// Nodes returns the live nodes.
func (s *Store) Nodes(context.Context) (map[string]store.NodeInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.nodes), nil
}

// PutReport stores a node's report on a group.
func (s *Store) PutReport(_ context.Context, r store.Report) error {
	if err := s.fail("report", r.Group+"/"+r.Node); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Generations = maps.Clone(r.Generations)
	s.reports[r.Group+"/"+r.Node] = r
	s.changed(store.FamilyReports)
	return nil
}

// PutReports stores reports as one write: none when the fault hook fails
// any.
func (s *Store) PutReports(_ context.Context, reps []store.Report) error {
	for _, r := range reps {
		if err := s.fail("report", r.Group+"/"+r.Node); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range reps {
		r.Generations = maps.Clone(r.Generations)
		s.reports[r.Group+"/"+r.Node] = r
	}
	s.changed(store.FamilyReports)
	return nil
}

// Reports returns every report, sorted by group and node.
func (s *Store) Reports(context.Context) ([]store.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Report
	for _, k := range slices.Sorted(maps.Keys(s.reports)) {
		out = append(out, s.reports[k])
	}
	return out, nil
}

// GroupReports returns one group's reports by node.
func (s *Store) GroupReports(_ context.Context, group string) (map[string]store.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]store.Report{}
	for _, r := range s.reports {
		if r.Group == group {
			out[r.Node] = r
		}
	}
	return out, nil
}

// DeleteReports forgets a group's reports.
func (s *Store) DeleteReports(_ context.Context, group string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.reports {
		if r.Group == group {
			delete(s.reports, k)
		}
	}
	s.changed(store.FamilyReports)
	return nil
}

// Decisions returns every decision with its revision.
func (s *Store) Decisions(context.Context) (map[string]store.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]store.Decision{}
	for g, d := range s.decisions {
		out[g] = copyDecision(d)
	}
	return out, nil
}

func copyDecision(d store.Decision) store.Decision {
	b, _ := json.Marshal(d)
	var c store.Decision
	_ = json.Unmarshal(b, &c)
	c.Revision, c.Damaged = d.Revision, d.Damaged
	return c
}

// DamageDecision replaces group's decision by a value that does not decode,
// as the etcd store reads one (why is the decode error).
func (s *Store) DamageDecision(group, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changed(store.FamilyDecisions)
	s.decisions[group] = store.Decision{Group: group, Damaged: why, Revision: s.rev}
}

// DamageObject replaces ref's stored value by one that does not decode: it
// is listed as damaged, no longer as an object.
func (s *Store) DamageObject(ref v1alpha1.Ref, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changed(store.FamilyObjects)
	delete(s.objects, ref)
	if s.damaged == nil {
		s.damaged = map[string]store.DamagedKey{}
	}
	key := "objects/" + ref.String()
	s.damaged[key] = store.DamagedKey{Key: key, Error: why, Revision: s.rev}
}

// PutDecision writes a decision at the revision it was read (0: must not
// exist), and only during the guard's term when one is given.
func (s *Store) PutDecision(_ context.Context, d store.Decision, guard store.LeaderGuard) error {
	if err := s.fail("decision", d.Group); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.decisions[d.Group]; cur.Revision != d.Revision {
		return fmt.Errorf("placement of %s: %w", d.Group, store.ErrConflict)
	}
	if guard.Key != "" && (s.leader == nil || s.leader.guard != guard) {
		return fmt.Errorf("placement of %s: %w", d.Group, store.ErrConflict)
	}
	s.changed(store.FamilyDecisions)
	c := copyDecision(d)
	c.Revision = s.rev
	s.decisions[d.Group] = c
	return nil
}

// DeleteDecision removes a group's decision.
func (s *Store) DeleteDecision(_ context.Context, group string) error {
	if err := s.fail("decision-delete", group); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.decisions, group)
	s.changed(store.FamilyDecisions)
	return nil
}

// Suspensions returns the maintenance flags.
func (s *Store) Suspensions(context.Context) (store.Suspensions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.suspended), nil
}

// Drains are the nodes being drained, with their parallelism.
func (s *Store) Drains(context.Context) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.drains), nil
}

// SetDrain starts (parallel > 0) or ends a node's drain.
func (s *Store) SetDrain(_ context.Context, node string, parallel int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drains == nil {
		s.drains = map[string]int{}
	}
	if parallel > 0 {
		s.drains[node] = parallel
	} else {
		delete(s.drains, node)
	}
	s.changed(store.FamilyDrains)
	return nil
}

// SetSuspended sets or lifts a maintenance flag.
func (s *Store) SetSuspended(_ context.Context, kind, name string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.suspended[kind+"/"+name] = true
	} else {
		delete(s.suspended, kind+"/"+name)
	}
	s.changed(store.FamilySuspended)
	return nil
}

// AckDeleted records that node took refs out of service.
func (s *Store) AckDeleted(_ context.Context, node string, refs ...v1alpha1.Ref) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range refs {
		if s.acks[r] == nil {
			s.acks[r] = map[string]bool{}
		}
		s.acks[r][node] = true
	}
	s.changed(store.FamilyDeleted)
	return nil
}

// DeletionAcks returns the nodes that took ref out of service.
func (s *Store) DeletionAcks(_ context.Context, ref v1alpha1.Ref) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.acks[ref]), nil
}

// PutObserved stores what a node has.
func (s *Store) PutObserved(_ context.Context, o plan.Observed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observed[o.Node] = o
	return nil
}

// Observed returns what each node published.
func (s *Store) Observed(context.Context) (map[string]plan.Observed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.observed), nil
}

// Event records an event.
func (s *Store) Event(_ context.Context, e store.Event) { s.Record(e) }

// EventBatch records events.
func (s *Store) EventBatch(_ context.Context, events []store.Event) {
	for _, e := range events {
		s.Record(e)
	}
}

// Record records an event (the store is also a record.Recorder).
func (s *Store) Record(e store.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

// Events returns the recorded events, oldest first.
func (s *Store) Events() []store.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Changes signals (coalesced) every change of the given families (all when
// none are given) until ctx ends.
func (s *Store) Changes(ctx context.Context, families ...store.Family) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{}, 1)
	s.watchers = append(s.watchers, watcher{ctx: ctx, families: families, ch: ch})
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, w := range s.watchers {
			if w.ch == ch {
				s.watchers = append(s.watchers[:i], s.watchers[i+1:]...)
				close(ch)
				break
			}
		}
	}()
	return ch
}

// term is one leader's term.
type term struct {
	s     *Store
	guard store.LeaderGuard
	done  chan struct{}
	once  sync.Once
}

func (t *term) Guard() store.LeaderGuard { return t.guard }
func (t *term) Done() <-chan struct{}    { return t.done }
func (t *term) Close() {
	t.once.Do(func() {
		t.s.mu.Lock()
		if t.s.leader == t {
			t.s.leader = nil
		}
		t.s.mu.Unlock()
		close(t.done)
	})
}

// Campaign waits until no term is open, then opens one for identity.
func (s *Store) Campaign(ctx context.Context, identity string) (store.Leadership, error) {
	for {
		s.mu.Lock()
		if s.leader == nil {
			s.terms++
			t := &term{s: s, guard: store.LeaderGuard{Key: identity, Rev: s.terms}, done: make(chan struct{})}
			s.leader = t
			s.mu.Unlock()
			return t, nil
		}
		cur := s.leader
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-cur.done:
		}
	}
}

// Depose ends the current leader's term (its session expired).
func (s *Store) Depose() {
	s.mu.Lock()
	t := s.leader
	s.mu.Unlock()
	if t != nil {
		t.Close()
	}
}
