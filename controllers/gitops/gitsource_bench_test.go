package gitops

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore/etcdtest"
)

// BenchmarkCommitToApplied: a source fetched every second, the controller
// running as on a leader; each op is a commit pushed to a local bare
// repository at a random moment, and the time from the push until the
// source's record says that commit is applied. Reports the median and the
// slowest: the wait for the next fetch (up to the interval) is most of it.
// The repository holds 1, 100 or 1,000 groups (one file each); each push
// changes one of them.
func BenchmarkCommitToApplied(b *testing.B) {
	for _, groups := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) { commitToApplied(b, groups) })
	}
}

func commitToApplied(b *testing.B, groups int) {
	st := etcdtest.Start(b, true)
	rem := newRemoteTB(b)
	files := map[string]string{}
	for i := 0; i < groups; i++ {
		files[fmt.Sprintf("g%04d.yaml", i)] = group(i, 8000)
	}
	first := rem.commit("first", files)
	addSource(b, st, v1alpha1.GitSource{Metadata: v1alpha1.ObjectMeta{Name: "s"}, Spec: v1alpha1.GitSourceSpec{URL: "file://" + rem.bare, Interval: v1alpha1.Duration{Duration: time.Second}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &GitSources{Store: st, Node: "node1", Log: logr.Discard()}
	go c.Run(ctx) //nolint:errcheck // ends with ctx
	for {         // the first apply of the whole repository is not what is measured
		if src, _, _ := st.Source(ctx, "s"); src.Revision == "git:"+first {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Pushes come at any moment of the interval, not just after a fetch.
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
		commit := rem.commit(fmt.Sprint(i), map[string]string{"g0000.yaml": group(0, 8001+i%1000)})
		start := time.Now()
		b.StartTimer()
		for {
			src, _, err := st.Source(ctx, "s")
			if err != nil {
				b.Fatal(err)
			}
			if src.Revision == "git:"+commit {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(took[len(took)/2].Seconds(), "p50-s")
	b.ReportMetric(took[len(took)-1].Seconds(), "max-s")
}

// BenchmarkFetchAndApply: a repository of N groups (three objects each,
// one file per group) fetched into an empty store and applied, by a new
// leader that has fetched nothing before.
func BenchmarkFetchAndApply(b *testing.B) {
	for _, groups := range []int{1, 100, 1667} {
		b.Run(fmt.Sprintf("objects=%d", groups*3), func(b *testing.B) {
			rem := newRemoteTB(b)
			files := map[string]string{}
			for i := 0; i < groups; i++ {
				files[fmt.Sprintf("sites/g%04d.yaml", i)] = group(i, 8080)
			}
			rem.commit("all", files)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				st := etcdtest.Start(b, true)
				addSource(b, st, v1alpha1.GitSource{Metadata: v1alpha1.ObjectMeta{Name: "s"}, Spec: v1alpha1.GitSourceSpec{URL: "file://" + rem.bare, Path: "sites"}})
				c := &GitSources{Store: st, Node: "node1", Log: logr.Discard()}
				b.StartTimer()
				if err := c.Pass(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if src := sourceRecord(b, st, "s"); len(src.Inventory) != groups*3 {
					b.Fatalf("%d objects applied, want %d", len(src.Inventory), groups*3)
				}
			}
		})
	}
}
