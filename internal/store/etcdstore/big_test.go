package etcdstore

import (
	"context"
	"testing"

	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// TestApplyOfTenThousandObjects: the sizes the README promises (5,001 and
// 10,002 objects in one apply) go through as one transaction.
func TestApplyOfTenThousandObjects(t *testing.T) {
	st := startStore(t)
	for _, groups := range []int{1667, 3334} {
		objs := testmanifests.Objects(groups, testmanifests.Options{Net: 100, Port: 8080, Nodes: []string{"node1", "node2"}})
		rs, err := st.Apply(context.Background(), objs, store.ApplyOptions{})
		if err != nil {
			t.Fatalf("apply of %d objects: %v", len(objs), err)
		}
		if len(rs) != len(objs) {
			t.Errorf("apply of %d objects: %d results", len(objs), len(rs))
		}
	}
	snap, err := st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Objects) != 10002 {
		t.Errorf("%d objects stored, want 10002", len(snap.Objects))
	}
}
