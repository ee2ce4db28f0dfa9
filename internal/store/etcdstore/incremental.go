package etcdstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// listing is the last full view of one prefix this client read, kept so
// that the next read asks the store only for what changed since.
//
// The leader and every agent list the objects, the decisions and the
// reports at each pass; with 5,000 groups the objects alone are 15 MB a
// listing, sent, decoded and thrown away several times a second while a
// failover moves thousands of groups, for a handful of changed keys.
//
// A read is still linearizable. It asks the store for the number of keys
// under the prefix and the revision that number is at (a count the store
// answers from its index), then takes the changes up to that revision
// from a watch of the prefix that feeds the listing (feed). When the watch
// has not delivered them within feedWait (a member that lags, a watch
// that broke) it asks the store for the keys changed since the listing's
// revision instead, which costs the store a scan of the prefix but not
// the transfer. When the count disagrees with the listing after either
// (the listing cannot tell which key went) the prefix is listed whole.
type listing struct {
	mu   sync.Mutex
	rev  int64
	kvs  []*mvccpb.KeyValue // sorted by key; never changed once returned
	feed *feed              // the watch from rev+1; nil before a full list
	// by counts the reads each way (fed, scanned, full), for tests.
	by [3]int
}

// The ways a listing is brought up to date, indexes of listing.by.
const (
	byFeed = iota
	byScan
	byFullList
)

// feedWait bounds how long a read waits for the watch to deliver what the
// store has: a watch served by a lagging member must not hold a pass up.
const feedWait = 250 * time.Millisecond

// maxPending is how many undelivered changes a feed holds before it stops
// (the next read lists the prefix whole): a listing nobody reads must not
// grow without bound.
const maxPending = 100_000

// feed is a watch of one prefix: the changes it received that no read has
// taken yet, and the revision up to which it has received every change.
type feed struct {
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	events  []*clientv3.Event
	through int64
	dead    bool
	moved   chan struct{} // closed, and replaced, when through moves or the feed dies
}

// watch starts a feed of prefix p from rev+1.
func (s *Store) watch(p string, rev int64) *feed {
	// A gRPC stream of its own (the client shares one per metadata):
	// progress requests are answered on the whole stream, and the
	// store's change watches must not see them. Each feed has its own,
	// so that a new one never waits on the stream of the one it replaces.
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(),
		"sitekeeper-listing", fmt.Sprintf("%s#%d", p, s.feeds.Add(1))))
	f := &feed{ctx: ctx, cancel: cancel, through: rev, moved: make(chan struct{})}
	wch := s.client.Watch(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	go func() {
		defer f.stop()
		for resp := range wch {
			if resp.Canceled || resp.Err() != nil {
				return // compacted past rev, or the client closed
			}
			f.mu.Lock()
			if f.dead {
				f.mu.Unlock()
				return // stopped: its moved is closed for good
			}
			through := f.through
			if resp.IsProgressNotify() {
				// Every change up to the header's revision was sent.
				through = max(through, resp.Header.Revision)
			} else if n := len(resp.Events); n > 0 {
				// A revision's changes come in one response, in order.
				f.events = append(f.events, resp.Events...)
				through = max(through, resp.Events[n-1].Kv.ModRevision)
			}
			full := len(f.events) > maxPending
			if through != f.through {
				f.through = through
				close(f.moved)
				f.moved = make(chan struct{})
			}
			f.mu.Unlock()
			if full {
				return
			}
		}
	}()
	return f
}

func (f *feed) stop() {
	f.cancel()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dead {
		f.dead, f.events = true, nil
		close(f.moved)
	}
}

func (f *feed) stopped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dead
}

