package etcdstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/store"
)

// TestCampaign: the first candidate leads; a second waits; when the first
// resigns the second leads at once, and the first's guard no longer lets it
// write a decision.
func TestCampaign(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	first, err := st.Campaign(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	won := make(chan store.Leadership, 1)
	go func() {
		l, err := st.Campaign(ctx, "node2")
		if err != nil {
			t.Error(err)
			return
		}
		won <- l
	}()
	select {
	case <-won:
		t.Fatal("a second candidate led while the first did")
	case <-time.After(600 * time.Millisecond):
	}
	if err := st.PutDecision(ctx, store.Decision{Group: "g", Active: "node1"}, first.Guard()); err != nil {
		t.Fatalf("the leader could not write: %v", err)
	}
	resigned := time.Now()
	first.Close()
	var second store.Leadership
	select {
	case second = <-won:
	case <-time.After(2 * time.Second):
		t.Fatal("the second candidate did not lead after the first resigned")
	}
	if took := time.Since(resigned); took > time.Second {
		t.Errorf("took %s to lead after a resignation", took)
	}
	ds, _ := st.Decisions(ctx)
	d := ds["g"]
	d.Active = "node9"
	if err := st.PutDecision(ctx, d, first.Guard()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a deposed leader wrote: %v", err)
	}
	if err := st.PutDecision(ctx, d, second.Guard()); err != nil {
		t.Errorf("the new leader could not write: %v", err)
	}
	second.Close()
}

// TestAbandonedTermPassesOnWhenItsLeaseExpires: a leader cut off (it stops
// renewing, resigns nothing) is replaced once its lease expired.
func TestAbandonedTermPassesOnWhenItsLeaseExpires(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	first, err := st.Campaign(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	first.(interface{ Abandon() }).Abandon()
	cut := time.Now()
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	second, err := st.Campaign(ctx2, "node2")
	if err != nil {
		t.Fatalf("no new leader after the old term's lease: %v", err)
	}
	if took := time.Since(cut); took < time.Second {
		t.Errorf("led %s after an abandoned term began to lapse; its lease is %s", took, electionTTL)
	}
	second.Close()
}
