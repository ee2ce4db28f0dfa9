package gitops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore/etcdtest"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// group is generated group i with its site on port.
func group(i, port int) string {
	return testmanifests.Group(i, testmanifests.Options{Net: 4, Port: int32(port), Nodes: []string{"node1", "node2"}})
}

// BenchmarkFolderChange1000: with 1,002 objects in a watched folder (one
// file per group), the time from a file saved to its change set applied in
// the store, debounce included. Reports the median as p50-ms.
func BenchmarkFolderChange1000(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < 334; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("g%03d.yaml", i)), []byte(group(i, 8080)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	st := etcdtest.Start(b, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r := &Reconciler{Store: st, Node: "node1", Log: logr.Discard(), Source: Source{Name: "bench", Dir: dir, Prune: true, Resync: time.Hour}}
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	port := func(i int) int32 {
		o, err := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: fmt.Sprintf("site-%d", i)})
		if err != nil {
			return 0
		}
		return o.(*v1alpha1.IISSite).Spec.Bindings[0].Port
	}
	wait := func(i int, want int32) {
		deadline := time.Now().Add(30 * time.Second)
		for port(i) != want {
			if time.Now().After(deadline) {
				b.Fatalf("site-%d never reached port %d", i, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	wait(333, 8080)
	var lat []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		i := n % 334
		p := 9000 + n
		start := time.Now()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("g%03d.yaml", i)), []byte(group(i, p)), 0o644); err != nil {
			b.Fatal(err)
		}
		wait(i, int32(p))
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}
