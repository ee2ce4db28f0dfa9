package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const gitSourceDoc = `apiVersion: sitekeeper.io/v1alpha1
kind: GitSource
metadata: {name: sites}
spec:
  url: https://git.example.com/ops/sites.git
  ref: {semver: ">=1.0.0 <2.0.0"}
  interval: 30s
`

// TestGitSourceDocuments: only a command that stores GitSources reads
// them (a folder refuses one, naming the way); they are checked like other
// documents, with lines, defaulted and validated.
func TestGitSourceDocuments(t *testing.T) {
	if _, errs := Decode("s.yaml", []byte(gitSourceDoc)); len(errs) != 1 || !strings.Contains(errs[0].Error(), "sitekeeper apply -f") || errs[0].Line != 2 {
		t.Fatalf("a GitSource where none is taken: %v", errs)
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var srcs []SourceDocument
	docs, errs := Load([]string{write("ok.yaml", gitSourceDoc)}, Options{Sources: &srcs})
	if len(errs) > 0 || len(docs) != 0 || len(srcs) != 1 {
		t.Fatalf("docs %d, sources %d, errors %v", len(docs), len(srcs), errs)
	}
	gs := srcs[0].Source
	if gs.Spec.Interval.Duration != 30*time.Second || gs.Spec.Prune == nil || !*gs.Spec.Prune || gs.Spec.Timeout.Duration != 5*time.Minute || srcs[0].Line != 1 {
		t.Errorf("not defaulted or misplaced: %+v at line %d", gs.Spec, srcs[0].Line)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", strings.Replace(gitSourceDoc, "  interval: 30s", "  interval: 30s\n  branch: main", 1), `s.yaml:8: GitSource "sites": spec.branch: unknown field`},
		{"bad range", strings.Replace(gitSourceDoc, ">=1.0.0 <2.0.0", "one", 1), `s.yaml:6: GitSource "sites": spec.ref.semver: "one" is not a semver range`},
		{"password in the URL", strings.Replace(gitSourceDoc, "https://git.example.com", "https://me:pw@git.example.com", 1), `s.yaml:5: GitSource "sites": spec.url: holds a password`},
		{"interval", strings.Replace(gitSourceDoc, "30s", "100ms", 1), `s.yaml:7: GitSource "sites": spec.interval: 100ms is out of range`},
	} {
		var srcs []SourceDocument
		_, errs := Load([]string{write("s.yaml", tc.doc)}, Options{Sources: &srcs})
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) || len(srcs) != 0 {
			t.Errorf("%s: %v (sources %d), want %q", tc.name, errs, len(srcs), tc.want)
		}
	}
}
