package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/parallel"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// The typed methods below are the only way controllers and commands reach
// the store: each names the record it reads or writes, never a key.

// Endpoints are the client's etcd endpoints.
func (s *Store) Endpoints() []string { return s.client.Endpoints() }

// RegisterNode grants a lease of ttl (rounded up to whole seconds) and
// attaches the node's record to it.
func (s *Store) RegisterNode(ctx context.Context, info store.NodeInfo, ttl time.Duration) (store.LeaseID, error) {
	g, err := s.client.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant lease for %s: %w", info.Name, err)
	}
	// A plain put, not putJSON: the key must be attached to the new lease
	// even when its value is unchanged.
	if err := s.putNode(ctx, info, store.LeaseID(g.ID)); err != nil {
		return 0, fmt.Errorf("register node %s: %w", info.Name, err)
	}
	return store.LeaseID(g.ID), nil
}

// UpdateNode publishes a registered node's record again (a new take-down
// budget, unsafe or safe again), on its lease.
func (s *Store) UpdateNode(ctx context.Context, info store.NodeInfo, id store.LeaseID) error {
	if err := s.putNode(ctx, info, id); err != nil {
		return fmt.Errorf("publish node %s: %w", info.Name, err)
	}
	return nil
}

// putNode writes the leased record and the last-known copy in one
// transaction.
func (s *Store) putNode(ctx context.Context, info store.NodeInfo, id store.LeaseID) error {
	b, _ := json.Marshal(info)
	_, err := s.client.Txn(ctx).Then(
		clientv3.OpPut(nodeKey(info.Name), string(b), clientv3.WithLease(clientv3.LeaseID(id))),
		clientv3.OpPut(lastKnownKey(info.Name), string(b)),
	).Commit()
	return err
}

// KnownNodes returns the last record of every node that ever registered,
// live or not: a dead node's take-down budget is still known.
func (s *Store) KnownNodes(ctx context.Context) (map[string]store.NodeInfo, error) {
	return getPrefix[store.NodeInfo](ctx, s, lastKnownKey(""))
}

// NodeLease returns the lease a node's record is attached to, when the node
// is registered: a restarted agent whose previous lease is still alive can
// prove that it still holds what it held.
func (s *Store) NodeLease(ctx context.Context, node string) (store.LeaseID, bool, error) {
	resp, err := s.client.Get(ctx, nodeKey(node))
	if err != nil {
		return 0, false, err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		return 0, false, nil
	}
	return store.LeaseID(resp.Kvs[0].Lease), true, nil
}

// RenewLease renews a node's lease once; store.ErrLeaseExpired when it is
// gone.
func (s *Store) RenewLease(ctx context.Context, id store.LeaseID) error {
	_, err := s.client.KeepAliveOnce(ctx, clientv3.LeaseID(id))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return store.ErrLeaseExpired
	}
	return err
}

// RevokeLease ends a node's lease at once (a clean stop).
func (s *Store) RevokeLease(ctx context.Context, id store.LeaseID) error {
	_, err := s.client.Revoke(ctx, clientv3.LeaseID(id))
	return err
}

// Nodes returns the registered (live) nodes by name.
func (s *Store) Nodes(ctx context.Context) (map[string]store.NodeInfo, error) {
	return getPrefix[store.NodeInfo](ctx, s, nodeKey(""))
}

// PutReport stores a node's report on a group when it changed.
func (s *Store) PutReport(ctx context.Context, r store.Report) error {
	_, err := s.putJSON(ctx, reportKey(r.Group, r.Node), r)
	return err
}

// PutReports writes many reports in few transactions (reportsPerTxn
// each): a node that converged a thousand groups writes them in eight
// round trips, not a thousand.
func (s *Store) PutReports(ctx context.Context, reps []store.Report) error {
	chunks := (len(reps) + reportsPerTxn - 1) / reportsPerTxn
	return parallel.FirstError(chunks, TxnsInFlight, func(i int) error {
		part := reps[i*reportsPerTxn : min(len(reps), (i+1)*reportsPerTxn)]
		ops := make([]clientv3.Op, 0, len(part))
		for _, r := range part {
			b, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("encode report on %s: %w", r.Group, err)
			}
			ops = append(ops, clientv3.OpPut(reportKey(r.Group, r.Node), string(b)))
		}
		if _, err := s.client.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("write %d reports: %w", len(part), err)
		}
		return nil
	})
}

// TxnsInFlight is how many transactions of one batch write (reports, the
// leader's decisions) are sent at once. A member commits proposals that
// arrive together in one raft round and one fsync, so a batch of 2,500
// groups' writes takes the time of a few rounds instead of twenty in a row.
const TxnsInFlight = 4

// reportsPerTxn bounds a transaction of reports (etcd's default limit is
// 128 operations; the embedded member allows more, an external one may not).
const reportsPerTxn = 128

// Reports returns every node's report on every group.
func (s *Store) Reports(ctx context.Context) ([]store.Report, error) {
	prefix := family(store.FamilyReports)
	kvs, _, err := s.listPrefix(ctx, prefix)
	if err != nil {
		return nil, err
	}
	m := decodeFamily(s, prefix, kvs, func(_ string, value []byte, _ int64) (store.Report, bool) {
		var r store.Report
		return r, json.Unmarshal(value, &r) == nil
	})
	out := make([]store.Report, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out, nil
}

// GroupReports returns the reports on one group, by node.
func (s *Store) GroupReports(ctx context.Context, group string) (map[string]store.Report, error) {
	return getPrefix[store.Report](ctx, s, groupReportsKey(group))
}

// DeleteReports forgets every report on a group that no longer exists.
func (s *Store) DeleteReports(ctx context.Context, group string) error {
	_, err := s.client.Delete(ctx, groupReportsKey(group), clientv3.WithPrefix())
	return err
}

// Suspensions returns the maintenance flags.
func (s *Store) Suspensions(ctx context.Context) (store.Suspensions, error) {
	m, err := getPrefix[bool](ctx, s, family(store.FamilySuspended))
	return store.Suspensions(m), err
}

// SetSuspended sets or lifts the maintenance flag of an object (kind "Node"
// for a whole node).
func (s *Store) SetSuspended(ctx context.Context, kind, name string, on bool) error {
	var err error
	if on {
		_, err = s.client.Put(ctx, suspendKey(kind, name), "true")
	} else {
		_, err = s.client.Delete(ctx, suspendKey(kind, name))
	}
	return err
}

// AckDeleted records that node took refs out of service.
func (s *Store) AckDeleted(ctx context.Context, node string, refs ...v1alpha1.Ref) error {
	if len(refs) == 0 {
		return nil
	}
	ops := make([]clientv3.Op, 0, len(refs))
	for _, r := range refs {
		ops = append(ops, clientv3.OpPut(deletedKey(r, node), "true"))
	}
	_, err := s.client.Txn(ctx).Then(ops...).Commit()
	return err
}

// DeletionAcks returns the nodes that took ref out of service.
func (s *Store) DeletionAcks(ctx context.Context, ref v1alpha1.Ref) (map[string]bool, error) {
	return getPrefix[bool](ctx, s, deletedPrefix(ref))
}

// PutStatus writes an object's status when it changed.
func (s *Store) PutStatus(ctx context.Context, ref v1alpha1.Ref, st v1alpha1.Status) error {
	_, err := s.putJSON(ctx, statusKey(ref), st)
	return err
}

// PutObserved stores what a node has now, for `sitekeeper plan` and `get
// nodes`.
func (s *Store) PutObserved(ctx context.Context, o plan.Observed) error {
	_, err := s.putJSON(ctx, observedKey(o.Node), o)
	return err
}

// Observed returns what each node last reported it has, by node.
func (s *Store) Observed(ctx context.Context) (map[string]plan.Observed, error) {
	return getPrefix[plan.Observed](ctx, s, family(store.FamilyObserved))
}

// Source returns a manifest folder's record; false when there is none.
func (s *Store) Source(ctx context.Context, name string) (store.Source, bool, error) {
	resp, err := s.client.Get(ctx, sourceKey(name))
	if err != nil || len(resp.Kvs) == 0 {
		return store.Source{}, false, err
	}
	var src store.Source
	if err := json.Unmarshal(resp.Kvs[0].Value, &src); err != nil {
		return store.Source{}, false, fmt.Errorf("decode source %s: %w", name, err)
	}
	return src, true, nil
}

// Sources returns every manifest folder's record, by name.
func (s *Store) Sources(ctx context.Context) (map[string]store.Source, error) {
	return getPrefix[store.Source](ctx, s, family(store.FamilySources))
}

// PutSource writes a manifest folder's record when it changed.
func (s *Store) PutSource(ctx context.Context, src store.Source) error {
	_, err := s.putJSON(ctx, sourceKey(src.Name), src)
	return err
}

// SourceNodes returns, per source name, the revision each node's checkout
// holds.
func (s *Store) SourceNodes(ctx context.Context) (map[string][]store.SourceNode, error) {
	m, err := getPrefix[store.SourceNode](ctx, s, sourceNodesPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string][]store.SourceNode{}
	for k, sn := range m {
		name, _, _ := strings.Cut(k, "/")
		out[name] = append(out[name], sn)
	}
	return out, nil
}

// PutSourceNode records the revision a node's checkout of a source holds.
func (s *Store) PutSourceNode(ctx context.Context, source string, sn store.SourceNode) error {
	_, err := s.putJSON(ctx, sourceNodeKey(source, sn.Node), sn)
	return err
}

// SimCommands returns the last fault injected into each simulated node.
func (s *Store) SimCommands(ctx context.Context) (map[string]store.SimCommand, error) {
	return getPrefix[store.SimCommand](ctx, s, family(store.FamilySim))
}

// PutSimCommand injects a fault into a simulated node.
func (s *Store) PutSimCommand(ctx context.Context, node string, c store.SimCommand) error {
	_, err := s.putJSON(ctx, simKey(node), c)
	return err
}

// SimEvent is a fault injected into one simulated node.
type SimEvent struct {
	Node    string
	Command store.SimCommand
}

// WatchSim streams the faults injected from now on, until ctx ends.
func (s *Store) WatchSim(ctx context.Context) <-chan SimEvent {
	ch := make(chan SimEvent)
	go func() {
		defer close(ch)
		for resp := range s.client.Watch(ctx, family(store.FamilySim), clientv3.WithPrefix()) {
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				var c store.SimCommand
				if json.Unmarshal(ev.Kv.Value, &c) != nil {
					continue
				}
				select {
				case ch <- SimEvent{Node: strings.TrimPrefix(string(ev.Kv.Key), family(store.FamilySim)), Command: c}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch
}

// electionTTL is the lease of a placement term: a leader that stops
// renewing is replaced this long after.
const electionTTL = 2 * time.Second

// leadership is a placement term: a key under the election prefix attached
// to the candidate's own lease; the candidate whose key was created first
// leads. Its lease is renewed with single keep-alive calls, each with a
// deadline, and the candidate polls for its turn instead of watching: a
// fault run showed a keep-alive stream and a watch stream of a node whose
// link was cut and healed stay silent, so that a candidate waited for ever
// for a term its rival's expiry had freed.
type leadership struct {
	s     *Store
	lease clientv3.LeaseID
	guard store.LeaderGuard
	done  chan struct{}
	stop  context.CancelFunc
	once  sync.Once
}

func (l *leadership) Guard() store.LeaderGuard { return l.guard }
func (l *leadership) Done() <-chan struct{}    { return l.done }

// end stops renewing and closes Done.
func (l *leadership) end() {
	l.once.Do(func() {
		l.stop()
		close(l.done)
	})
}

// Close ends the term and revokes its lease, so the next leader takes over
// at once instead of after the lease.
func (l *leadership) Close() {
	l.end()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := l.s.client.Revoke(ctx, l.lease); err != nil {
		l.s.log.Info("Could not revoke the leader's lease; the next leader takes over once it expires", "error", err.Error())
	}
}

// Abandon ends the term without resigning: the lease expires and
// leadership passes on then, as when the leader's host is cut off (used by
// the simulator's partitions).
func (l *leadership) Abandon() { l.end() }

// renew keeps the term's lease alive until it ends; a term whose lease
// could have expired (no renewal for three quarters of its TTL) ends.
func (l *leadership) renew(ctx context.Context) {
	last := time.Now()
	t := time.NewTicker(electionTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, electionTTL/4)
		_, err := l.s.client.KeepAliveOnce(rctx, l.lease)
		cancel()
		switch {
		case err == nil:
			last = sent
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || time.Since(last) > electionTTL*3/4:
			l.end()
			return
		}
	}
}

// Campaign blocks until identity is the placement leader (or ctx ends).
func (s *Store) Campaign(ctx context.Context, identity string) (store.Leadership, error) {
	cctx, cancel := context.WithTimeout(ctx, electionTTL)
	defer cancel()
	g, err := s.client.Grant(cctx, int64(electionTTL/time.Second))
	if err != nil {
		return nil, fmt.Errorf("election lease: %w", err)
	}
	key := fmt.Sprintf("%s%x", electionPrefix, g.ID)
	resp, err := s.client.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, identity, clientv3.WithLease(g.ID))).Commit()
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, rerr := s.client.Revoke(rctx, g.ID); rerr != nil {
			s.log.V(1).Info("Could not revoke a campaign's lease; it expires by itself", "error", rerr.Error())
		}
		cancel()
		return nil, fmt.Errorf("campaign: %w", err)
	}
	// The term is renewed while the campaign's context lasts: a candidate
	// that stops (or crashes) stops renewing.
	rctx, stop := context.WithCancel(ctx)
	l := &leadership{s: s, lease: g.ID, guard: store.LeaderGuard{Key: key, Rev: resp.Header.Revision}, done: make(chan struct{}), stop: stop}
	go l.renew(rctx)
	for {
		// A serializable read of this member is enough: it applied our
		// key's creation, so every older key's too, and a deletion it has
		// not applied yet only makes us wait longer. Each read has a
		// deadline: a linearizable read of a member whose link was cut
		// and healed has been seen to hang.
		gctx, cancel := context.WithTimeout(ctx, electionTTL/2)
		first, err := s.client.Get(gctx, electionPrefix, append(clientv3.WithFirstCreate(), clientv3.WithSerializable())...)
		cancel()
		if err == nil && len(first.Kvs) > 0 && string(first.Kvs[0].Key) == key {
			return l, nil
		}
		select {
		case <-ctx.Done():
			l.Close()
			return nil, ctx.Err()
		case <-l.done:
			return nil, fmt.Errorf("campaign: the election lease lapsed while waiting")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// PutSwitchoverRequest records an operator's switchover for the placement
// leader; a newer request for the group replaces an older one.
func (s *Store) PutSwitchoverRequest(ctx context.Context, r store.SwitchoverRequest) error {
	if r.By == "" {
		r.By = s.actor
	}
	if r.At.IsZero() {
		r.At = s.now().UTC()
	}
	b, _ := json.Marshal(r)
	_, err := s.client.Put(ctx, switchoverRequestsPrefix()+r.Group, string(b))
	return err
}

// SwitchoverRequests are the switchovers waiting for the leader, by group.
// A request that does not decode is dropped (and said so in the log): it
// cannot be carried out.
func (s *Store) SwitchoverRequests(ctx context.Context) (map[string]store.SwitchoverRequest, error) {
	resp, err := s.client.Get(ctx, switchoverRequestsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string]store.SwitchoverRequest{}
	for _, kv := range resp.Kvs {
		var r store.SwitchoverRequest
		if err := json.Unmarshal(kv.Value, &r); err != nil || r.Group == "" {
			s.log.Info("Dropping a switchover request that does not decode", "key", string(kv.Key))
			_, _ = s.client.Delete(ctx, string(kv.Key))
			continue
		}
		out[r.Group] = r
	}
	return out, nil
}

// DeleteSwitchoverRequest removes the group's request once it was carried
// out (or refused), unless a newer one replaced it since it was read.
func (s *Store) DeleteSwitchoverRequest(ctx context.Context, r store.SwitchoverRequest) error {
	key := switchoverRequestsPrefix() + r.Group
	resp, err := s.client.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return err
	}
	var cur store.SwitchoverRequest
	if json.Unmarshal(resp.Kvs[0].Value, &cur) == nil && !cur.At.Equal(r.At) {
		return nil // a newer request
	}
	_, err = s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).Then(clientv3.OpDelete(key)).Commit()
	return err
}

// Drains are the nodes being drained, with how many of their groups may
// move at once.
func (s *Store) Drains(ctx context.Context) (map[string]int, error) {
	return getPrefix[int](ctx, s, family(store.FamilyDrains))
}

// SetDrain starts (parallel > 0) or ends (0) the drain of node.
func (s *Store) SetDrain(ctx context.Context, node string, parallel int) error {
	var err error
	if parallel > 0 {
		_, err = s.client.Put(ctx, family(store.FamilyDrains)+node, strconv.Itoa(parallel))
	} else {
		_, err = s.client.Delete(ctx, family(store.FamilyDrains)+node)
	}
	return err
}
