package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sitekeeper/sitekeeper/internal/diag"
)

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
)

func typeOf(v any) reflect.Type { return reflect.TypeOf(v).Elem() }

// checker walks a YAML node against the Go type it must decode into, so
// that unknown fields, duplicate keys and wrong value types are reported with
// their line and field path before anything is decoded.
type checker struct {
	file, kind, name string
	doc              *Document
	errs             *diag.List
}

func (c *checker) fail(n *yaml.Node, path, msg string) {
	*c.errs = append(*c.errs, diag.Error{File: c.file, Line: n.Line, Kind: c.kind, Name: c.name, Field: path, Message: msg, Index: -1})
}

func (c *checker) check(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			c.fail(n, path, "want a single value, not a list or mapping; write it as a string")
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.fail(n, path, fmt.Sprintf("want a mapping, got %s; write it as key: value pairs", describe(n)))
			return
		}
		fields := jsonFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				c.fail(k, p, fmt.Sprintf("set twice (first on line %d); keep one", first))
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				c.fail(k, p, "unknown field"+suggest(k.Value, fields)+"; remove it or fix its name")
				continue
			}
			c.doc.fields.add(p, k.Line)
			c.check(v, ft, p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.fail(n, path, fmt.Sprintf("want a mapping, got %s; write it as key: value pairs", describe(n)))
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path + "[" + strconv.Quote(k.Value) + "]"
			if first, dup := seen[k.Value]; dup {
				c.fail(k, p, fmt.Sprintf("set twice (first on line %d); keep one", first))
				continue
			}
			seen[k.Value] = k.Line
			c.doc.fields.add(p, k.Line)
			c.check(v, t.Elem(), p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.fail(n, path, fmt.Sprintf("want a list, got %s; write it as a list of \"- \" items", describe(n)))
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.doc.fields.add(p, item.Line)
			c.check(item, t.Elem(), p)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			c.fail(n, path, fmt.Sprintf("want a string, got %s", describe(n)))
		} else if n.Tag != "!!str" {
			c.fail(n, path, fmt.Sprintf("want a string, got %s %s; quote it", tagName(n.Tag), n.Value))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			c.fail(n, path, fmt.Sprintf("want a whole number, got %s; write a number without quotes", describe(n)))
			return
		}
		if _, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits()); err != nil {
			c.fail(n, path, fmt.Sprintf("number %s is out of range; use a smaller value", n.Value))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			c.fail(n, path, fmt.Sprintf("want true or false, got %s", describe(n)))
		}
	default:
		c.fail(n, path, "cannot be set from a manifest; remove it")
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%s %q", tagName(n.Tag), n.Value)
	}
	return "an unsupported value"
}

func tagName(tag string) string {
	switch tag {
	case "!!str":
		return "string"
	case "!!int":
		return "number"
	case "!!float":
		return "decimal number"
	case "!!bool":
		return "boolean"
	case "!!null":
		return "null"
	}
	return "value"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldsByType caches jsonFields: building the map again for every mapping
// of every document was a fifth of what a big load allocated.
var fieldsByType sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields maps the JSON names of t's fields (embedded structs inlined) to
// their types. The map is shared: callers must not change it.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldsByType.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := buildJSONFields(t)
	fieldsByType.Store(t, m)
	return m
}

func buildJSONFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// suggest names the known field closest to an unknown one.
func suggest(key string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	best, bestD := "", 3
	for _, k := range names {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		if d := diag.EditDistance(strings.ToLower(k), strings.ToLower(key)); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// toJSON writes a checked YAML node as JSON, scalars typed by their tag.
func toJSON(b *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(n.Content[i].Value)
			b.Write(k)
			b.WriteByte(':')
			if err := toJSON(b, n.Content[i+1]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := toJSON(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			b.WriteString("null")
		case "!!int":
			v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
			if err != nil {
				return fmt.Errorf("line %d: number %s is out of range", n.Line, n.Value)
			}
			b.WriteString(strconv.FormatInt(v, 10))
		case "!!bool":
			var v bool
			if err := n.Decode(&v); err != nil {
				return err
			}
			b.WriteString(strconv.FormatBool(v))
		default:
			s, _ := json.Marshal(n.Value)
			b.Write(s)
		}
	default:
		return fmt.Errorf("line %d: unsupported YAML value", n.Line)
	}
	return nil
}
