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

// An apply is computed against what it read. When another writer changed
// the store before it committed, the apply is not recomputed from the
// manifest alone (that silently undid the other change: two applies from
// the same base, changing different fields, left only one): it is rebased.
// The fields this apply changes relative to what it first read are laid
// over what the store holds now; a field both changed, to different
// values, is a conflict that names the field (unless --force-conflicts).
// A field is a leaf of metadata.labels, metadata.annotations or spec; a
// list (bindings, nodes) is one field.

// sep joins a field path's parts: keys (annotation names) may hold dots.
const sep = "\x1f"

// fieldName is a path as a person reads it.
func fieldName(p string) string { return strings.ReplaceAll(p, sep, ".") }

// fieldsOf flattens o's labels, annotations and spec, defaulted, into
// path -> JSON value. The owner annotation is the store's, not a field
// anyone applies.
func fieldsOf(o v1alpha1.Object) (map[string]json.RawMessage, error) {
	c := v1alpha1.DeepCopy(o)
	v1alpha1.Default(c)
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	if meta, ok := top["metadata"]; ok {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(meta, &m); err != nil {
			return nil, err
		}
		for _, k := range []string{"labels", "annotations"} {
			if v, ok := m[k]; ok {
				flatten("metadata"+sep+k, v, out)
			}
		}
	}
	if spec, ok := top["spec"]; ok {
		flatten("spec", spec, out)
	}
	for _, k := range v1alpha1.SystemAnnotations {
		delete(out, "metadata"+sep+"annotations"+sep+k)
	}
	return out, nil
}

func flatten(path string, v json.RawMessage, out map[string]json.RawMessage) {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil || m == nil {
		out[path] = v
		return
	}
	for k, sub := range m {
		flatten(path+sep+k, sub, out)
	}
}

// unflatten builds the nested JSON of fields.
func unflatten(fields map[string]json.RawMessage) map[string]any {
	root := map[string]any{}
	for _, p := range slices.Sorted(maps.Keys(fields)) {
		parts := strings.Split(p, sep)
		node := root
		for _, part := range parts[:len(parts)-1] {
			next, ok := node[part].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[part] = next
			}
			node = next
		}
		node[parts[len(parts)-1]] = fields[p]
	}
	return root
}

// FieldConflictError is an apply that changes a field another writer
// changed to another value since the apply read it.
type FieldConflictError struct {
	Ref    v1alpha1.Ref
	Fields []string
	// By is who last applied the object, when known.
	By string
}

func (e *FieldConflictError) Error() string {
	by := "another writer"
	if e.By != "" {
		by = e.By
	}
	return fmt.Sprintf("apply %s: conflict: %s changed %s to another value while this apply was in flight; nothing was written. See the new values with `sitekeeper diff`, then apply again, or pass --force-conflicts to overwrite them",
		e.Ref, by, strings.Join(e.Fields, ", "))
}

// Unwrap makes it a store.ErrConflict.
func (e *FieldConflictError) Unwrap() error { return store.ErrConflict }

// rebase lays the changes mine makes relative to base over current, per
// field. It returns the objects to apply in place of mine.
func rebase(mine []v1alpha1.Object, base, current map[v1alpha1.Ref]v1alpha1.Object, force bool) ([]v1alpha1.Object, error) {
	out := make([]v1alpha1.Object, 0, len(mine))
	for _, o := range mine {
		ref := v1alpha1.RefOf(o)
		cur, inCur := current[ref]
		b, inBase := base[ref]
		if !inCur {
			out = append(out, o) // deleted or never there: mine as written
			continue
		}
		mf, err := fieldsOf(o)
		if err != nil {
			return nil, err
		}
		cf, err := fieldsOf(cur)
		if err != nil {
			return nil, err
		}
		bf := map[string]json.RawMessage{}
		if inBase {
			if bf, err = fieldsOf(b); err != nil {
				return nil, err
			}
		}
		merged := maps.Clone(cf)
		var conflicts []string
		for _, p := range slices.Sorted(maps.Keys(union(mf, bf))) {
			mv, mHas := mf[p]
			bv, bHas := bf[p]
			if mHas == bHas && bytes.Equal(mv, bv) {
				continue // not changed by this apply: the store's value stays
			}
			cv, cHas := cf[p]
			theirs := cHas != bHas || !bytes.Equal(cv, bv)
			same := cHas == mHas && bytes.Equal(cv, mv)
			if theirs && !same && !force {
				conflicts = append(conflicts, fieldName(p))
				continue
			}
			if mHas {
				merged[p] = mv
			} else {
				delete(merged, p)
			}
		}
		if len(conflicts) > 0 {
			by := ""
			if src := cur.Meta().Annotations[v1alpha1.AnnotationSource]; src != "" {
				by = "source " + src
			}
			owners := managerOf(cur.Meta().ManagedFields)
			var mgrs []string
			for _, f := range conflicts {
				if o := owners[f]; o != "" && !slices.Contains(mgrs, o) {
					mgrs = append(mgrs, o)
				}
			}
			if len(mgrs) > 0 {
				by = strings.Join(mgrs, " and ")
			}
			return nil, &FieldConflictError{Ref: ref, Fields: conflicts, By: by}
		}
		r, err := rebuild(o, merged)
		if err != nil {
			return nil, fmt.Errorf("rebase %s: %w", ref, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func union(a, b map[string]json.RawMessage) map[string]json.RawMessage {
	u := maps.Clone(a)
	maps.Copy(u, b)
	return u
}

// rebuild makes an object like o (kind, name, resourceVersion) whose
// labels, annotations and spec are fields.
func rebuild(o v1alpha1.Object, fields map[string]json.RawMessage) (v1alpha1.Object, error) {
	tree := unflatten(fields)
	meta, _ := tree["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["name"] = o.Meta().Name
	if rv := o.Meta().ResourceVersion; rv != "" {
		meta["resourceVersion"] = rv
	}
	doc := map[string]any{"apiVersion": v1alpha1.APIVersion, "kind": o.GetKind(), "metadata": meta}
	if spec, ok := tree["spec"]; ok {
		doc["spec"] = spec
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	r := v1alpha1.New(o.GetKind())
	if err := json.Unmarshal(b, r); err != nil {
		return nil, err
	}
	return r, nil
}
