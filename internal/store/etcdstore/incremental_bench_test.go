package etcdstore

import (
	"context"
	"fmt"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkListPrefix reads a prefix of n keys (1 KiB each) after ten of
// them changed, as a pass does: fed by the watch, or scanned (the store
// reads every key of the prefix to find the changed ones), or listed in
// full. CPU is the client's and the store member's together (one
// process).
//
//	go test -run XXX -bench ListPrefix ./internal/store/etcdstore
func BenchmarkListPrefix(b *testing.B) {
	for _, n := range []int{100, 1000, 15000} {
		for _, way := range []string{"feed", "scan", "full"} {
			b.Run(fmt.Sprintf("keys=%d/%s", n, way), func(b *testing.B) {
				st := startStore(b)
				ctx := context.Background()
				const p = prefix + "objects/"
				value := strings.Repeat("x", 1024)
				for i := 0; i < n; i += 128 {
					var ops []clientv3.Op
					for j := i; j < min(n, i+128); j++ {
						ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sk%05d", p, j), value))
					}
					if _, err := st.client.Txn(ctx).Then(ops...).Commit(); err != nil {
						b.Fatal(err)
					}
				}
				if _, _, err := st.listPrefix(ctx, p); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := range b.N {
					var ops []clientv3.Op
					for j := range 10 {
						ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sk%05d", p, (i*10+j)%n), value+fmt.Sprint(i)))
					}
					if _, err := st.client.Txn(ctx).Then(ops...).Commit(); err != nil {
						b.Fatal(err)
					}
					switch way {
					case "full":
						st.listings[p].kvs = nil
					case "scan":
						b.StopTimer()
						st.listings[p].feed.stop() // a scan starts another
						b.StartTimer()
					}
					kvs, _, err := st.listPrefix(ctx, p)
					if err != nil || len(kvs) != n {
						b.Fatalf("%d keys, %v", len(kvs), err)
					}
				}
				b.StopTimer()
				want := map[string]int{"feed": byFeed, "scan": byScan, "full": byFullList}[way]
				if by := st.listings[p].by; by[want] < b.N {
					b.Fatalf("reads by feed, scan, full list: %v; want %d by %s", by, b.N, way)
				}
			})
		}
	}
}
