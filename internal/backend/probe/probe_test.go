package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// TestPlainHTTP: an answer under 500 passes, 5xx fails, the host name of
// the binding is the Host header, a non-HTTP answer and a closed port fail.
func TestPlainHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Path == "/named" && !strings.HasPrefix(r.Host, "shop.example.com"):
			w.WriteHeader(http.StatusServiceUnavailable) // no such host here
		case r.URL.Path == "/named":
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	b := backend.Binding{Protocol: "http", IP: host, Port: int32(p)}
	named := b
	named.HostName = "shop.example.com"

	garbage, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	go func() {
		for {
			c, err := garbage.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH\r\n"))
			c.Close()
		}
	}()
	gp := garbage.Addr().(*net.TCPAddr).Port
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	cp := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	for _, tc := range []struct {
		name    string
		b       backend.Binding
		path    string
		wantErr string
	}{
		{"404 is serving", b, "/", ""},
		{"host header", named, "/named", ""},
		{"no host header", b, "/named", "HTTP 503"},
		{"503", b, "/down", "HTTP 503"},
		{"not HTTP", backend.Binding{Protocol: "http", IP: "127.0.0.1", Port: int32(gp)}, "/", "not an HTTP answer"},
		{"closed port", backend.Binding{Protocol: "http", IP: "127.0.0.1", Port: int32(cp)}, "/", "refused"},
	} {
		err := new(Network).Probe(context.Background(), tc.b, tc.path, 2*time.Second)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestKeptConnections: checks of one binding share one connection; a
// server that closed it, that says it closes, or that no longer answers on
// it costs a fresh connection, not a failed check; a stopped server fails
// the check.
func TestKeptConnections(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	perConn := map[string]int{}
	hangSecond := false
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		perConn[r.RemoteAddr]++
		n, hang := perConn[r.RemoteAddr], hangSecond
		mu.Unlock()
		if hang && n > 1 {
			time.Sleep(2 * time.Second) // answers nothing on the old connection in time
		}
		if r.URL.Path == "/closing" {
			w.Header().Set("Connection", "close")
		}
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	b := backend.Binding{Protocol: "http", IP: host, Port: int32(p)}
	opened := func() int {
		mu.Lock()
		defer mu.Unlock()
		return conns
	}
	var n Network
	check := func(path string) {
		t.Helper()
		if err := n.Probe(context.Background(), b, path, 1*time.Second); err != nil {
			t.Fatalf("probe %s: %v", path, err)
		}
	}

	for range 5 {
		check("/")
	}
	if got := opened(); got != 1 {
		t.Fatalf("5 checks opened %d connections, want 1", got)
	}

	srv.CloseClientConnections() // the server closed the kept connection
	check("/")
	if got := opened(); got != 2 {
		t.Fatalf("after the server closed it: %d connections, want 2", got)
	}

	check("/closing")
	check("/")
	if got := opened(); got != 3 {
		t.Fatalf("after Connection: close: %d connections, want 3", got)
	}

	mu.Lock()
	hangSecond = true
	mu.Unlock()
	// The kept connection hangs past the whole timeout; the check passes
	// only if a fresh connection is tried within it.
	check("/")
	if got := opened(); got != 4 {
		t.Fatalf("after a hanging kept connection: %d connections, want 4", got)
	}

	srv.Close()
	if err := n.Probe(context.Background(), b, "/", time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a stopped server: %v, want refused", err)
	}
}
