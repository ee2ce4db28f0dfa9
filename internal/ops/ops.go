// Package ops holds the operations users ask of a cluster — apply, delete,
// switchover, suspend and resume, clear-failures, and the simulator's fault
// injection — with their rules (delete's whole-set check, switchover's
// ownership rule). The CLI calls them, and an HTTP API or a dashboard can
// call them unchanged: they take typed arguments, return typed results and
// errors, and print nothing.
package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/diag"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// Store is what the operations read and write.
type Store interface {
	List(ctx context.Context) (store.Snapshot, error)
	Get(ctx context.Context, ref v1alpha1.Ref) (v1alpha1.Object, error)
	Apply(ctx context.Context, objs []v1alpha1.Object, opt store.ApplyOptions) ([]store.ApplyResult, error)
	MarkDeleted(ctx context.Context, ref v1alpha1.Ref) error
	UpdateSpecs(ctx context.Context, objs ...v1alpha1.Object) error
	Decisions(ctx context.Context) (map[string]store.Decision, error)
	PutDecision(ctx context.Context, d store.Decision, guard store.LeaderGuard) error
	GroupReports(ctx context.Context, group string) (map[string]store.Report, error)
	SetSuspended(ctx context.Context, kind, name string, on bool) error
	Source(ctx context.Context, name string) (store.Source, bool, error)
	PutSimCommand(ctx context.Context, node string, c store.SimCommand) error
	SimCommands(ctx context.Context) (map[string]store.SimCommand, error)
	Event(ctx context.Context, e store.Event)
	Nodes(ctx context.Context) (map[string]store.NodeInfo, error)
	Suspensions(ctx context.Context) (store.Suspensions, error)
	PutSwitchoverRequest(ctx context.Context, r store.SwitchoverRequest) error
	SwitchoverRequests(ctx context.Context) (map[string]store.SwitchoverRequest, error)
	DeleteSwitchoverRequest(ctx context.Context, r store.SwitchoverRequest) error
	SetDrain(ctx context.Context, node string, parallel int) error
}

// Component names the operations in events.
const Component = "cli"

// Apply creates or updates objs as one transaction (store.Apply: the whole
// resulting set is validated first, nothing partial).
func Apply(ctx context.Context, st Store, objs []v1alpha1.Object, opt store.ApplyOptions) ([]store.ApplyResult, error) {
	return st.Apply(ctx, objs, opt)
}

// BreaksSetError is a delete that would leave the other objects invalid.
type BreaksSetError struct{ Errors diag.List }

func (e *BreaksSetError) Error() string {
	return e.Errors.Error() + "\ndeleting these would leave the objects above invalid; delete them together or fix them first"
}

// Delete starts the two-phase delete of refs (nodes take them out of
// service, then the leader removes them), after checking that the objects
// that stay are still a valid set; nothing is marked when they would not be.
// With ignoreNotFound, refs that do not exist are skipped; otherwise the
// first missing one is an error and nothing is deleted.
func Delete(ctx context.Context, st Store, refs []v1alpha1.Ref, ignoreNotFound, force bool) ([]v1alpha1.Ref, error) {
	snap, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	stored := map[v1alpha1.Ref]bool{}
	owner := map[v1alpha1.Ref]string{}
	for _, o := range snap.Objects {
		stored[v1alpha1.RefOf(o)] = true
		owner[v1alpha1.RefOf(o)] = o.Meta().Annotations[v1alpha1.AnnotationSource]
	}
	if !force {
		for _, r := range refs {
			if src := owner[r]; src != "" {
				return nil, &OwnedDeleteError{Ref: r, Source: src, File: sourceFile(ctx, st, src, r)}
			}
		}
	}
	var found []v1alpha1.Ref
	gone := map[v1alpha1.Ref]bool{}
	for _, r := range refs {
		if !stored[r] {
			if ignoreNotFound {
				continue
			}
			return nil, fmt.Errorf("%s: %w", r, store.ErrNotFound)
		}
		gone[r] = true
		found = append(found, r)
	}
	var rest []v1alpha1.Object
	for _, o := range snap.Objects {
		if !gone[v1alpha1.RefOf(o)] && o.Meta().DeletionTimestamp == nil {
			rest = append(rest, o)
		}
	}
	if errs := validation.Validate(rest).Errors; len(errs) > 0 {
		return nil, &BreaksSetError{Errors: errs}
	}
	for _, r := range found {
		if err := st.MarkDeleted(ctx, r); err != nil {
			return nil, fmt.Errorf("delete %s: %w", r, err)
		}
	}
	return found, nil
}

