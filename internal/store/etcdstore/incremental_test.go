package etcdstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestIncrementalListingMatchesAFullOne changes a prefix under a reader's
// feet in every way a key can change and checks, after each change, that
// the reader's incremental listing is what a full listing says: fed by its
// watch, and, with the watch stopped before each read, from the keys
// changed since.
func TestIncrementalListingMatchesAFullOne(t *testing.T) {
	for _, tt := range []struct {
		name     string
		stopFeed bool
		want     [3]int // reads by feed, by scan, by full list
	}{
		// Deletes too come through the feed: one full list, the first.
		{"fed by the watch", false, [3]int{11, 0, 1}},
		// A scan cannot see a delete: a read after one that leaves the
		// count off is a full list (a key deleted and written again is
		// only a changed value).
		{"without the watch", true, [3]int{0, 7, 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testIncrementalListing(t, tt.stopFeed, tt.want)
		})
	}
}

func testIncrementalListing(t *testing.T, stopFeed bool, want [3]int) {
	reader := startStore(t)
	writer, err := Connect(reader.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	ctx := context.Background()
	const p = prefix + "reports/"
	put := func(k, v string) func() error {
		return func() error { _, err := writer.client.Put(ctx, p+k, v); return err }
	}
	del := func(k string) func() error {
		return func() error { _, err := writer.client.Delete(ctx, p+k); return err }
	}
	steps := []struct {
		name string
		do   []func() error
	}{
		{"empty prefix", nil},
		{"first keys", []func() error{put("b", "1"), put("d", "1")}},
		{"nothing changed", nil},
		{"a value changed", []func() error{put("b", "2")}},
		{"a key added before the others", []func() error{put("a", "1")}},
		{"a key added between", []func() error{put("c", "1")}},
		{"a key deleted", []func() error{del("c")}},
		{"a key deleted and another added", []func() error{del("a"), put("e", "1")}},
		{"a key deleted and added again", []func() error{del("b"), put("b", "3")}},
		{"many at once", []func() error{put("f", "1"), put("g", "1"), put("d", "9"), del("e")}},
		{"everything deleted", []func() error{del("b"), del("d"), del("f"), del("g")}},
		{"back again", []func() error{put("z", "1")}},
	}
	type kv struct {
		Key, Value string
		Mod        int64
	}
	var lastRev int64
	for _, s := range steps {
		for _, do := range s.do {
			if err := do(); err != nil {
				t.Fatal(err)
			}
		}
		if l := reader.listings[p]; stopFeed && l != nil {
			l.feed.stop()
		}
		got, rev, err := reader.listPrefix(ctx, p)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		full, err := writer.client.Get(ctx, p, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		var want, have []kv
		for _, x := range full.Kvs {
			want = append(want, kv{string(x.Key), string(x.Value), x.ModRevision})
		}
		for _, x := range got {
			have = append(have, kv{string(x.Key), string(x.Value), x.ModRevision})
		}
		if diff := cmp.Diff(want, have); diff != "" {
			t.Errorf("%s: incremental listing (-full +incremental):\n%s", s.name, diff)
		}
		if rev < lastRev {
			t.Errorf("%s: listing at revision %d after one at %d", s.name, rev, lastRev)
		}
		lastRev = rev
	}
	if got := reader.listings[p].by; got != want {
		t.Errorf("reads by feed, scan, full list: %v, want %v", got, want)
	}
}

// TestIncrementalListingLeavesReturnedSlicesAlone: a caller still reading
// an earlier listing must not see it change.
func TestIncrementalListingLeavesReturnedSlicesAlone(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	const p = prefix + "reports/"
	for i := range 3 {
		if _, err := st.client.Put(ctx, fmt.Sprintf("%sk%d", p, i), "old"); err != nil {
			t.Fatal(err)
		}
	}
	first, _, err := st.listPrefix(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.client.Put(ctx, p+"k1", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.client.Put(ctx, p+"k0a", "added"); err != nil {
		t.Fatal(err)
	}
	second, _, err := st.listPrefix(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 || string(first[1].Value) != "old" {
		t.Errorf("the first listing changed under its reader: %d keys, k1=%q", len(first), first[1].Value)
	}
	if len(second) != 4 || string(second[1].Key) != p+"k0a" || string(second[2].Value) != "new" {
		t.Errorf("second listing: %v", second)
	}
}

// TestFedListingReadsItsOwnWrites: a read right after a write, with no
// other change to move the watch on, has the write (the progress request
// tells the feed how far the store is).
func TestFedListingReadsItsOwnWrites(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	const p = prefix + "decisions/"
	if _, _, err := st.listPrefix(ctx, p); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		// Writes elsewhere move the store's revision without an event
		// for this prefix.
		if _, err := st.client.Put(ctx, prefix+"reports/x", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.client.Put(ctx, p+"g", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		got, _, err := st.listPrefix(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || string(got[0].Value) != fmt.Sprint(i) {
			t.Fatalf("read %d after writing %q: %v", i, fmt.Sprint(i), got)
		}
		if _, err := st.client.Put(ctx, prefix+"reports/x", "other"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.listPrefix(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if by := st.listings[p].by; by[byScan] != 0 || by[byFullList] != 1 {
		t.Errorf("reads by feed, scan, full list: %v; want every read after the first fed", by)
	}
}
