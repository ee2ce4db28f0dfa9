package gitops

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore/etcdtest"
)

// countingStore counts the reads of the GitSource specs.
type countingStore struct {
	*etcdstore.Store
	reads atomic.Int32
}

func (s *countingStore) GitSources(ctx context.Context) (map[string]v1alpha1.GitSource, error) {
	s.reads.Add(1)
	return s.Store.GitSources(ctx)
}

// TestRunReadsTheSpecsWhenTheyChangeNotEveryTick: with nothing declared,
// Run reads the specs once, not at each Tick; a GitSource written later
// is fetched and applied within a moment (the store told of it); losing
// and taking back leadership reads them again.
func TestRunReadsTheSpecsWhenTheyChangeNotEveryTick(t *testing.T) {
	st := &countingStore{Store: etcdtest.Start(t, true)}
	var leader atomic.Bool
	leader.Store(true)
	c := &GitSources{Store: st, Node: "node1", Log: logr.Discard(), Tick: 10 * time.Millisecond, IsLeader: leader.Load}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	time.Sleep(500 * time.Millisecond) // 50 ticks
	if n := st.reads.Load(); n != 1 {
		t.Fatalf("%d reads of the specs in 50 ticks with nothing changed, want 1", n)
	}

	rem := newRemote(t)
	commit := rem.commit("one group", map[string]string{"sites/g0.yaml": group(0, 8080)})
	addSource(t, st.Store, v1alpha1.GitSource{Metadata: v1alpha1.ObjectMeta{Name: "sites"}, Spec: v1alpha1.GitSourceSpec{URL: "file://" + rem.bare, Path: "sites", Interval: v1alpha1.Duration{Duration: time.Hour}}})
	waitFor(t, 5*time.Second, func() bool { return sourceRecord(t, st.Store, "sites").Revision == "git:"+commit })

	// Applied, not due for an hour: the specs are read for the health
	// checks (every healthEvery), not at each Tick.
	before := st.reads.Load()
	time.Sleep(time.Second)
	if n := st.reads.Load() - before; n > 1 {
		t.Fatalf("%d reads of the specs in a second with one source applied and nothing due, want at most 1", n)
	}

	leader.Store(false)
	time.Sleep(50 * time.Millisecond)
	before = st.reads.Load()
	leader.Store(true)
	waitFor(t, 2*time.Second, func() bool { return st.reads.Load() > before })
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within %s", d)
		}
	}
}