// Deleted reports whether every ref is gone from the store.
func Deleted(ctx context.Context, st Store, refs []v1alpha1.Ref) (bool, error) {
	for _, r := range refs {
		if _, err := st.Get(ctx, r); err == nil {
			return false, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
	}
	return true, nil
}

// ManagedError is a switchover of a group whose placement a manifest folder
// owns: its next change set would move the group back.
type ManagedError struct {
	Ref    v1alpha1.Ref
	Source string
	// File is where the placement is written ("" when unknown).
	File string
	To   string
}

func (e *ManagedError) Error() string {
	return fmt.Sprintf("%s is managed by source %s; commit this change instead (or pass --force):\n  %s", e.Ref, e.Source, e.CommitLine())
}

// CommitLine is the change to commit in the source instead.
func (e *ManagedError) CommitLine() string {
	file := e.File
	if file == "" {
		file = "-"
	}
	return fmt.Sprintf("%s: %s: set spec.placement.activeNode: %s", file, e.Ref, e.To)
}

// OwnedDeleteError is a delete of an object a source owns: it would come
// back at the source's next sync.
type OwnedDeleteError struct {
	Ref    v1alpha1.Ref
	Source string
	File   string // where the source holds it ("" when unknown)
}

func (e *OwnedDeleteError) Error() string {
	where := ""
	if e.File != "" {
		where = " (" + e.File + ")"
	}
	return fmt.Sprintf("%s is managed by source %s%s: deleted here, it comes back at the source's next sync; remove it from the source and commit, or pass --force to delete it until then", e.Ref, e.Source, where)
}

// NotInPlacementError is a switchover to a node the group may not run on.
type NotInPlacementError struct {
	Group, Node string
	Nodes       []string
}

func (e *NotInPlacementError) Error() string {
	return fmt.Sprintf("%s is not in the placement of group %s (%s); add it to placement.nodes first", e.Node, e.Group, strings.Join(e.Nodes, ", "))
}

// NodeNotReadyError is a switchover to a node that cannot take the group
// now. Sitekeeper refuses it rather than record a request it cannot carry
// out: a recorded activeNode on a down node would leave the spec saying one
// thing and the group doing another.
type NodeNotReadyError struct {
	Group, Node string
	// State says why: no lease, suspended, or unsafe with the reason.
	State string
}

func (e *NodeNotReadyError) Error() string {
	return fmt.Sprintf("switch group %s over to %s: %s is %s; a switchover goes only to a node that can take the group now: wait until `sitekeeper get nodes` shows it Ready and Healthy, then run it again", e.Group, e.Node, e.Node, e.State)
}

// canTakeOver checks that node holds a lease, is not suspended and did not
// report itself unsafe.
func canTakeOver(ctx context.Context, st Store, group, node string) error {
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("read the nodes: %w", err)
	}
	var info store.NodeInfo
	found := false
	for n, i := range nodes {
		if strings.EqualFold(n, node) {
			info, found = i, true
		}
	}
	if !found {
		return &NodeNotReadyError{Group: group, Node: node, State: "not Ready (it holds no lease: down, cut off, or never started)"}
	}
	if info.Unsafe != "" {
		return &NodeNotReadyError{Group: group, Node: node, State: "unsafe (" + info.Unsafe + ")"}
	}
	sus, err := st.Suspensions(ctx)
	if err != nil {
		return fmt.Errorf("read the suspensions: %w", err)
	}
	if sus.Node(node) {
		return &NodeNotReadyError{Group: group, Node: node, State: "suspended (`sitekeeper resume --node " + node + "` ends it)"}
	}
	return nil
}

// liveGraph is the graph of the objects not being deleted.
func liveGraph(objs []v1alpha1.Object) *graph.Graph {
	var live []v1alpha1.Object
	for _, o := range objs {
		if o.Meta().DeletionTimestamp == nil {
			live = append(live, v1alpha1.DeepCopy(o))
		}
	}
	return graph.Of(live)
}

