// Package manifest reads manifests from files, folders and stdin and decodes
// them strictly into API objects, remembering where every field was written
// so that later errors can point at the line.
package manifest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/diag"
)

// MaxFileSize is the largest manifest file accepted.
const MaxFileSize = 1 << 20

// maxDepth bounds nesting; no manifest of this API is deeper than ~8.
const maxDepth = 32

// Document is one decoded object and where it came from.
type Document struct {
	// File is the path the object was read from ("-" for stdin).
	File string
	// Line is the line where the document starts.
	Line int
	// Object is the decoded, not yet defaulted object.
	Object v1alpha1.Object
	// fields holds the line each field was written on.
	fields fieldLines
}

// SourceDocument is a GitSource read from a manifest file.
type SourceDocument struct {
	File   string
	Line   int
	Source v1alpha1.GitSource
}

// LineOf returns the line of field, or of its nearest written parent.
func (d *Document) LineOf(field string) int {
	for f := field; f != ""; f = parentPath(f) {
		if l, ok := d.fields.line(f); ok {
			return l
		}
	}
	return d.Line
}

// fieldLines records the line each field path was written on, compactly:
// a folder of thousands of objects written alike has a handful of shapes
// (lists of paths), each stored once and shared, and each document keeps
// only its lines. A map of paths per document held half the memory of a
// big load.
type fieldLines struct {
	paths []string
	lines []int32
}

func (f *fieldLines) add(path string, line int) {
	f.paths = append(f.paths, path)
	f.lines = append(f.lines, int32(line))
}

func (f *fieldLines) line(path string) (int, bool) {
	for i := len(f.paths) - 1; i >= 0; i-- {
		if f.paths[i] == path {
			return int(f.lines[i]), true
		}
	}
	return 0, false
}

// shapes interns the path lists; bounded, so that a stream of documents
// each written differently cannot grow it without end.
var (
	shapesMu sync.Mutex
	shapes   = map[string][]string{}
)

const maxShapes = 4096

