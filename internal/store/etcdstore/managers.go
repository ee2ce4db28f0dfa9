package etcdstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Field ownership across applies, as server-side apply has it: each field
// remembers the applier (manager) that last set it. An apply that would
// change a field another manager set is a conflict naming the field and
// that manager, unless --force-conflicts, which takes the field over.
// Without this, the second of two applies from different people silently
// undid the first one's change. Fields whose value an apply leaves as it
// is keep their manager; fields an apply adds or changes become its own.
// The manager of a CLI apply is --field-manager (by default the user and
// host); a manifest folder's is "source NAME".

// ManagerConflictError is an apply that changes fields other appliers set.
type ManagerConflictError struct {
	Ref v1alpha1.Ref
	// Fields maps each conflicting field to the manager that set it.
	Fields  map[string]string
	Manager string
}

func (e *ManagerConflictError) Error() string {
	var parts []string
	for _, f := range slices.Sorted(maps.Keys(e.Fields)) {
		parts = append(parts, fmt.Sprintf("%s (set by %q)", f, e.Fields[f]))
	}
	return fmt.Sprintf("apply %s as %q: conflict: it would change %s; nothing was written. Put the values they set in your manifest, or pass --force-conflicts to take the fields over",
		e.Ref, e.Manager, strings.Join(parts, ", "))
}

// Unwrap makes it a store.ErrConflict.
func (e *ManagerConflictError) Unwrap() error { return store.ErrConflict }

// managerOf is each field's manager in m.
func managerOf(m map[string][]string) map[string]string {
	out := map[string]string{}
	for mgr, fields := range m {
		for _, f := range fields {
			out[f] = mgr
		}
	}
	return out
}

// claimFields checks mine against old (nil for a new object) and returns
// the managed fields mine is stored with.
func claimFields(mine, old v1alpha1.Object, manager string, force bool) (map[string][]string, error) {
	if old != nil && len(old.Meta().ManagedFields) > 0 && sameValues(mine, old) {
		// Nothing changes, so no field changes hands: the common case of
		// a folder's periodic resync, where flattening every object of a
		// thousand groups twice was most of its cost.
		return old.Meta().ManagedFields, nil
	}
	mf, err := fieldsOf(mine)
	if err != nil {
		return nil, err
	}
	var of map[string]json.RawMessage
	owners := map[string]string{}
	if old != nil {
		if of, err = fieldsOf(old); err != nil {
			return nil, err
		}
		owners = managerOf(old.Meta().ManagedFields)
	}
	conflicts := map[string]string{}
	for p := range union(mf, of) {
		mv, mHas := mf[p]
		ov, oHas := of[p]
		if mHas == oHas && bytes.Equal(mv, ov) {
			continue
		}
		name := fieldName(p)
		if o := owners[name]; o != "" && o != manager && !force {
			conflicts[name] = o
		}
	}
	if len(conflicts) > 0 {
		return nil, &ManagerConflictError{Ref: v1alpha1.RefOf(mine), Fields: conflicts, Manager: manager}
	}
	out := map[string][]string{}
	for p, mv := range mf {
		name := fieldName(p)
		mgr := manager
		if o := owners[name]; o != "" && bytes.Equal(mv, of[p]) {
			mgr = o
		}
		out[mgr] = append(out[mgr], name)
	}
	for _, fields := range out {
		slices.Sort(fields)
	}
	return out, nil
}

// managerFor is the manager an apply records.
func managerFor(opt store.ApplyOptions) string {
	switch {
	case opt.Manager != "":
		return opt.Manager
	case opt.Owner != "":
		return "source " + opt.Owner
	default:
		return DefaultManager
	}
}

// DefaultManager is the manager of an apply that names none.
const DefaultManager = "sitekeeper"

// sameValues reports whether a and b have the same spec, labels and
// annotations (the owner annotation aside).
func sameValues(a, b v1alpha1.Object) bool {
	if !bytes.Equal(a.SpecJSON(), b.SpecJSON()) || !maps.Equal(a.Meta().Labels, b.Meta().Labels) {
		return false
	}
	strip := v1alpha1.WithoutSystemAnnotations
	sa, sb := strip(a.Meta().Annotations), strip(b.Meta().Annotations)
	return len(sa) == len(sb) && maps.Equal(sa, sb)
}