// groupOf finds the resource group of ref among the live objects.
func groupOf(ctx context.Context, st Store, ref v1alpha1.Ref) (*graph.Graph, *graph.Group, error) {
	snap, err := st.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	g := liveGraph(snap.Objects)
	grp, ok := g.GroupOf(ref)
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w", ref, store.ErrNotFound)
	}
	return g, grp, nil
}

// Switchover asks for the group of ref to move to node `to`: it sets
// placement.activeNode on the members that declare the placement (a new
// generation). A group a manifest folder owns is refused with a
// *ManagedError unless force is set. It returns the group's name.
func Switchover(ctx context.Context, st Store, ref v1alpha1.Ref, to string, force bool) (string, error) {
	group, changed, err := switchoverChanges(ctx, st, ref, to, force)
	if err != nil {
		return "", err
	}
	err = st.UpdateSpecs(ctx, changed...)
	if errors.Is(err, store.ErrForbidden) {
		// An operator may move groups but not change objects: the
		// placement leader makes the change on their behalf.
		err = st.PutSwitchoverRequest(ctx, store.SwitchoverRequest{Group: group, Member: ref.String(), To: to, Force: force})
	}
	if err != nil {
		return "", fmt.Errorf("switch group %s over to %s: %w", group, to, err)
	}
	st.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventSwitchoverRequested, Object: "group/" + group, Message: "switchover to " + to + " requested", Component: Component})
	return group, nil
}

