package plan_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/plan"
)

// groupNode is a fake node that also runs a group's steps as one call,
// as the Windows backend does with its PowerShell host; it records each
// call's actions.
type groupNode struct {
	*fake.Node
	calls [][]string
}

func (g *groupNode) RunGroup(ctx context.Context, ops []backend.GroupOp) (int, error) {
	var actions []string
	for _, op := range ops {
		actions = append(actions, op.Action)
	}
	g.calls = append(g.calls, actions)
	for k, op := range ops {
		s := plan.Step{Action: plan.Action(op.Action), SiteName: op.Site, Address: op.Address, Volume: op.Volume}
		if err := plan.Execute(ctx, g.Node, s); err != nil {
			return k, err
		}
	}
	return len(ops), nil
}

// TestGroupRunnerTakesABringUpInOneCall: on a GroupRunner, a group's
// bring-up (volume, address, start) is one call after the site's
// creation, and its take-down one call; a failure part way reports the
// steps that ran as done and the failing one with its error.
func TestGroupRunnerTakesABringUpInOneCall(t *testing.T) {
	objs := load(t)
	d := desired(t, objs, "node1")
	n := &groupNode{Node: fake.New()}
	var reported []string
	done := func(s plan.Step, err error) {
		r := string(s.Action)
		if err != nil {
			r += " failed"
		}
		reported = append(reported, r)
	}
	up := plan.Compute(d, observe(t, "node1", n.Node))
	if err := plan.ExecuteAll(context.Background(), n, up, done); err != nil {
		t.Fatal(err)
	}
	// VolumeOnline and AddAddress come before CreateSite, StartSite after.
	want := [][]string{{"VolumeOnline", "AddAddress"}}
	if diff := cmp.Diff(want, n.calls); diff != "" {
		t.Errorf("bring-up calls (-want +got):\n%s", diff)
	}

	d2 := desired(t, objs, "node2")
	down := plan.Compute(d2, observe(t, "node1", n.Node))
	n.calls, reported = nil, nil
	n.Fail["RemoveAddress"] = backend.ErrAddressInUse
	err := plan.ExecuteAll(context.Background(), n, down, done)
	if !errors.Is(err, backend.ErrAddressInUse) {
		t.Fatalf("take-down: %v, want the address error", err)
	}
	if diff := cmp.Diff([][]string{{"StopSite", "RemoveAddress", "VolumeOffline"}}, n.calls); diff != "" {
		t.Errorf("take-down calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"StopSite", "RemoveAddress failed"}, reported); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}

	// A failover onto a standby that has the site (created stopped): the
	// whole bring-up is one call.
	standby := &groupNode{Node: fake.New()}
	if err := plan.ExecuteAll(context.Background(), standby, plan.Compute(d, observe(t, "node2", standby.Node)), nil); err != nil {
		t.Fatal(err)
	}
	standby.calls = nil
	if err := plan.ExecuteAll(context.Background(), standby, plan.Compute(d2, observe(t, "node2", standby.Node)), nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"VolumeOnline", "AddAddress", "StartSite"}}, standby.calls); diff != "" {
		t.Errorf("failover bring-up calls (-want +got):\n%s", diff)
	}
}
