// Package printer encodes what read commands show, one way for all of
// them: `-o json` and `-o yaml` of many things are a List (apiVersion,
// kind NameList, items), as kubectl prints them, so that one script reads
// every command's output the same way; one thing named is printed alone.
package printer

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"sigs.k8s.io/yaml"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
)

// Formats are the -o values of a read command.
var Formats = []string{"table", "wide", "yaml", "json"}

// CheckFormat returns an error naming the choices when format is not one
// of allowed.
func CheckFormat(format string, allowed ...string) error {
	if slices.Contains(allowed, format) {
		return nil
	}
	return fmt.Errorf("unknown output format %q; use %s", format, join(allowed))
}

func join(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " or " + s[len(s)-1]
}

// Structured reports whether format is an encoding (json or yaml) rather
// than a table.
func Structured(format string) bool { return format == "json" || format == "yaml" }

// List wraps items as a kind List.
func List[T any](kind string, items []T) map[string]any {
	if items == nil {
		items = []T{}
	}
	return map[string]any{"apiVersion": v1alpha1.APIVersion, "kind": kind + "List", "items": items}
}

// Encode writes v as json (indented) or yaml.
func Encode(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown output %q", format)
}

// Items writes items as a List of kind, or, when one was asked for by
// name, that one alone.
func Items[T any](w io.Writer, format, kind string, items []T, named bool) error {
	if named && len(items) == 1 {
		return Encode(w, format, items[0])
	}
	return Encode(w, format, List(kind, items))
}

// NewTable is the table every read command prints: columns aligned with
// two spaces, cells written tab-separated, one row a line; Flush prints.
func NewTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}