// CarryOutSwitchovers makes the switchovers operators asked for (the
// placement leader's part: its role may change objects). Each is checked
// again as the operator's was; one that no longer holds (the node went
// down meanwhile) is refused with a Warning event naming who asked.
func CarryOutSwitchovers(ctx context.Context, st Store) error {
	reqs, err := st.SwitchoverRequests(ctx)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		kind, name, _ := strings.Cut(r.Member, "/")
		_, changed, err := switchoverChanges(ctx, st, v1alpha1.Ref{Kind: kind, Name: name}, r.To, r.Force)
		if err == nil {
			err = st.UpdateSpecs(ctx, changed...)
		}
		if errors.Is(err, store.ErrConflict) {
			continue // the object changed meanwhile: tried again with a fresh read
		}
		if err != nil {
			st.Event(ctx, store.Event{Type: store.Warning, Reason: v1alpha1.EventSwitchoverRefused, Object: "group/" + r.Group, By: r.By, Component: Component,
				Message: fmt.Sprintf("switchover to %s not made: %v", r.To, err)})
		}
		if err := st.DeleteSwitchoverRequest(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// switchoverChanges checks a switchover of ref's group to `to` and returns
// the group and its members with placement.activeNode set to `to`.
func switchoverChanges(ctx context.Context, st Store, ref v1alpha1.Ref, to string, force bool) (string, []v1alpha1.Object, error) {
	g, grp, err := groupOf(ctx, st, ref)
	if err != nil {
		return "", nil, err
	}
	if !containsFold(grp.Placement.Nodes, to) {
		return "", nil, &NotInPlacementError{Group: grp.Name, Node: to, Nodes: grp.Placement.Nodes}
	}
	var changed []v1alpha1.Object
	for _, m := range grp.Members {
		o := g.Object(m)
		if o == nil || o.PlacementSpec().IsZero() {
			continue
		}
		if src := o.Meta().Annotations[v1alpha1.AnnotationSource]; src != "" && !force {
			return "", nil, &ManagedError{Ref: m, Source: src, File: sourceFile(ctx, st, src, m), To: to}
		}
		c := v1alpha1.DeepCopy(o)
		c.PlacementSpec().ActiveNode = to
		if c.Meta().Annotations == nil {
			c.Meta().Annotations = map[string]string{}
		}
		// A request of its own, even when activeNode already names `to`
		// (the group failed over away from it).
		c.Meta().Annotations[v1alpha1.AnnotationSwitchover] = time.Now().UTC().Format(time.RFC3339Nano)
		changed = append(changed, c)
	}
	if err := canTakeOver(ctx, st, grp.Name, to); err != nil {
		return "", nil, err
	}
	return grp.Name, changed, nil
}

// sourceFile is the file of source src that holds m, as its folder path.
func sourceFile(ctx context.Context, st Store, src string, m v1alpha1.Ref) string {
	s, ok, err := st.Source(ctx, src)
	if err != nil || !ok {
		return ""
	}
	for _, e := range s.Inventory {
		if e.Ref == m.String() {
			return s.Path + "/" + e.File
		}
	}
	return ""
}

// SwitchoverPhase says where a switchover of group to node `to` stands, in
// words for a person waiting on it, and whether it is done.
func SwitchoverPhase(ctx context.Context, st Store, group, to string) (string, bool, error) {
	ds, err := st.Decisions(ctx)
	if err != nil {
		return "", false, err
	}
	reports, err := st.GroupReports(ctx, group)
	if err != nil {
		return "", false, err
	}
	d, rep := ds[group], reports[to]
	switch {
	case d.Target != "" && d.Releasing != "":
		return fmt.Sprintf("stopping on %s (waiting for it to release the group)", d.Releasing), false, nil
	case !strings.EqualFold(d.Active, to):
		return fmt.Sprintf("waiting for the placement leader (the group is on %s)", orNone(d.Active)), false, nil
	case !rep.Active || rep.Phase != store.PhaseConverged:
		phase := "bringing up on " + to
		if rep.Phase == store.PhaseFailed || rep.Phase == store.PhaseStalled {
			phase += " (a step failed: " + rep.Message + ")"
		}
		return phase, false, nil
	default:
		return "serving from " + to, true, nil
	}
}

func orNone(s string) string {
	if s == "" {
		return "no node"
	}
	return s
}

// Target is what suspend and resume act on: an object's group, or a node.
type Target struct {
	Kind string // a v1alpha1 kind, or "Node"
	Name string
}

// String is "iissite/web1" or "node/node1".
func (t Target) String() string { return strings.ToLower(t.Kind) + "/" + t.Name }

// SetSuspended suspends (maintenance mode: nothing is started, stopped or
// failed over) or resumes t, and records an event.
func SetSuspended(ctx context.Context, st Store, t Target, on bool) error {
	if err := st.SetSuspended(ctx, t.Kind, t.Name, on); err != nil {
		return err
	}
	reason, verb := v1alpha1.EventResumed, "resumed"
	if on {
		reason, verb = v1alpha1.EventSuspended, "suspended"
	}
	st.Event(ctx, store.Event{Type: store.Normal, Reason: reason, Object: t.String(), Message: t.String() + " " + verb, Component: Component})
	return nil
}

// ResumeGroup resumes every suspended member of ref's group: a group
// suspended through any of its objects is resumed by one request.
func ResumeGroup(ctx context.Context, st Store, ref v1alpha1.Ref) error {
	_, grp, err := groupOf(ctx, st, ref)
	if err != nil {
		return err
	}
	sus, err := st.Suspensions(ctx)
	if err != nil {
		return err
	}
	for _, m := range grp.Members {
		if sus.Object(m) {
			if err := SetSuspended(ctx, st, Target{Kind: m.Kind, Name: m.Name}, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// ClearFailures forgets the recorded failures of ref's group, so automatic
// moves may use every node again. It returns the group and whether there
// was a decision to clear.
func ClearFailures(ctx context.Context, st Store, ref v1alpha1.Ref) (string, bool, error) {
	_, grp, err := groupOf(ctx, st, ref)
	if err != nil {
		return "", false, err
	}
	decisions, err := st.Decisions(ctx)
	if err != nil {
		return "", false, err
	}
	d, ok := decisions[grp.Name]
	if !ok {
		return grp.Name, false, nil
	}
	if d.Damaged != "" {
		return "", false, fmt.Errorf("clear failures of group %s: its placement decision is damaged (%s) and holds no failures; the placement leader replaces it: %w", grp.Name, d.Damaged, store.ErrDamaged)
	}
	d.Failures = nil
	// A compare-and-swap on the decision's revision: a leader's concurrent
	// decision is never overwritten.
	if err := st.PutDecision(ctx, d, store.LeaderGuard{}); err != nil {
		return "", false, fmt.Errorf("clear failures of group %s: %w", grp.Name, err)
	}
	st.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventFailuresCleared, Object: "group/" + grp.Name, Message: "failure history cleared", Component: Component})
	return grp.Name, true, nil
}

// Simulate injects a fault into a simulated node of `sitekeeper up`. The
// node's standing standby faults are kept.
func Simulate(ctx context.Context, st Store, node string, c store.SimCommand, message string) error {
	cur, err := st.SimCommands(ctx)
	if err != nil {
		return err
	}
	c.Faults = cur[node].Faults
	return putSim(ctx, st, node, c, message)
}

// SimulateStandbyFault takes away (on) or gives back a simulated node's
// volume, certificate or IIS role (kind "volume", "cert", "feature"): its
// standbys stop (or start again) proving they could take their groups
// over. The node's power and partition stay as they are.
func SimulateStandbyFault(ctx context.Context, st Store, node, kind, name string, on bool, message string) error {
	cur, err := st.SimCommands(ctx)
	if err != nil {
		return err
	}
	c, ok := cur[node]
	if !ok {
		c.Powered = true
	}
	key := kind + ":" + name
	c.Faults = slices.DeleteFunc(slices.Clone(c.Faults), func(f string) bool { return strings.EqualFold(f, key) })
	if on {
		c.Faults = append(c.Faults, key)
	}
	c.StopSite = ""
	return putSim(ctx, st, node, c, message)
}

func putSim(ctx context.Context, st Store, node string, c store.SimCommand, message string) error {
	c.Seq = time.Now().UnixNano()
	if err := st.PutSimCommand(ctx, node, c); err != nil {
		return err
	}
	st.Event(ctx, store.Event{Type: store.Warning, Reason: v1alpha1.EventSimulated, Object: "node/" + node, Node: node, Message: message, Component: Component})
	return nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Drain starts moving every group off node, parallel at a time, and
// places nothing new there (the placement leader does it: groups a folder
// owns move too, and switchback does not pull them back while it lasts).
// It returns the groups on the node now, whose progress DrainPhase tells.
func Drain(ctx context.Context, st Store, node string, parallel int) ([]string, error) {
	if parallel < 1 {
		return nil, fmt.Errorf("drain %s: --parallel must be at least 1", node)
	}
	ds, err := st.Decisions(ctx)
	if err != nil {
		return nil, err
	}
	var groups []string
	for g, d := range ds {
		if strings.EqualFold(d.Active, node) || strings.EqualFold(d.Releasing, node) {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	if err := st.SetDrain(ctx, node, parallel); err != nil {
		return nil, fmt.Errorf("drain %s: %w", node, err)
	}
	st.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventDraining, Object: "node/" + node, Node: node, Component: Component,
		Message: fmt.Sprintf("%s is being drained: %d group(s) move off, %d at a time", node, len(groups), parallel)})
	return groups, nil
}

// DrainPhase says where group stands in node's drain, and whether it is
// settled: serving from another node, or staying because no other node
// can take it (blocked).
func DrainPhase(ctx context.Context, st Store, node, group string) (phase string, done, blocked bool, err error) {
	ds, err := st.Decisions(ctx)
	if err != nil {
		return "", false, false, err
	}
	d, ok := ds[group]
	switch {
	case !ok:
		return "gone (deleted)", true, false, nil
	case d.Reason == v1alpha1.ReasonDrainBlocked && strings.EqualFold(d.Active, node):
		return "stays: " + d.Message, true, true, nil
	case d.Target != "":
		return fmt.Sprintf("moving to %s (waiting for %s to release it)", d.Target, orNone(d.Releasing)), false, false, nil
	case strings.EqualFold(d.Active, node):
		return "waiting for the placement leader", false, false, nil
	case d.Active == "":
		return "no node serves it: " + d.Message, false, false, nil
	}
	phase, done, err = SwitchoverPhase(ctx, st, group, d.Active)
	return phase, done, false, err
}

// Uncordon ends node's drain and its maintenance: groups may be placed
// there again (those with switchback: Automatic return).
func Uncordon(ctx context.Context, st Store, node string) error {
	if err := st.SetDrain(ctx, node, 0); err != nil {
		return fmt.Errorf("uncordon %s: %w", node, err)
	}
	if err := st.SetSuspended(ctx, "Node", node, false); err != nil {
		return fmt.Errorf("uncordon %s: %w", node, err)
	}
	st.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventUncordoned, Object: "node/" + node, Node: node, Component: Component,
		Message: node + " takes groups again"})
	return nil
}
