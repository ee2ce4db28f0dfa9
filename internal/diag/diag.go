// Package diag holds the error type every user-facing check returns: one
// problem, located by file, line, object and field, ending with its fix.
package diag

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in the input.
type Error struct {
	// File is the manifest file, "-" for stdin, empty when unknown.
	File string `json:"file,omitempty"`
	// Line is the 1-based line in File, 0 when unknown.
	Line int `json:"line,omitempty"`
	// Kind and Name identify the object, when known.
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
	// Field is the field path inside the object ("spec.bindings[1].ipRef").
	Field string `json:"field,omitempty"`
	// Message says what is wrong and ends with the fix in one sentence.
	Message string `json:"message"`
	// Index is the position of the object in the validated set (-1 when
	// unknown); it lets a caller attach a file and line.
	Index int `json:"-"`
}

// Error formats the problem as file:line: Kind "name": field: message.
func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Kind != "" {
		if e.Name != "" {
			fmt.Fprintf(&b, "%s %q: ", e.Kind, e.Name)
		} else {
			fmt.Fprintf(&b, "%s: ", e.Kind)
		}
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// List is every problem of one input, reported at once.
type List []Error

// Error joins the problems, one per line.
func (l List) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns l as an error, or nil when l is empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Sort orders the problems by file, line, kind, name, field and message.
func (l List) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Message < b.Message
	})
}

// Clip shortens a value quoted in a message, so that a hostile megabyte-long
// value does not become a megabyte-long error.
func Clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max/2] + "…" + s[len(s)-max/2:]
}

// EditDistance is the Levenshtein distance of a and b, for "did you mean"
// hints; strings over 64 bytes are never near (99).
func EditDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
