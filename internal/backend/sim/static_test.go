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

// TestAPlainGetIsAnsweredAsServeContentAnswersIt: the answer to a GET
// with no condition and no range, made without http.ServeContent, has
// its status, headers and body; a conditional GET or a range still goes
// through it (304, 206).
func TestAPlainGetIsAnsweredAsServeContentAnswersIt(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"index.html": "<p>hello</p>\n", "data.bin": "\x00\x01binary", "plain": "no extension, sniffed\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var c staticFiles
	for _, p := range []string{"/", "/data.bin", "/plain"} {
		got := httptest.NewRecorder()
		c.serve(got, httptest.NewRequest(http.MethodGet, p, nil), dir)
		name := strings.TrimPrefix(p, "/")
		if name == "" {
			name = "index.html"
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		want := httptest.NewRecorder()
		http.ServeContent(want, httptest.NewRequest(http.MethodGet, p, nil), fi.Name(), fi.ModTime(), f)
		f.Close()
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("GET %s: %d %q, ServeContent answers %d %q", p, got.Code, got.Body.String(), want.Code, want.Body.String())
		}
		for _, h := range []string{"Content-Type", "Last-Modified", "Accept-Ranges", "Content-Length"} {
			if got.Header().Get(h) != want.Header().Get(h) {
				t.Errorf("GET %s: %s %q, ServeContent gives %q", p, h, got.Header().Get(h), want.Header().Get(h))
			}
		}
		cond := httptest.NewRequest(http.MethodGet, p, nil)
		cond.Header.Set("If-Modified-Since", want.Header().Get("Last-Modified"))
		rec := httptest.NewRecorder()
		c.serve(rec, cond, dir)
		if rec.Code != http.StatusNotModified {
			t.Errorf("conditional GET %s: %d, want 304", p, rec.Code)
		}
		rng := httptest.NewRequest(http.MethodGet, p, nil)
		rng.Header.Set("Range", "bytes=0-1")
		rec = httptest.NewRecorder()
		c.serve(rec, rng, dir)
		if rec.Code != http.StatusPartialContent || rec.Body.Len() != 2 {
			t.Errorf("range GET %s: %d with %d bytes, want 206 with 2", p, rec.Code, rec.Body.Len())
		}
	}
}
