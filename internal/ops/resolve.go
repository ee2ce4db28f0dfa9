package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/diag"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// NotFoundError is a name that names nothing, with the closest that does.
type NotFoundError struct {
	What, Name string
	// Closest is the nearest existing name ("" when none is near).
	Closest string
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("%s %q: not found", e.What, e.Name)
	if e.Closest != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", e.Closest)
	}
	return msg
}

// Unwrap makes it a store.ErrNotFound.
func (e *NotFoundError) Unwrap() error { return store.ErrNotFound }

// Resolve finds the object ref names among the stored ones. Names match
// case-insensitively, as IIS's do; a name that matches nothing is a
// NotFoundError with the closest name of that kind.
func Resolve(ctx context.Context, st Store, ref v1alpha1.Ref) (v1alpha1.Ref, error) {
	snap, err := st.List(ctx)
	if err != nil {
		return ref, err
	}
	return ResolveIn(snap.Objects, ref)
}

// ResolveIn is Resolve among objs, for a caller that holds them already.
func ResolveIn(objs []v1alpha1.Object, ref v1alpha1.Ref) (v1alpha1.Ref, error) {
	var names []string
	for _, o := range objs {
		r := v1alpha1.RefOf(o)
		if r.Kind != ref.Kind {
			continue
		}
		if r.Name == ref.Name {
			return r, nil
		}
		names = append(names, r.Name)
	}
	for _, n := range names {
		if strings.EqualFold(n, ref.Name) {
			return v1alpha1.Ref{Kind: ref.Kind, Name: n}, nil
		}
	}
	return ref, &NotFoundError{What: ref.Kind, Name: ref.Name, Closest: Closest(ref.Name, names)}
}

// ResolveNode finds node among the nodes the store has ever known (live or
// not), case-insensitively.
func ResolveNode(node string, known []string) (string, error) {
	for _, n := range known {
		if n == node {
			return n, nil
		}
	}
	for _, n := range known {
		if strings.EqualFold(n, node) {
			return n, nil
		}
	}
	return node, &NotFoundError{What: "node", Name: node, Closest: Closest(node, known)}
}

// Closest is the name nearest to name by edit distance, when it is near
// enough to be a typo (at most a third of the name, at least 2 edits).
func Closest(name string, names []string) string {
	best, bestD := "", max(2, len(name)/3)+1
	for _, n := range slices.Sorted(slices.Values(names)) {
		if d := diag.EditDistance(strings.ToLower(name), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// GroupMember returns a member of the resource group named group (matched
// case-insensitively), which names the group to the operations that take
// an object: switchover, suspend, clear-failures. A name that is no group
// is a NotFoundError with the closest group name.
func GroupMember(ctx context.Context, st Store, group string) (v1alpha1.Ref, error) {
	snap, err := st.List(ctx)
	if err != nil {
		return v1alpha1.Ref{}, err
	}
	return GroupMemberIn(liveGraph(snap.Objects), group)
}

// GroupMemberIn is GroupMember in g, for a caller that holds it already.
func GroupMemberIn(g *graph.Graph, group string) (v1alpha1.Ref, error) {
	var names []string
	for _, grp := range g.Groups {
		if strings.EqualFold(grp.Name, group) {
			return grp.Members[0], nil
		}
		names = append(names, grp.Name)
	}
	return v1alpha1.Ref{}, &NotFoundError{What: "group", Name: group, Closest: Closest(group, names)}
}
