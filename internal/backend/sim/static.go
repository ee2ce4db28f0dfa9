package sim

import (
	"bytes"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// staticFiles answers GETs of small static files from memory, as HTTP.sys's
// kernel-mode response cache does for IIS: a file is read from disk at most
// once a second, whatever the rate of requests. A thousand sites probed
// every five seconds opened, read and closed their index page two hundred
// times a second, a sixth of an idle `up`'s CPU. Anything else (a folder
// without an index page, a redirect, a large file, another method) is
// served by http.FileServer as before.
type staticFiles struct {
	mu    sync.Mutex
	files map[string]*cachedFile
}

type cachedFile struct {
	body    []byte
	mod     time.Time
	checked time.Time
	// The headers http.ServeContent would give it.
	contentType, lastModified string
}

// contentType is the type http.ServeContent gives a file: by its
// extension, else sniffed from its first 512 bytes.
func contentType(name string, body []byte) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	return http.DetectContentType(body[:min(len(body), 512)])
}

// plainGet is a GET that asks for the whole file, whatever its date or
// version.
func plainGet(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, h := range []string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	return true
}

const (
	staticMaxSize  = 64 << 10
	staticMaxFiles = 4096
	staticRecheck  = time.Second
)

func (c *staticFiles) serve(w http.ResponseWriter, r *http.Request, dir string) {
	if f, name := c.lookup(r, dir); f != nil {
		if plainGet(r) {
			// What http.ServeContent answers to a GET with no
			// condition and no range, without its work per request
			// (a health check every few seconds for every site).
			h := w.Header()
			h.Set("Content-Type", f.contentType)
			h.Set("Last-Modified", f.lastModified)
			h.Set("Accept-Ranges", "bytes")
			h.Set("Content-Length", strconv.Itoa(len(f.body)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(f.body)
			return
		}
		http.ServeContent(w, r, name, f.mod, bytes.NewReader(f.body))
		return
	}
	http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
}

// lookup returns the cached file r asks for, read again when it is older
// than staticRecheck; nil when the request is not for a small file.
func (c *staticFiles) lookup(r *http.Request, dir string) (*cachedFile, string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, ""
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/index.html") {
		return nil, "" // FileServer redirects these
	}
	if strings.HasSuffix(p, "/") {
		p += "index.html"
	}
	name := filepath.Join(dir, filepath.FromSlash(path.Clean(p)))
	now := time.Now()
	c.mu.Lock()
	f := c.files[name]
	c.mu.Unlock()
	if f != nil && now.Sub(f.checked) < staticRecheck {
		return f, name
	}
	fi, err := os.Stat(name)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > staticMaxSize {
		c.forget(name)
		return nil, ""
	}
	if f == nil || !fi.ModTime().Equal(f.mod) || int64(len(f.body)) != fi.Size() {
		body, err := os.ReadFile(name)
		if err != nil {
			c.forget(name)
			return nil, ""
		}
		f = &cachedFile{body: body, mod: fi.ModTime(), contentType: contentType(name, body), lastModified: fi.ModTime().UTC().Format(http.TimeFormat)}
	} else {
		f = &cachedFile{body: f.body, mod: f.mod, contentType: f.contentType, lastModified: f.lastModified}
	}
	f.checked = now
	c.mu.Lock()
	if c.files == nil || len(c.files) >= staticMaxFiles {
		c.files = map[string]*cachedFile{}
	}
	c.files[name] = f
	c.mu.Unlock()
	return f, name
}

func (c *staticFiles) forget(name string) {
	c.mu.Lock()
	delete(c.files, name)
	c.mu.Unlock()
}
