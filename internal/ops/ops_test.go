package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore/etcdtest"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// The operations run against the real store: their rules (whole-set check,
// ownership, compare-and-swap) are the store's as much as theirs.
func startStore(t *testing.T, objs []v1alpha1.Object, opt store.ApplyOptions) *etcdstore.Store {
	t.Helper()
	st := etcdtest.Start(t, true)
	if _, err := Apply(context.Background(), st, objs, opt); err != nil {
		t.Fatal(err)
	}
	return st
}

func twoGroups() []v1alpha1.Object {
	return testmanifests.Objects(2, testmanifests.Options{Net: 91, Port: 8080, Nodes: []string{"node1", "node2"}})
}

var (
	site0 = v1alpha1.Ref{Kind: "IISSite", Name: "site-0"}
	vip0  = v1alpha1.Ref{Kind: "IPResource", Name: "vip-0"}
	vol0  = v1alpha1.Ref{Kind: "VolumeResource", Name: "vol-0"}
)

func deleting(t *testing.T, st Store) []string {
	t.Helper()
	snap, err := st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range snap.Objects {
		if o.Meta().DeletionTimestamp != nil {
			out = append(out, v1alpha1.RefOf(o).String())
		}
	}
	return out
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name           string
		refs           []v1alpha1.Ref
		ignoreNotFound bool
		wantErr        func(error) bool
		want           []string
	}{
		{"an address a site still uses: refused, nothing marked", []v1alpha1.Ref{vip0}, false,
			func(err error) bool { var be *BreaksSetError; return errors.As(err, &be) }, nil},
		{"the whole group together", []v1alpha1.Ref{site0, vip0, vol0}, false, nil,
			[]string{"IISSite/site-0", "IPResource/vip-0", "VolumeResource/vol-0"}},
		{"a missing name: an error, nothing marked", []v1alpha1.Ref{site0, {Kind: "IISSite", Name: "nope"}}, false,
			func(err error) bool { return errors.Is(err, store.ErrNotFound) }, nil},
		{"a missing name ignored", []v1alpha1.Ref{site0, vip0, vol0, {Kind: "IISSite", Name: "nope"}}, true, nil,
			[]string{"IISSite/site-0", "IPResource/vip-0", "VolumeResource/vol-0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := startStore(t, twoGroups(), store.ApplyOptions{})
			_, err := Delete(ctx, st, tt.refs, tt.ignoreNotFound, false)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != nil && !tt.wantErr(err):
				t.Fatalf("error %v is not the expected kind", err)
			}
			if diff := cmp.Diff(tt.want, deleting(t, st)); diff != "" {
				t.Errorf("being deleted (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeleteOfAnOwnedObjectIsRefused: an object a source owns would come
// back at its next sync: the delete is refused, naming the source, unless
// forced.
func TestDeleteOfAnOwnedObjectIsRefused(t *testing.T) {
	ctx := context.Background()
	st := startStore(t, twoGroups(), store.ApplyOptions{Owner: "site-repo"})
	group := []v1alpha1.Ref{{Kind: "IISSite", Name: "site-0"}, {Kind: "IPResource", Name: "vip-0"}, {Kind: "VolumeResource", Name: "vol-0"}}
	_, err := Delete(ctx, st, group, false, false)
	var oe *OwnedDeleteError
	if !errors.As(err, &oe) || oe.Source != "site-repo" || !strings.Contains(err.Error(), "comes back at the source's next sync") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("delete of owned objects: %v", err)
	}
	if got := deleting(t, st); len(got) != 0 {
		t.Errorf("marked although refused: %v", got)
	}
	if _, err := Delete(ctx, st, group, false, true); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if got := deleting(t, st); len(got) != 3 {
		t.Errorf("forced delete marked %v", got)
	}
}

// withNodes registers nodes (each with a lease of a minute).
func withNodes(t *testing.T, st *etcdstore.Store, nodes ...string) *etcdstore.Store {
	t.Helper()
	for _, n := range nodes {
		if _, err := st.RegisterNode(context.Background(), store.NodeInfo{Name: n}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestSwitchover(t *testing.T) {
	ctx := context.Background()
	t.Run("sets activeNode on the members that declare the placement", func(t *testing.T) {
		st := withNodes(t, startStore(t, twoGroups(), store.ApplyOptions{}), "node1", "node2")
		group, err := Switchover(ctx, st, vip0, "node2", false)
		if err != nil || group != "site-0" {
			t.Fatalf("switchover: %q, %v", group, err)
		}
		o, _ := st.Get(ctx, site0)
		if o.PlacementSpec().ActiveNode != "node2" || o.Meta().Generation != 2 {
			t.Errorf("activeNode %q generation %d, want node2 and a new generation", o.PlacementSpec().ActiveNode, o.Meta().Generation)
		}
	})
	t.Run("a node outside the placement", func(t *testing.T) {
		st := startStore(t, twoGroups(), store.ApplyOptions{})
		var ne *NotInPlacementError
		if _, err := Switchover(ctx, st, site0, "node9", false); !errors.As(err, &ne) {
			t.Fatalf("error %v, want NotInPlacementError", err)
		}
	})
	t.Run("a missing object", func(t *testing.T) {
		st := startStore(t, twoGroups(), store.ApplyOptions{})
		if _, err := Switchover(ctx, st, v1alpha1.Ref{Kind: "IISSite", Name: "nope"}, "node2", false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("error %v, want not found", err)
		}
	})
	t.Run("a node that cannot take the group now: refused, nothing recorded", func(t *testing.T) {
		st := withNodes(t, startStore(t, twoGroups(), store.ApplyOptions{}), "node1")
		var ne *NodeNotReadyError
		if _, err := Switchover(ctx, st, site0, "node2", true); !errors.As(err, &ne) || !strings.Contains(err.Error(), "holds no lease") {
			t.Fatalf("switchover to a node without a lease: %v, want NodeNotReadyError", err)
		}
		withNodes(t, st, "node2")
		if err := st.SetSuspended(ctx, "Node", "node2", true); err != nil {
			t.Fatal(err)
		}
		if _, err := Switchover(ctx, st, site0, "node2", false); !errors.As(err, &ne) || !strings.Contains(err.Error(), "suspended") {
			t.Fatalf("switchover to a suspended node: %v, want NodeNotReadyError", err)
		}
		if o, _ := st.Get(ctx, site0); o.PlacementSpec().ActiveNode != "" {
			t.Fatal("a refused switchover changed the object")
		}
	})
	t.Run("a folder owns the group: refused unless forced", func(t *testing.T) {
		st := withNodes(t, startStore(t, twoGroups(), store.ApplyOptions{Owner: "shop"}), "node1", "node2")
		_, err := Switchover(ctx, st, site0, "node2", false)
		var me *ManagedError
		if !errors.As(err, &me) || me.Source != "shop" || !strings.Contains(err.Error(), "set spec.placement.activeNode: node2") {
			t.Fatalf("error %v, want ManagedError naming source shop and the fix", err)
		}
		if o, _ := st.Get(ctx, site0); o.PlacementSpec().ActiveNode != "" {
			t.Fatal("a refused switchover changed the object")
		}
		if _, err := Switchover(ctx, st, site0, "node2", true); err != nil {
			t.Fatalf("forced: %v", err)
		}
	})
}

func TestSuspendAndClearFailures(t *testing.T) {
	ctx := context.Background()
	st := startStore(t, twoGroups(), store.ApplyOptions{})
	if err := SetSuspended(ctx, st, Target{Kind: "Node", Name: "node1"}, true); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Suspensions(ctx); !s.Node("node1") {
		t.Fatal("node1 not suspended")
	}
	if err := SetSuspended(ctx, st, Target{Kind: "Node", Name: "node1"}, false); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Suspensions(ctx); s.Node("node1") {
		t.Fatal("node1 still suspended")
	}

	if _, cleared, err := ClearFailures(ctx, st, site0); err != nil || cleared {
		t.Fatalf("no decision yet: cleared %t, %v", cleared, err)
	}
	d := store.Decision{Group: "site-0", Active: "node2", Reason: v1alpha1.ReasonFailedOver, Failures: map[string][]time.Time{"node1": {time.Now()}}}
	if err := st.PutDecision(ctx, d, store.LeaderGuard{}); err != nil {
		t.Fatal(err)
	}
	group, cleared, err := ClearFailures(ctx, st, vol0)
	if err != nil || !cleared || group != "site-0" {
		t.Fatalf("clear: %q %t %v", group, cleared, err)
	}
	ds, _ := st.Decisions(ctx)
	if got := ds["site-0"]; len(got.Failures) != 0 || got.Active != "node2" {
		t.Errorf("after clear-failures: %+v", got)
	}
}

// forbidsObjects is an operator's store: it may not change objects.
type forbidsObjects struct{ *etcdstore.Store }

func (forbidsObjects) UpdateSpecs(context.Context, ...v1alpha1.Object) error {
	return fmt.Errorf("update: %w: permission denied", store.ErrForbidden)
}

// An operator's switchover is a request the placement leader carries out,
// checked again then.
func TestOperatorSwitchoverGoesThroughTheLeader(t *testing.T) {
	ctx := context.Background()
	st := withNodes(t, startStore(t, twoGroups(), store.ApplyOptions{}), "node1", "node2")
	op := forbidsObjects{st}
	if _, err := Switchover(ctx, op, site0, "node2", false); err != nil {
		t.Fatalf("an operator's switchover: %v", err)
	}
	if _, err := Switchover(ctx, op, v1alpha1.Ref{Kind: "IISSite", Name: "site-1"}, "node2", false); err != nil {
		t.Fatal(err)
	}
	if o, _ := st.Get(ctx, site0); o.PlacementSpec().ActiveNode == "node2" {
		t.Fatal("the operator's store changed the object itself")
	}
	reqs, err := st.SwitchoverRequests(ctx)
	if err != nil || len(reqs) != 2 || reqs["site-0"].To != "node2" {
		t.Fatalf("requests %+v, %v", reqs, err)
	}
	// Meanwhile node2 is suspended: neither request holds any more, and
	// the leader checks again.
	if err := st.SetSuspended(ctx, "Node", "node2", true); err != nil {
		t.Fatal(err)
	}
	if err := CarryOutSwitchovers(ctx, st); err != nil {
		t.Fatal(err)
	}
	if o, _ := st.Get(ctx, site0); o.PlacementSpec().ActiveNode == "node2" {
		t.Fatal("a switchover to a node suspended since was made")
	}
	if reqs, _ := st.SwitchoverRequests(ctx); len(reqs) != 0 {
		t.Fatalf("refused requests kept: %+v", reqs)
	}
	evs, _, _ := st.Events(ctx)
	refused := 0
	for _, e := range evs {
		if e.Reason == v1alpha1.EventSwitchoverRefused && strings.Contains(e.Message, "suspended") {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("%d SwitchoverRefused events, want 2: %+v", refused, evs)
	}
	// And once it holds, the leader makes it.
	if err := st.SetSuspended(ctx, "Node", "node2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := Switchover(ctx, op, site0, "node2", false); err != nil {
		t.Fatal(err)
	}
	if err := CarryOutSwitchovers(ctx, st); err != nil {
		t.Fatal(err)
	}
	if o, _ := st.Get(ctx, site0); o.PlacementSpec().ActiveNode != "node2" || o.Meta().Annotations[v1alpha1.AnnotationSwitchover] == "" {
		t.Fatalf("the leader did not make the switchover: activeNode %q", o.PlacementSpec().ActiveNode)
	}
}
