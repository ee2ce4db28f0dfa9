package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
		err := Network{}.Probe(context.Background(), tc.b, tc.path, 2*time.Second)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}