// share replaces f's paths by the interned list of the same paths.
func (f *fieldLines) share() {
	key := strings.Join(f.paths, "\x00")
	shapesMu.Lock()
	defer shapesMu.Unlock()
	if s, ok := shapes[key]; ok {
		f.paths = s
		return
	}
	f.paths = slices.Clip(f.paths)
	f.lines = slices.Clip(f.lines)
	if len(shapes) < maxShapes {
		shapes[key] = f.paths
	}
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// Options control how paths are read.
type Options struct {
	// Recursive descends into subfolders of a folder.
	Recursive bool
	// Sources, when set, receives the GitSource documents (checked like
	// the others, defaulted and validated); otherwise a GitSource is
	// refused, since only apply stores one.
	Sources *[]SourceDocument
	// Stdin is read for the path "-".
	Stdin io.Reader
}

// Load reads every path (file, folder or "-") and returns the documents in
// a stable order, or every problem found.
func Load(paths []string, opts Options) ([]Document, diag.List) {
	var docs []Document
	var errs diag.List
	for _, p := range paths {
		if p == "-" {
			if opts.Stdin == nil {
				errs = append(errs, diag.Error{File: "-", Message: "no standard input to read", Index: -1})
				continue
			}
			data, err := readLimited(opts.Stdin)
			if err != nil {
				errs = append(errs, diag.Error{File: "-", Message: err.Error(), Index: -1})
				continue
			}
			d, e := decode("-", data, opts.Sources)
			docs, errs = append(docs, d...), append(errs, e...)
			continue
		}
		files, err := ListFiles(p, opts.Recursive)
		if err != nil {
			errs = append(errs, diag.Error{File: p, Message: err.Error(), Index: -1})
			continue
		}
		for _, f := range files {
			d, e := readFile(f, opts.Sources)
			docs, errs = append(docs, d...), append(errs, e...)
		}
	}
	return docs, errs
}

// IsManifestFile reports whether name has a manifest extension.
func IsManifestFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// ListFiles returns the manifest files of path: path itself when it is a
// file, else the .yaml/.yml/.json files of the folder (and its subfolders
// when recursive), hidden entries skipped, sorted.
func ListFiles(path string, recursive bool) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no such file or folder (check the path)")
		}
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	// A folder given as a symlink (git-sync's --link, a ConfigMap mount)
	// is walked where it points; files are named under the path given.
	root := path
	if real, err := filepath.EvalSymlinks(path); err == nil {
		root = real
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != root && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != root && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if IsManifestFile(name) {
			if rel, err := filepath.Rel(root, p); err == nil && root != path {
				p = filepath.Join(path, rel)
			}
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// ReadFile reads and decodes one file.
func ReadFile(path string) ([]Document, diag.List) { return readFile(path, nil) }

func readFile(path string, sources *[]SourceDocument) ([]Document, diag.List) {
	f, err := os.Open(path)
	if err != nil {
		return nil, diag.List{{File: path, Message: err.Error(), Index: -1}}
	}
	defer f.Close()
	data, err := readLimited(f)
	if err != nil {
		return nil, diag.List{{File: path, Message: err.Error(), Index: -1}}
	}
	return decode(path, data, sources)
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes (1 MiB); split it into several files", MaxFileSize)
	}
	return data, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// asUTF8 returns data as UTF-8 without a byte order mark. Windows
// PowerShell 5.1 writes `>` redirections in UTF-16LE with a BOM, and
// Notepad may save UTF-8 with one: such a manifest loads like any other.
func asUTF8(data []byte) ([]byte, error) {
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return data[3:], nil
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		order = binary.LittleEndian
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		order = binary.BigEndian
	default:
		return data, nil
	}
	body := data[2:]
	if len(body)%2 != 0 {
		return nil, errors.New("UTF-16 text with an odd number of bytes (the file is cut short); save it again, as UTF-8")
	}
	units := make([]uint16, len(body)/2)
	for i := range units {
		units[i] = order.Uint16(body[2*i:])
	}
	return []byte(string(utf16.Decode(units))), nil
}

// Decode parses data (one or more YAML or JSON documents) named file.
func Decode(file string, data []byte) ([]Document, diag.List) { return decode(file, data, nil) }

func decode(file string, data []byte, sources *[]SourceDocument) ([]Document, diag.List) {
	fail := func(line int, msg string) ([]Document, diag.List) {
		return nil, diag.List{{File: file, Line: line, Message: msg, Index: -1}}
	}
	before := 0
	if sources != nil {
		before = len(*sources)
	}
	if len(data) > MaxFileSize {
		return fail(0, fmt.Sprintf("larger than %d bytes (1 MiB); split it into several files", MaxFileSize))
	}
	data, err := asUTF8(data)
	if err != nil {
		return fail(0, err.Error())
	}
	if i := bytes.IndexByte(data, 0); i >= 0 || !utf8.Valid(data) {
		return fail(0, "binary data, not a YAML or JSON manifest; check that the right file was given")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(0, "empty file; add a manifest or remove the file")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []Document
	var errs diag.List
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line := 0
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				line, _ = strconv.Atoi(m[1])
			}
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			msg = strings.TrimSpace(yamlLine.ReplaceAllString(msg, ""))
			msg = strings.TrimPrefix(msg, ": ")
			errs = append(errs, diag.Error{File: file, Line: line, Message: "not valid YAML or JSON: " + msg + "; fix the syntax", Index: -1})
			break
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
			root := n.Content[0]
			if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
				continue // an empty document between "---" separators
			}
			d, e := decodeDocument(file, root, sources)
			if d != nil {
				docs = append(docs, *d)
			}
			errs = append(errs, e...)
		}
	}
	if len(docs) == 0 && len(errs) == 0 && (sources == nil || len(*sources) == before) {
		return fail(0, "no objects in file (only comments or empty documents); add a manifest or remove the file")
	}
	return docs, errs
}

