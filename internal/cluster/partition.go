package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/node"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// errPartitioned is what a simulated node cut off from the store gets from
// every store call.
var errPartitioned = errors.New("simulated partition: the store is unreachable from this node")

// partitionable is one simulated node's view of the store, which `sim
// partition-node` can cut: every call then fails as a call to an
// unreachable etcd would, while the node keeps running and serving; its
// lease stops renewing and it must fence itself. A placement term it holds
// is abandoned (not resigned), so leadership passes on when it expires.
type partitionable struct {
	*etcdstore.Store
	name string
	cut  atomic.Bool

	mu    sync.Mutex
	terms []*cutTerm
	heal  chan struct{} // closed when the partition ends
}

var _ node.Store = (*partitionable)(nil)

func newPartitionable(st *etcdstore.Store, name string) *partitionable {
	return &partitionable{Store: st, name: name, heal: make(chan struct{})}
}

// setCut starts or ends the partition.
func (p *partitionable) setCut(on bool) {
	if p.cut.Swap(on) == on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.heal = make(chan struct{})
		for _, t := range p.terms {
			t.abandon()
		}
		p.terms = nil
		return
	}
	close(p.heal)
}

func (p *partitionable) check(ctx context.Context) error {
	if !p.cut.Load() {
		return nil
	}
	// An unreachable etcd answers nothing until the caller's deadline.
	if _, ok := ctx.Deadline(); ok {
		<-ctx.Done()
	}
	return fmt.Errorf("node %s: %w", p.name, errPartitioned)
}

// cutTerm is a placement term that ends when its node is cut off.
type cutTerm struct {
	store.Leadership
	done chan struct{}
	once sync.Once
}

func (t *cutTerm) Done() <-chan struct{} { return t.done }

func (t *cutTerm) abandon() {
	t.once.Do(func() {
		if a, ok := t.Leadership.(interface{ Abandon() }); ok {
			a.Abandon()
		}
		close(t.done)
	})
}

// Campaign waits out a partition, then campaigns.
func (p *partitionable) Campaign(ctx context.Context, identity string) (store.Leadership, error) {
	for p.cut.Load() {
		p.mu.Lock()
		heal := p.heal
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-heal:
		}
	}
	l, err := p.Store.Campaign(ctx, identity)
	if err != nil {
		return nil, err
	}
	t := &cutTerm{Leadership: l, done: make(chan struct{})}
	go func() {
		select {
		case <-l.Done():
			t.once.Do(func() { close(t.done) })
		case <-t.done:
		}
	}()
	p.mu.Lock()
	p.terms = append(p.terms, t)
	cut := p.cut.Load()
	p.mu.Unlock()
	if cut {
		t.abandon()
	}
	return t, nil
}

func (p *partitionable) List(ctx context.Context) (store.Snapshot, error) {
	if err := p.check(ctx); err != nil {
		return store.Snapshot{}, err
	}
	return p.Store.List(ctx)
}

func (p *partitionable) ListSpecs(ctx context.Context) (store.Snapshot, error) {
	if err := p.check(ctx); err != nil {
		return store.Snapshot{}, err
	}
	return p.Store.ListSpecs(ctx)
}

func (p *partitionable) Decisions(ctx context.Context) (map[string]store.Decision, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Store.Decisions(ctx)
}

func (p *partitionable) Suspensions(ctx context.Context) (store.Suspensions, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Store.Suspensions(ctx)
}

func (p *partitionable) RegisterNode(ctx context.Context, info store.NodeInfo, ttl time.Duration) (store.LeaseID, error) {
	if err := p.check(ctx); err != nil {
		return 0, err
	}
	return p.Store.RegisterNode(ctx, info, ttl)
}

func (p *partitionable) UpdateNode(ctx context.Context, info store.NodeInfo, id store.LeaseID) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.UpdateNode(ctx, info, id)
}

func (p *partitionable) NodeLease(ctx context.Context, n string) (store.LeaseID, bool, error) {
	if err := p.check(ctx); err != nil {
		return 0, false, err
	}
	return p.Store.NodeLease(ctx, n)
}

func (p *partitionable) RenewLease(ctx context.Context, id store.LeaseID) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.RenewLease(ctx, id)
}

func (p *partitionable) RevokeLease(ctx context.Context, id store.LeaseID) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.RevokeLease(ctx, id)
}

func (p *partitionable) PutReport(ctx context.Context, r store.Report) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.PutReport(ctx, r)
}

func (p *partitionable) Statuses(ctx context.Context) (map[v1alpha1.Ref]v1alpha1.Status, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Store.Statuses(ctx)
}

func (p *partitionable) PutReports(ctx context.Context, reps []store.Report) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.PutReports(ctx, reps)
}

func (p *partitionable) PutObserved(ctx context.Context, o plan.Observed) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.PutObserved(ctx, o)
}

func (p *partitionable) AckDeleted(ctx context.Context, n string, refs ...v1alpha1.Ref) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.AckDeleted(ctx, n, refs...)
}

func (p *partitionable) Nodes(ctx context.Context) (map[string]store.NodeInfo, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Store.Nodes(ctx)
}

func (p *partitionable) KnownNodes(ctx context.Context) (map[string]store.NodeInfo, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Store.KnownNodes(ctx)
}

func (p *partitionable) Reports(ctx context.Context) ([]store.Report, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Store.Reports(ctx)
}

func (p *partitionable) PutDecision(ctx context.Context, d store.Decision, guard store.LeaderGuard) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.PutDecision(ctx, d, guard)
}

func (p *partitionable) DeleteDecision(ctx context.Context, group string) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.DeleteDecision(ctx, group)
}

func (p *partitionable) DeleteReports(ctx context.Context, group string) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.DeleteReports(ctx, group)
}

func (p *partitionable) PutPlacements(ctx context.Context, ws []store.PlacementWrite, guard store.LeaderGuard) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.PutPlacements(ctx, ws, guard)
}

func (p *partitionable) PutStatus(ctx context.Context, ref v1alpha1.Ref, st v1alpha1.Status) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.PutStatus(ctx, ref, st)
}

func (p *partitionable) DeletionAcks(ctx context.Context, ref v1alpha1.Ref) (map[string]bool, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Store.DeletionAcks(ctx, ref)
}

func (p *partitionable) Remove(ctx context.Context, ref v1alpha1.Ref) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.Remove(ctx, ref)
}

func (p *partitionable) Apply(ctx context.Context, objs []v1alpha1.Object, opt store.ApplyOptions) ([]store.ApplyResult, error) {
	if err := p.check(ctx); err != nil {
		return nil, err
	}
	return p.Store.Apply(ctx, objs, opt)
}

func (p *partitionable) Source(ctx context.Context, name string) (store.Source, bool, error) {
	if err := p.check(ctx); err != nil {
		return store.Source{}, false, err
	}
	return p.Store.Source(ctx, name)
}

func (p *partitionable) PutSource(ctx context.Context, src store.Source) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.PutSource(ctx, src)
}

func (p *partitionable) PutSourceNode(ctx context.Context, source string, sn store.SourceNode) error {
	if err := p.check(ctx); err != nil {
		return err
	}
	return p.Store.PutSourceNode(ctx, source, sn)
}

// Event and EventBatch drop what a cut-off node records, as a real one's
// writes would fail.
func (p *partitionable) Event(ctx context.Context, e store.Event) {
	if !p.cut.Load() {
		p.Store.Event(ctx, e)
	}
}

func (p *partitionable) EventBatch(ctx context.Context, events []store.Event) {
	if !p.cut.Load() {
		p.Store.EventBatch(ctx, events)
	}
}
