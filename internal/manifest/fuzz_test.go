package manifest

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the decoder: it must never panic, hang
// or accept a document without reporting either objects or errors.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../../manifests/*/*.yaml")
	more, _ := filepath.Glob("../../manifests/examples/*/*.yaml")
	for _, p := range append(seeds, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(validSite))
	f.Add([]byte("a: &a [1]\nb: *a\n"))
	f.Add([]byte("{\"kind\":\"IPResource\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, errs := Decode("fuzz.yaml", data)
		if len(docs) == 0 && len(errs) == 0 {
			t.Fatalf("no objects and no error for %q", data)
		}
		for _, e := range errs {
			if e.Message == "" || e.File != "fuzz.yaml" {
				t.Fatalf("error without message or file: %+v", e)
			}
		}
	})
}
