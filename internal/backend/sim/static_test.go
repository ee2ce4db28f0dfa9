package sim

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStaticFilesServeAsFileServerDoes: a small file is served from
// memory, a change on disk is served within the recheck interval, and what
// is not a small file (a folder listing, the /index.html redirect, a
// missing file) is answered exactly as http.FileServer answers it.
func TestStaticFilesServeAsFileServerDoes(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "index.html")
	if err := os.WriteFile(page, []byte("first\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	var c staticFiles
	get := func(p string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		c.serve(rec, httptest.NewRequest(http.MethodGet, p, nil), dir)
		return rec
	}
	if rec := get("/"); rec.Code != 200 || rec.Body.String() != "first\n" {
		t.Fatalf("GET /: %d %q", rec.Code, rec.Body.String())
	}
	if c.files[page] == nil {
		t.Fatalf("the index page was not kept in memory")
	}
	if err := os.WriteFile(page, []byte("second, longer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.files[page].checked = time.Now().Add(-2 * staticRecheck) // a second later
	if rec := get("/"); rec.Body.String() != "second, longer\n" {
		t.Errorf("after a change: %q", rec.Body.String())
	}
	for _, p := range []string{"/sub/", "/index.html", "/missing.html", "/sub"} {
		want := httptest.NewRecorder()
		http.FileServer(http.Dir(dir)).ServeHTTP(want, httptest.NewRequest(http.MethodGet, p, nil))
		got := get(p)
		if got.Code != want.Code || strings.TrimSpace(got.Body.String()) != strings.TrimSpace(want.Body.String()) || got.Header().Get("Location") != want.Header().Get("Location") {
			t.Errorf("GET %s: %d %q (Location %q), FileServer answers %d %q (Location %q)", p, got.Code, got.Body.String(), got.Header().Get("Location"), want.Code, want.Body.String(), want.Header().Get("Location"))
		}
	}
}
