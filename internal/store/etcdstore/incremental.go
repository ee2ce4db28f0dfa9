package etcdstore

import (
	"context"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// listing is the last full view of one prefix this client read, kept so
// that the next read asks the store only for what changed since.
//
// The leader and every agent list the objects, the decisions and the
// reports at each pass; with 5,000 groups the objects alone are 15 MB a
// listing, sent, decoded and thrown away several times a second while a
// failover moves thousands of groups, for a handful of changed keys. A
// read is still one linearizable request to the store: the keys written
// since the listing's revision, with their values, and the number of keys
// under the prefix now, at one revision. When that number says a key was
// deleted the prefix is listed in full again (deletes are rare: an object
// removed, a group gone).
type listing struct {
	mu  sync.Mutex
	rev int64
	kvs []*mvccpb.KeyValue // sorted by key; never changed once returned
	pos map[string]int     // key -> index in kvs
}

// listPrefix returns every key under p, sorted, and the revision it is
// at. The slice is shared between callers: read it, never change it.
func (s *Store) listPrefix(ctx context.Context, p string) ([]*mvccpb.KeyValue, int64, error) {
	s.listingsMu.Lock()
	if s.listings == nil {
		s.listings = map[string]*listing{}
	}
	l := s.listings[p]
	if l == nil {
		l = &listing{}
		s.listings[p] = l
	}
	s.listingsMu.Unlock()

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kvs != nil {
		resp, err := s.client.Txn(ctx).Then(
			clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithMinModRev(l.rev+1)),
			clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithCountOnly()),
		).Commit()
		if err != nil {
			return nil, 0, err
		}
		changed := resp.Responses[0].GetResponseRange().Kvs
		count := resp.Responses[1].GetResponseRange().Count
		// A store older than the listing (restored from a backup) has
		// values the revision filter cannot tell apart: list it whole.
		if resp.Header.Revision < l.rev {
			l.kvs = nil
		} else if kvs, ok := l.merge(changed, count); ok {
			l.kvs, l.rev = kvs, resp.Header.Revision
			return kvs, l.rev, nil
		}
	}
	resp, err := s.client.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	l.kvs, l.rev = resp.Kvs, resp.Header.Revision
	if l.kvs == nil {
		l.kvs = []*mvccpb.KeyValue{}
	}
	l.pos = make(map[string]int, len(l.kvs))
	for i, kv := range l.kvs {
		l.pos[string(kv.Key)] = i
	}
	return l.kvs, l.rev, nil
}

// merge applies the keys changed since the listing, given how many keys
// the prefix holds now; false when some key was deleted (the listing
// cannot tell which).
func (l *listing) merge(changed []*mvccpb.KeyValue, count int64) ([]*mvccpb.KeyValue, bool) {
	var added []*mvccpb.KeyValue
	for _, kv := range changed {
		if _, ok := l.pos[string(kv.Key)]; !ok {
			added = append(added, kv)
		}
	}
	if int64(len(l.kvs)+len(added)) != count {
		return nil, false
	}
	if len(changed) == 0 {
		return l.kvs, true
	}
	// A new slice: callers may still be reading the old one.
	kvs := slices.Clone(l.kvs)
	for _, kv := range changed {
		if i, ok := l.pos[string(kv.Key)]; ok {
			kvs[i] = kv
		}
	}
	if len(added) > 0 {
		kvs = append(kvs, added...)
		slices.SortFunc(kvs, func(a, b *mvccpb.KeyValue) int { return strings.Compare(string(a.Key), string(b.Key)) })
		l.pos = make(map[string]int, len(kvs))
		for i, kv := range kvs {
			l.pos[string(kv.Key)] = i
		}
	}
	return kvs, true
}
