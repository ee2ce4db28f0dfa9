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

// TestSlowNodeCutOffNeverServesTwice: every backend call takes 300 ms, as a
// PowerShell step would. The active node is cut off from the store while
// it keeps running and serving: it must fence itself and take its group
// down, and the other node may bring the group up only after the cut-off
// node's lease expired and its published take-down budget passed. The simulator refuses an address
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
			StepLatency: map[string]time.Duration{"": 300 * time.Millisecond},
			Ready: func(_ string, st *etcdstore.Store) error {
				_, err := st.Apply(ctx, objs, store.ApplyOptions{})
				ready <- st
				return err
			}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	st := <-ready
	debugStore = st
	var active, other string
	eventually(t, "served", func() bool { active = servedBy(url); return active != "" })
	other = map[string]string{"node1": "node2", "node2": "node1"}[active]
	var budget time.Duration
	eventually(t, "a take-down budget that counts the slow steps", func() bool {
		known, _ := st.KnownNodes(ctx)
		budget = known[active].TakedownBudget.Duration
		return budget >= 6*300*time.Millisecond // a look (3 calls) and 3 steps at least
	})

	cut := time.Now()
	if err := st.PutSimCommand(ctx, active, store.SimCommand{Powered: true, Partitioned: true, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "served by the other node", func() bool { return servedBy(url) == other })
	took := time.Since(cut)
	// Lease (2 s) plus the budget, less the time since the last renewal.
	if took < 2*time.Second+budget-700*time.Millisecond {
		t.Errorf("%s serves %s after the cut; %s's lease (2s) and budget (%s) cannot both have passed", other, took, active, budget)
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
	t.Logf("%s serves %s after %s was cut off (budget %s)", other, took.Round(time.Millisecond), active, budget)

	// Healed, the cut-off node rejoins as standby: the group stays.
	if err := st.PutSimCommand(ctx, active, store.SimCommand{Powered: true, Seq: 2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "back", func() bool { n, _ := st.Nodes(ctx); _, ok := n[active]; return ok })
	time.Sleep(time.Second) // a reconcile or two after it rejoined
	if by := servedBy(url); by != other {
		t.Errorf("after the heal, served by %q, want %s", by, other)
	}
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }
