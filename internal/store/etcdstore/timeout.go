package etcdstore

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultRequestTimeout bounds every store call made without a deadline of
// its own.
const DefaultRequestTimeout = 30 * time.Second

// boundRequests gives every unary call of c (reads, writes, transactions,
// lease and member calls) a deadline of d when its context has none: a
// store that dies mid-request ends the call with an error instead of
// leaving it in the gRPC picker forever. Streams (watches, keep-alives)
// are left as they are: they end with their context.
func boundRequests(c *clientv3.Client, d time.Duration) {
	c.KV = boundKV{KV: c.KV, d: d}
	c.Lease = boundLease{Lease: c.Lease, d: d}
	c.Cluster = boundCluster{Cluster: c.Cluster, d: d}
}

func bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

type boundKV struct {
	clientv3.KV
	d time.Duration
}

func (k boundKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := bound(ctx, k.d)
	defer cancel()
	return k.KV.Get(ctx, key, opts...)
}

func (k boundKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	ctx, cancel := bound(ctx, k.d)
	defer cancel()
	return k.KV.Put(ctx, key, val, opts...)
}

func (k boundKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	ctx, cancel := bound(ctx, k.d)
	defer cancel()
	return k.KV.Delete(ctx, key, opts...)
}

func (k boundKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	ctx, cancel := bound(ctx, k.d)
	defer cancel()
	return k.KV.Do(ctx, op)
}

// Txn binds the deadline when the transaction is built; Commit releases it.
func (k boundKV) Txn(ctx context.Context) clientv3.Txn {
	ctx, cancel := bound(ctx, k.d)
	return &boundTxn{Txn: k.KV.Txn(ctx), cancel: cancel}
}

type boundTxn struct {
	clientv3.Txn
	cancel context.CancelFunc
}

func (t *boundTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *boundTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *boundTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }
func (t *boundTxn) Commit() (*clientv3.TxnResponse, error) {
	defer t.cancel()
	return t.Txn.Commit()
}

type boundLease struct {
	clientv3.Lease
	d time.Duration
}

func (l boundLease) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	ctx, cancel := bound(ctx, l.d)
	defer cancel()
	return l.Lease.Grant(ctx, ttl)
}

func (l boundLease) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	ctx, cancel := bound(ctx, l.d)
	defer cancel()
	return l.Lease.Revoke(ctx, id)
}

func (l boundLease) TimeToLive(ctx context.Context, id clientv3.LeaseID, opts ...clientv3.LeaseOption) (*clientv3.LeaseTimeToLiveResponse, error) {
	ctx, cancel := bound(ctx, l.d)
	defer cancel()
	return l.Lease.TimeToLive(ctx, id, opts...)
}

func (l boundLease) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	ctx, cancel := bound(ctx, l.d)
	defer cancel()
	return l.Lease.KeepAliveOnce(ctx, id)
}

type boundCluster struct {
	clientv3.Cluster
	d time.Duration
}

func (c boundCluster) MemberList(ctx context.Context, opts ...clientv3.OpOption) (*clientv3.MemberListResponse, error) {
	ctx, cancel := bound(ctx, c.d)
	defer cancel()
	return c.Cluster.MemberList(ctx, opts...)
}

func (c boundCluster) MemberAddAsLearner(ctx context.Context, peerAddrs []string) (*clientv3.MemberAddResponse, error) {
	ctx, cancel := bound(ctx, c.d)
	defer cancel()
	return c.Cluster.MemberAddAsLearner(ctx, peerAddrs)
}

func (c boundCluster) MemberRemove(ctx context.Context, id uint64) (*clientv3.MemberRemoveResponse, error) {
	ctx, cancel := bound(ctx, c.d)
	defer cancel()
	return c.Cluster.MemberRemove(ctx, id)
}

func (c boundCluster) MemberPromote(ctx context.Context, id uint64) (*clientv3.MemberPromoteResponse, error) {
	ctx, cancel := bound(ctx, c.d)
	defer cancel()
	return c.Cluster.MemberPromote(ctx, id)
}

// IsTimeout reports whether err is a store call that ran out of time or
// found no store to answer it: for a write, its outcome is unknown (it
// may have been committed before the answer was lost).
func IsTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := status.FromError(e); ok && (s.Code() == codes.DeadlineExceeded || s.Code() == codes.Unavailable) {
			return true
		}
	}
	return false
}