// upTo waits until the feed has every change up to rev and takes them;
// false when it has not within feedWait or it stopped.
func (f *feed) upTo(ctx context.Context, c *clientv3.Client, rev int64) ([]*clientv3.Event, bool) {
	timeout := time.NewTimer(feedWait)
	defer timeout.Stop()
	asked := false
	for {
		f.mu.Lock()
		dead, through, moved := f.dead, f.through, f.moved
		if !dead && through >= rev {
			n := 0
			for n < len(f.events) && f.events[n].Kv.ModRevision <= rev {
				n++
			}
			taken := f.events[:n:n]
			f.events = f.events[n:]
			f.mu.Unlock()
			return taken, true
		}
		f.mu.Unlock()
		if dead {
			return nil, false
		}
		if !asked {
			// No change of the prefix may come to move the feed on: ask
			// the store to say how far it has sent.
			asked = true
			if err := c.RequestProgress(f.ctx); err != nil {
				return nil, false
			}
		}
		select {
		case <-moved:
		case <-timeout.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
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
		kvs, ok, err := s.update(ctx, l, p)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			return kvs, l.rev, nil
		}
	}
	resp, err := s.client.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	l.kvs, l.rev = resp.Kvs, resp.Header.Revision
	l.by[byFullList]++
	if l.kvs == nil {
		l.kvs = []*mvccpb.KeyValue{}
	}
	if l.feed != nil {
		l.feed.stop()
	}
	l.feed = s.watch(p, l.rev)
	return l.kvs, l.rev, nil
}

// update brings l up to the store's revision from its feed, or from the
// keys changed since; false when only a full list can.
func (s *Store) update(ctx context.Context, l *listing, p string) ([]*mvccpb.KeyValue, bool, error) {
	now, err := s.client.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, false, err
	}
	rev, count := now.Header.Revision, now.Count
	if rev < l.rev {
		// A store older than the listing (restored from a backup) has
		// values the revisions cannot tell apart: list it whole.
		return nil, false, nil
	}
	if events, ok := l.feed.upTo(ctx, s.client, rev); ok {
		kvs, ok := l.apply(events, count)
		if ok {
			l.kvs, l.rev = kvs, rev
			l.by[byFeed]++
		}
		return kvs, ok, nil
	}
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithMinModRev(l.rev+1)),
		clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return nil, false, err
	}
	if resp.Header.Revision < l.rev {
		return nil, false, nil
	}
	var events []*clientv3.Event
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		events = append(events, &clientv3.Event{Type: clientv3.EventTypePut, Kv: kv})
	}
	kvs, ok := l.apply(events, resp.Responses[1].GetResponseRange().Count)
	if ok {
		l.kvs, l.rev = kvs, resp.Header.Revision
		l.by[byScan]++
		if l.feed.stopped() {
			// The watch broke (compacted past, the client reconnected
			// too late): feed the listing again from here.
			l.feed = s.watch(p, l.rev)
		}
	}
	return kvs, ok, nil
}

// apply is the listing with events applied (those it already holds, at or
// before its revision, are skipped), given how many keys the prefix holds
// after them; false when that number disagrees.
func (l *listing) apply(events []*clientv3.Event, count int64) ([]*mvccpb.KeyValue, bool) {
	var fresh []*clientv3.Event
	for _, ev := range events {
		if ev.Kv.ModRevision > l.rev {
			fresh = append(fresh, ev)
		}
	}
	if len(fresh) == 0 {
		return l.kvs, int64(len(l.kvs)) == count
	}
	// A new slice: callers may still be reading the old one.
	kvs := slices.Clone(l.kvs)
	for _, ev := range fresh {
		i, held := slices.BinarySearchFunc(kvs, ev.Kv.Key, func(kv *mvccpb.KeyValue, k []byte) int { return bytes.Compare(kv.Key, k) })
		switch {
		case ev.Type == clientv3.EventTypeDelete && held:
			kvs = slices.Delete(kvs, i, i+1)
		case ev.Type == clientv3.EventTypeDelete:
		case held:
			kvs[i] = ev.Kv
		default:
			kvs = slices.Insert(kvs, i, ev.Kv)
		}
	}
	if int64(len(kvs)) != count {
		return nil, false
	}
	return kvs, true
}
