// Package explain prints the manifest reference of a kind or field from the
// doc comments of the API types, as `kubectl explain` does.
package explain

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
)

type typeDoc struct {
	doc    string
	fields map[string]string // Go field name -> doc
}

var (
	docsOnce sync.Once
	docs     map[string]typeDoc
	docsErr  error
)

func loadDocs() (map[string]typeDoc, error) {
	docsOnce.Do(func() {
		docs = map[string]typeDoc{}
		fset := token.NewFileSet()
		docsErr = fs.WalkDir(v1alpha1.Sources, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			src, err := fs.ReadFile(v1alpha1.Sources, p)
			if err != nil {
				return err
			}
			f, err := parser.ParseFile(fset, p, src, parser.ParseComments)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.TYPE {
					continue
				}
				for _, spec := range gd.Specs {
					ts := spec.(*ast.TypeSpec)
					td := typeDoc{doc: gd.Doc.Text(), fields: map[string]string{}}
					if ts.Doc != nil {
						td.doc = ts.Doc.Text()
					}
					if st, ok := ts.Type.(*ast.StructType); ok {
						for _, fl := range st.Fields.List {
							for _, n := range fl.Names {
								td.fields[n.Name] = fl.Doc.Text()
							}
						}
					}
					docs[ts.Name.Name] = td
				}
			}
			return nil
		})
	})
	return docs, docsErr
}

// Explain writes the reference of path ("IISSite", "iissite.spec.bindings").
func Explain(w io.Writer, path string) error {
	d, err := loadDocs()
	if err != nil {
		return fmt.Errorf("read API docs: %w", err)
	}
	parts := strings.Split(path, ".")
	kind, ok := v1alpha1.ParseKind(parts[0])
	if !ok {
		return fmt.Errorf("unknown kind %q; use IISSite, IPResource or VolumeResource", parts[0])
	}
	t := reflect.TypeOf(v1alpha1.New(kind)).Elem()
	doc := d[t.Name()].doc
	for i, name := range parts[1:] {
		st := deref(t)
		if st.Kind() == reflect.Slice || st.Kind() == reflect.Map {
			st = deref(st.Elem())
		}
		if st.Kind() != reflect.Struct {
			return fmt.Errorf("%s has no fields; explain %s instead", strings.Join(parts[:i+1], "."), strings.Join(parts[:i+1], "."))
		}
		f, ok := fieldByJSON(st, name)
		if !ok {
			return fmt.Errorf("field %q not found in %s; run `sitekeeper explain %s` to list its fields", name, strings.Join(parts[:i+1], "."), strings.Join(parts[:i+1], "."))
		}
		doc = d[f.owner].fields[f.goName]
		t = f.typ
	}
	fmt.Fprintf(w, "KIND:     %s\nVERSION:  %s\n\n", kind, v1alpha1.APIVersion)
	if len(parts) > 1 {
		fmt.Fprintf(w, "FIELD:    %s <%s>\n\n", strings.Join(parts[1:], "."), typeName(t))
	}
	fmt.Fprintf(w, "DESCRIPTION:\n%s\n", indent(doc, "  "))
	st := deref(t)
	if st.Kind() == reflect.Slice || st.Kind() == reflect.Map {
		st = deref(st.Elem())
	}
	if st.Kind() == reflect.Struct && st != reflect.TypeFor[time.Time]() && st != reflect.TypeFor[v1alpha1.Duration]() {
		fmt.Fprintf(w, "FIELDS:\n")
		for _, f := range fields(st) {
			fmt.Fprintf(w, "  %s\t<%s>\n%s\n", f.json, typeName(f.typ), indent(d[f.owner].fields[f.goName], "    "))
		}
	}
	return nil
}

type field struct {
	json, goName, owner string
	typ                 reflect.Type
}

func fields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			out = append(out, fields(f.Type)...)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		out = append(out, field{json: name, goName: f.Name, owner: t.Name(), typ: f.Type})
	}
	return out
}

func fieldByJSON(t reflect.Type, name string) (field, bool) {
	for _, f := range fields(t) {
		if strings.EqualFold(f.json, name) {
			return f, true
		}
	}
	return field{}, false
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func typeName(t reflect.Type) string {
	t = deref(t)
	switch {
	case t == reflect.TypeFor[time.Time]():
		return "timestamp"
	case t == reflect.TypeFor[v1alpha1.Duration]():
		return "duration"
	}
	switch t.Kind() {
	case reflect.Slice:
		return "[]" + typeName(t.Elem())
	case reflect.Map:
		return "map[string]" + typeName(t.Elem())
	case reflect.Struct:
		return "Object"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "integer"
	}
	return t.Kind().String()
}

func indent(s, pre string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return pre + "(no description)\n"
	}
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString(pre + l + "\n")
	}
	return b.String()
}
