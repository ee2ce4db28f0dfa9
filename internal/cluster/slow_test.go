package cluster

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

func freePort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// servedBy is the node whose simulated IIS answers url ("" when none).
func servedBy(url string) string {
	c := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ""
	}
	return resp.Header.Get("X-Sitekeeper-Node")
}

// TestSlowNodeCutOffNeverServesTwice: node1's every backend call takes
// 300 ms, as a PowerShell step would. It is cut off from the store while it
// keeps running and serving: it must fence itself and take its group down,
// and node2 may bring the group up only after node1's lease expired and its
// published take-down budget passed. The simulator refuses an address
// another powered node still holds, so a premature take-over would be a
// StepFailed event; there must be none, and the group must end on node2.
func TestSlowNodeCutOffNeverServesTwice(t *testing.T) {
	port := freePort(t)
	objs := testmanifests.Objects(1, testmanifests.Options{Net: 62, Port: port, Nodes: []string{"node1", "node2"}})
	url := "http://127.62.0.1:" + itoa(port) + "/"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *etcdstore.Store, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = RunLocal(ctx, LocalOptions{DataDir: t.TempDir(), Nodes: []string{"node1", "node2"}, Fast: true, Log: logr.Discard(),
			StepLatency: map[string]time.Duration{"node1": 300 * time.Millisecond},
			Ready: func(_ string, st *etcdstore.Store) error {
				_, err := st.Apply(ctx, objs, store.ApplyOptions{})
				ready <- st
				return err
			}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	st := <-ready
	debugStore = st
	eventually(t, "served by node1", func() bool { return servedBy(url) == "node1" })
	var budget time.Duration
	eventually(t, "node1 published a take-down budget that counts its slow steps", func() bool {
		known, _ := st.KnownNodes(ctx)
		budget = known["node1"].TakedownBudget.Duration
		return budget >= 6*300*time.Millisecond // a look (3 calls) and 3 steps at least
	})

	cut := time.Now()
	if err := st.PutSimCommand(ctx, "node1", store.SimCommand{Powered: true, Partitioned: true, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "served by node2", func() bool { return servedBy(url) == "node2" })
	took := time.Since(cut)
	// Lease (2 s) plus the budget, less the time since the last renewal.
	if took < 2*time.Second+budget-700*time.Millisecond {
		t.Errorf("node2 serves %s after the cut; node1's lease (2s) and budget (%s) cannot both have passed", took, budget)
	}
	events, _, err := st.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var failedOver string
	for _, e := range events {
		if e.Reason == "StepFailed" {
			t.Errorf("a step failed during the take-over: %s %s %s", e.Node, e.Object, e.Message)
		}
		if e.Reason == "FailedOver" {
			failedOver = e.Message
		}
	}
	if !strings.Contains(failedOver, "take-down budget") {
		t.Errorf("the failover does not say it waited for the budget: %q", failedOver)
	}
	t.Logf("node2 serves %s after node1 was cut off (budget %s)", took.Round(time.Millisecond), budget)

	// Healed, node1 rejoins as standby: the group stays on node2.
	if err := st.PutSimCommand(ctx, "node1", store.SimCommand{Powered: true, Seq: 2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node1 back", func() bool { n, _ := st.Nodes(ctx); _, ok := n["node1"]; return ok })
	time.Sleep(time.Second) // a reconcile or two of node1 after it rejoined
	if by := servedBy(url); by != "node2" {
		t.Errorf("after the heal, served by %q, want node2", by)
	}
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }
