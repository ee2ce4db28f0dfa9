package etcdstore

import (
	"context"
	"testing"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/store"
)

func TestChangesSignalsAndStaysOpen(t *testing.T) {
	st := startStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := st.Changes(ctx, store.FamilyObjects)
	if _, err := st.client.Put(ctx, "/sitekeeper/objects/IISSite/x", "{}"); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatal("closed instead of signalling")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no signal for a change")
	}
	if _, err := st.client.Put(ctx, "/sitekeeper/events/x", "{}"); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		t.Fatalf("signal (open=%v) for a key outside the watched families", ok)
	case <-time.After(300 * time.Millisecond):
	}
}