func decodeDocument(file string, root *yaml.Node, sources *[]SourceDocument) (*Document, diag.List) {
	errAt := func(line int, kind, name, field, msg string) diag.List {
		return diag.List{{File: file, Line: line, Kind: kind, Name: name, Field: field, Message: msg, Index: -1}}
	}
	if line, bad := findUnsafe(root, 0); bad != "" {
		return nil, errAt(line, "", "", "", bad)
	}
	if root.Kind != yaml.MappingNode {
		return nil, errAt(root.Line, "", "", "", "a manifest must be a mapping with apiVersion, kind, metadata and spec")
	}
	kindNode := mapValue(root, "kind")
	var name string
	if md := mapValue(root, "metadata"); md != nil && md.Kind == yaml.MappingNode {
		if nn := mapValue(md, "name"); nn != nil && nn.Kind == yaml.ScalarNode {
			name = nn.Value
		}
	}
	if kindNode == nil || kindNode.Kind != yaml.ScalarNode || kindNode.Value == "" {
		return nil, errAt(root.Line, "", name, "kind", "missing; set kind to IISSite, IPResource or VolumeResource")
	}
	kind := diag.Clip(kindNode.Value)
	name = diag.Clip(name)
	if kind == v1alpha1.KindGitSource {
		if sources == nil {
			return nil, errAt(kindNode.Line, kind, name, "kind", "a GitSource is stored with `sitekeeper apply -f FILE` or `sitekeeper source add`, not read from a manifest folder or by this command; move it out of the folder")
		}
		return nil, decodeSource(file, root, name, sources)
	}
	obj := v1alpha1.New(kind)
	if obj == nil {
		hint := ""
		if k, ok := v1alpha1.ParseKind(kind); ok {
			hint = fmt.Sprintf(" (did you mean %s?)", k)
		}
		return nil, errAt(kindNode.Line, kind, name, "kind", fmt.Sprintf("unknown kind %q%s; use IISSite, IPResource or VolumeResource", kind, hint))
	}
	av := mapValue(root, "apiVersion")
	if av == nil || av.Value != v1alpha1.APIVersion {
		line, got := root.Line, ""
		if av != nil {
			line, got = av.Line, diag.Clip(av.Value)
		}
		return nil, errAt(line, kind, name, "apiVersion", fmt.Sprintf("is %q; set apiVersion: %s", got, v1alpha1.APIVersion))
	}
	doc := &Document{File: file, Line: root.Line, Object: obj}
	var errs diag.List
	c := checker{file: file, kind: kind, name: name, doc: doc, errs: &errs}
	c.check(root, typeOf(obj), "")
	if len(errs) > 0 {
		return nil, errs
	}
	doc.fields.share()
	doc.fields.lines = slices.Clip(doc.fields.lines)
	var buf bytes.Buffer
	if err := toJSON(&buf, root); err != nil {
		return nil, errAt(root.Line, kind, name, "", err.Error())
	}
	if err := json.Unmarshal(buf.Bytes(), obj); err != nil {
		return nil, errAt(root.Line, kind, name, "", err.Error()+"; fix the value")
	}
	return doc, nil
}

// decodeSource checks a GitSource document like any other (unknown fields,
// types, with their lines), then defaults and validates it.
func decodeSource(file string, root *yaml.Node, name string, sources *[]SourceDocument) diag.List {
	kind := v1alpha1.KindGitSource
	errAt := func(line int, field, msg string) diag.List {
		return diag.List{{File: file, Line: line, Kind: kind, Name: name, Field: field, Message: msg, Index: -1}}
	}
	if av := mapValue(root, "apiVersion"); av == nil || av.Value != v1alpha1.APIVersion {
		return errAt(root.Line, "apiVersion", fmt.Sprintf("set apiVersion: %s", v1alpha1.APIVersion))
	}
	var gs v1alpha1.GitSource
	doc := &Document{File: file, Line: root.Line}
	var errs diag.List
	c := checker{file: file, kind: kind, name: name, doc: doc, errs: &errs}
	c.check(root, typeOf(&gs), "")
	if len(errs) > 0 {
		return errs
	}
	var buf bytes.Buffer
	if err := toJSON(&buf, root); err != nil {
		return errAt(root.Line, "", err.Error())
	}
	if err := json.Unmarshal(buf.Bytes(), &gs); err != nil {
		return errAt(root.Line, "", err.Error()+"; fix the value")
	}
	gs.Default()
	for _, msg := range gs.Validate() {
		// "GitSource/name: field: message"
		_, rest, _ := strings.Cut(msg, ": ")
		field, m, _ := strings.Cut(rest, ": ")
		errs = append(errs, errAt(doc.LineOf(field), field, m)...)
	}
	if len(errs) == 0 {
		*sources = append(*sources, SourceDocument{File: file, Line: root.Line, Source: gs})
	}
	return errs
}

// findUnsafe refuses anchors and aliases (they can expand without bound:
// "billion laughs") and nesting deeper than any manifest needs.
func findUnsafe(n *yaml.Node, depth int) (int, string) {
	if depth > maxDepth {
		return n.Line, fmt.Sprintf("nested deeper than %d levels; no manifest is that deep, check the file", maxDepth)
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return n.Line, "YAML anchors and aliases are not accepted (they can expand without bound); write the values out"
	}
	for _, c := range n.Content {
		if l, msg := findUnsafe(c, depth+1); msg != "" {
			return l, msg
		}
	}
	return 0, ""
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
