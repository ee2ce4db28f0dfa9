package validation_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/manifest"
)

// TestInvalidManifests proves that each file under manifests/invalid fails
// with exactly the error its first line names, and nothing else.
func TestInvalidManifests(t *testing.T) {
	files, err := filepath.Glob("../../manifests/invalid/*.yaml")
	if err != nil || len(files) < 20 {
		t.Fatalf("found %d invalid manifests (err %v), want at least 20", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := firstLineWant(t, f)
			_, res := manifest.LoadAndValidate([]string{f}, manifest.Options{})
			var got []string
			for _, e := range res.Errors {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff([]string{strings.ReplaceAll(want, "{file}", f)}, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func firstLineWant(t *testing.T, path string) string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Scan()
	line, ok := strings.CutPrefix(sc.Text(), "# error: ")
	if !ok {
		t.Fatalf("%s: first line must be \"# error: <the expected error>\"", path)
	}
	return line
}

// TestExamplesAreValid proves every example folder validates on its own.
func TestExamplesAreValid(t *testing.T) {
	dirs, _ := filepath.Glob("../../manifests/examples/*")
	demo, _ := filepath.Glob("../../manifests/demo")
	dirs = append(dirs, demo...)
	if len(dirs) < 5 {
		t.Fatalf("found %d example folders, want at least 5", len(dirs))
	}
	for _, d := range dirs {
		t.Run(filepath.Base(d), func(t *testing.T) {
			docs, res := manifest.LoadAndValidate([]string{d}, manifest.Options{Recursive: true})
			if len(res.Errors) > 0 {
				t.Fatalf("invalid:\n%v", res.Errors)
			}
			if len(docs) == 0 || len(res.Graph.Groups) == 0 {
				t.Fatalf("no objects or groups")
			}
		})
	}
}
