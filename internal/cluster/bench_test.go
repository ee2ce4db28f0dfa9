package cluster

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore/etcdtest"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// sites returns n groups (site, address, volume) placed on nodes.
func sites(n int, nodes string, hostSuffix string) []v1alpha1.Object {
	return testmanifests.Objects(n, testmanifests.Options{Net: 3, Port: 38080, HostNames: true, HostSuffix: hostSuffix,
		Nodes: strings.Split(nodes, ", "), Health: "{interval: 2s, timeout: 1s}", MaxFailures: 1000})
}

// BenchmarkApply1000: one apply of 1,002 objects (334 groups) into an empty
// store with fsync on, as `sitekeeper apply` does it.
func BenchmarkApply1000(b *testing.B) {
	objs := sites(334, "node1, node2", "") // 1,002 objects
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := etcdtest.Start(b, false)
		b.StartTimer()
		if _, err := st.Apply(context.Background(), objs, store.ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

type local struct {
	st     *etcdstore.Store
	cancel context.CancelFunc
	done   chan struct{}
}

func startLocal(b *testing.B, nodes []string, objs []v1alpha1.Object) *local {
	ctx, cancel := context.WithCancel(context.Background())
	l := &local{cancel: cancel, done: make(chan struct{})}
	ready := make(chan *etcdstore.Store, 1)
	go func() {
		defer close(l.done)
		err := RunLocal(ctx, LocalOptions{DataDir: b.TempDir(), Nodes: nodes, Fast: true, Log: logr.Discard(),
			Ready: func(_ string, st *etcdstore.Store) error {
				if _, err := st.Apply(ctx, objs, store.ApplyOptions{}); err != nil {
					return err
				}
				ready <- st
				return nil
			}})
		if err != nil && ctx.Err() == nil {
			b.Error(err)
		}
	}()
	select {
	case l.st = <-ready:
	case <-time.After(60 * time.Second):
		b.Fatal("cluster did not start")
	}
	return l
}

// stop ends the cluster; a benchmark function runs more than once, and the
// next run needs the addresses back.
func (l *local) stop() {
	l.cancel()
	<-l.done
}

func waitUntil(b *testing.B, timeout time.Duration, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func report(b *testing.B, st *etcdstore.Store, group, node string) store.Report {
	r, _ := st.GroupReports(context.Background(), group)
	return r[node]
}

func p50(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// BenchmarkOneFieldChange1000: with 1,000 sites converged on one node, the
// time from applying a host-name change of one site to that node reporting
// the new generation converged. Reports the median as p50-ms.
func BenchmarkOneFieldChange1000(b *testing.B) {
	objs := sites(1000, "node1", "")
	l := startLocal(b, []string{"node1"}, objs)
	defer l.stop()
	ctx := context.Background()
	waitUntil(b, 120*time.Second, func() bool {
		return report(b, l.st, "site-999", "node1").Generations["IISSite/site-999"] == 1
	})
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		site := v1alpha1.DeepCopy(objs[3*(i%1000)+2]).(*v1alpha1.IISSite)
		site.Spec.Bindings[0].HostName = fmt.Sprintf("changed%d.example.com", i)
		group := site.Metadata.Name
		start := time.Now()
		rs, err := l.st.Apply(ctx, []v1alpha1.Object{site}, store.ApplyOptions{})
		if err != nil {
			b.Fatal(err)
		}
		gen := rs[0].Generation
		waitUntil(b, 30*time.Second, func() bool {
			return report(b, l.st, group, "node1").Generations["IISSite/"+group] == gen
		})
		lat = append(lat, time.Since(start))
	}
	b.ReportMetric(float64(p50(lat).Microseconds())/1000, "p50-ms")
}

// BenchmarkFailover: the time from `fail-node` of the active node to the
// site answering HTTP from the standby, lease TTL 2 s; the nodes take turns
// failing, so maxFailures is raised above the run count. Reports the median.
func BenchmarkFailover(b *testing.B) {
	objs := sites(1, "node1, node2", "")
	l := startLocal(b, []string{"node1", "node2"}, objs)
	defer l.stop()
	ctx := context.Background()
	client := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	servedBy := func(node string) bool {
		req, _ := http.NewRequest("GET", "http://127.3.0.1:38080/", nil)
		req.Host = "s0"
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200 && resp.Header.Get("X-Sitekeeper-Node") == node
	}
	active := "node1"
	waitUntil(b, 30*time.Second, func() bool { return servedBy(active) })
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		other := map[string]string{"node1": "node2", "node2": "node1"}[active]
		start := time.Now()
		if err := l.st.PutSimCommand(ctx, active, store.SimCommand{Powered: false, Seq: int64(i)}); err != nil {
			b.Fatal(err)
		}
		waitUntil(b, 10*time.Second, func() bool { return servedBy(other) })
		lat = append(lat, time.Since(start))
		b.StopTimer()
		if err := l.st.PutSimCommand(ctx, active, store.SimCommand{Powered: true, Seq: int64(i)}); err != nil {
			b.Fatal(err)
		}
		nodes, _ := l.st.Nodes(ctx)
		for len(nodes) < 2 {
			time.Sleep(20 * time.Millisecond)
			nodes, _ = l.st.Nodes(ctx)
		}
		active = other
		b.StartTimer()
	}
	b.ReportMetric(float64(p50(lat).Microseconds())/1000, "p50-ms")
}
