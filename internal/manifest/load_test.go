package manifest

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
)

const validSite = `apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata:
  name: web1
spec:
  siteID: 2
  physicalPath: 'E:\sites\web1'
  bindings:
    - protocol: http
      ipRef: vip1
      port: 8080
`

func TestDecodeValid(t *testing.T) {
	docs, errs := Decode("site.yaml", []byte(validSite))
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if len(docs) != 1 {
		t.Fatalf("got %d docs, want 1", len(docs))
	}
	s, ok := docs[0].Object.(*v1alpha1.IISSite)
	if !ok {
		t.Fatalf("got %T, want *IISSite", docs[0].Object)
	}
	want := v1alpha1.IISSiteSpec{SiteID: 2, PhysicalPath: `E:\sites\web1`, Bindings: []v1alpha1.Binding{{Protocol: "http", IPRef: "vip1", Port: 8080}}}
	if diff := cmp.Diff(want, s.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if got := docs[0].LineOf("spec.bindings[0].port"); got != 11 {
		t.Errorf("line of port = %d, want 11", got)
	}
	if got := docs[0].LineOf("spec.health.interval"); got != 5 {
		t.Errorf("line of an unwritten field = %d, want its written parent spec on line 5", got)
	}
}

func TestDecodeJSONAndMultiDoc(t *testing.T) {
	js := `{"apiVersion":"sitekeeper.io/v1alpha1","kind":"IPResource","metadata":{"name":"vip1"},"spec":{"address":"127.0.10.1/32"}}`
	docs, errs := Decode("ip.json", []byte(js))
	if len(errs) > 0 || len(docs) != 1 || docs[0].Object.(*v1alpha1.IPResource).Spec.Address != "127.0.10.1/32" {
		t.Fatalf("json: docs=%v errs=%v", docs, errs)
	}
	multi := validSite + "---\n---\n" + strings.Replace(validSite, "web1", "web2", 1)
	docs, errs = Decode("two.yaml", []byte(multi))
	if len(errs) > 0 || len(docs) != 2 {
		t.Fatalf("multi: %d docs, errs=%v", len(docs), errs)
	}
	if docs[1].Line != 14 || docs[1].Object.Meta().Name != "web2" {
		t.Errorf("second doc at line %d named %q, want line 14 web2", docs[1].Line, docs[1].Object.Meta().Name)
	}
}

func TestDecodeRefusesHostileInput(t *testing.T) {
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	deepMap := "kind: IISSite\nx:\n" + func() string {
		var b strings.Builder
		for i := 0; i < 100; i++ {
			b.WriteString(strings.Repeat(" ", i+1) + "a:\n")
		}
		return b.String()
	}()
	laughs := "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
	tests := []struct {
		name, input, want string
	}{
		{"empty", "", "empty file"},
		{"whitespace", "  \n\n", "empty file"},
		{"comments only", "# nothing\n---\n", "no objects in file"},
		{"binary", "kind: IISSite\x00\x01\x02", "binary data"},
		{"invalid utf8", "kind: \xff\xfe", "binary data"},
		{"too large", "# " + strings.Repeat("x", MaxFileSize), "larger than"},
		{"billion laughs", laughs, "anchors and aliases are not accepted"},
		{"deep flow nesting", deep, ""},
		{"deep mapping", deepMap, "nested deeper than"},
		{"no kind", "apiVersion: sitekeeper.io/v1alpha1\nmetadata: {name: a}\n", "kind: missing"},
		{"unknown kind", "apiVersion: sitekeeper.io/v1alpha1\nkind: Pod\n", "unknown kind \"Pod\""},
		{"short kind", "apiVersion: sitekeeper.io/v1alpha1\nkind: site\n", "did you mean IISSite?"},
		{"wrong apiVersion", "apiVersion: v1\nkind: IISSite\n", "set apiVersion: sitekeeper.io/v1alpha1"},
		{"scalar document", "hello\n", "must be a mapping"},
		{"syntax error", "kind: IISSite\n  bad: : indent\n", "not valid YAML or JSON"},
		{"unknown field", strings.Replace(validSite, "siteID", "siteId", 1), `spec.siteId: unknown field (did you mean "siteID"?)`},
		{"duplicate field", validSite + "  siteID: 3\n", "spec.siteID: set twice (first on line 6)"},
		{"wrong type", strings.Replace(validSite, "port: 8080", "port: [1]", 1), "spec.bindings[0].port: want a whole number"},
		{"string wanted", strings.Replace(validSite, "ipRef: vip1", "ipRef: 12", 1), "want a string, got number 12; quote it"},
		{"out of range", strings.Replace(validSite, "port: 8080", "port: 99999999999", 1), "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			docs, errs := Decode("in.yaml", []byte(tt.input))
			if len(errs) == 0 {
				t.Fatalf("accepted hostile input, got %d docs", len(docs))
			}
			if !strings.Contains(errs.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", errs.Error(), tt.want)
			}
			if !strings.HasPrefix(errs[0].Error(), "in.yaml") {
				t.Errorf("error %q does not name the file", errs[0].Error())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestLoadFolderAndStdin(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/a.yaml", validSite)
	write(t, dir+"/notes.txt", "not a manifest")
	write(t, dir+"/.git/x.yaml", "garbage: [")
	write(t, dir+"/sub/b.yml", strings.Replace(validSite, "web1", "web2", 1))
	docs, errs := Load([]string{dir}, Options{})
	if len(errs) > 0 || len(docs) != 1 {
		t.Fatalf("non-recursive: %d docs, errs %v", len(docs), errs)
	}
	docs, errs = Load([]string{dir}, Options{Recursive: true})
	if len(errs) > 0 || len(docs) != 2 {
		t.Fatalf("recursive: %d docs, errs %v", len(docs), errs)
	}
	docs, errs = Load([]string{"-"}, Options{Stdin: bytes.NewBufferString(validSite)})
	if len(errs) > 0 || len(docs) != 1 || docs[0].File != "-" {
		t.Fatalf("stdin: %d docs, errs %v", len(docs), errs)
	}
	_, errs = Load([]string{dir + "/missing"}, Options{})
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "no such file") {
		t.Fatalf("missing path: %v", errs)
	}
}

// TestDecodeUTF16AndBOM: what Windows PowerShell 5.1's `>` writes (UTF-16LE
// with a BOM), UTF-16BE and UTF-8 with a BOM load as UTF-8 does, with the
// same lines; a UTF-16 file cut short says so.
func TestDecodeUTF16AndBOM(t *testing.T) {
	utf16le := func(s string, bigEndian bool) []byte {
		b := []byte{0xFF, 0xFE}
		if bigEndian {
			b = []byte{0xFE, 0xFF}
		}
		for _, u := range utf16.Encode([]rune(s)) {
			if bigEndian {
				b = append(b, byte(u>>8), byte(u))
			} else {
				b = append(b, byte(u), byte(u>>8))
			}
		}
		return b
	}
	site := strings.ReplaceAll(validSite, "\n", "\r\n") // PowerShell writes CRLF
	for name, data := range map[string][]byte{
		"utf-16le": utf16le(site, false),
		"utf-16be": utf16le(site, true),
		"utf-8bom": append([]byte{0xEF, 0xBB, 0xBF}, site...),
	} {
		docs, errs := Decode("sites.yaml", data)
		if len(errs) > 0 || len(docs) != 1 {
			t.Errorf("%s: %d docs, errors %v", name, len(docs), errs)
			continue
		}
		if s := docs[0].Object.(*v1alpha1.IISSite); s.Spec.PhysicalPath != `E:\sites\web1` || docs[0].LineOf("spec.bindings[0].port") != 11 {
			t.Errorf("%s: path %q, port on line %d", name, s.Spec.PhysicalPath, docs[0].LineOf("spec.bindings[0].port"))
		}
	}
	cut := utf16le(validSite, false)
	_, errs := Decode("sites.yaml", cut[:len(cut)-1])
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "odd number of bytes") {
		t.Errorf("cut UTF-16: %v", errs)
	}
}
