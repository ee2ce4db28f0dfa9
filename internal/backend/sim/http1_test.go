package sim

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSitesSpeakHTTP1AsAServerMust: answers on one kept connection one
// after another, HTTP/1.0 closing unless asked to keep, HEAD with the
// length and no body, a length on every answer (bodies without one from
// the handler are measured), a redirect, a large file streamed whole, and
// a request that is not HTTP answered 400 and closed, a head over 64 KiB
// answered 431.
func TestSitesSpeakHTTP1AsAServerMust(t *testing.T) {
	w, n1, _, cfg := setup(t)
	bringUp(t, n1, cfg)
	big := strings.Repeat("0123456789abcdef", 40<<10) // 640 KiB: past the static cache and httpBuffered
	if err := os.WriteFile(filepath.Join(w.VolumeDir(vol), "sites", "web1", "big.txt"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.10.1:%d", cfg.Bindings[0].Port)
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, bufio.NewReader(c)
	}
	ask := func(c net.Conn, br *bufio.Reader, req string, method string) (*http.Response, string) {
		t.Helper()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%q: body: %v", req, err)
		}
		return resp, string(b)
	}
	closed := func(c net.Conn, br *bufio.Reader) bool {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := br.ReadByte()
		return err == io.EOF
	}

	c, br := dial()
	for i := range 3 {
		resp, body := ask(c, br, "GET / HTTP/1.1\r\nHost: any\r\n\r\n", "GET")
		if resp.StatusCode != 200 || body != "hello from web1" || resp.Close || resp.ContentLength != int64(len(body)) {
			t.Fatalf("request %d on a kept connection: %d %q close=%v length=%d", i, resp.StatusCode, body, resp.Close, resp.ContentLength)
		}
		if resp.Header.Get("X-Sitekeeper-Node") != "node1" {
			t.Errorf("answer headers: %v", resp.Header)
		}
	}
	resp, body := ask(c, br, "HEAD / HTTP/1.1\r\nHost: any\r\n\r\n", "HEAD")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len("hello from web1")) {
		t.Errorf("HEAD: %d %q length=%d", resp.StatusCode, body, resp.ContentLength)
	}
	resp, body = ask(c, br, "GET /missing.html HTTP/1.1\r\nHost: any\r\n\r\n", "GET")
	if resp.StatusCode != 404 || resp.ContentLength != int64(len(body)) || body == "" {
		t.Errorf("missing file: %d %q length=%d", resp.StatusCode, body, resp.ContentLength)
	}
	resp, _ = ask(c, br, "GET /index.html HTTP/1.1\r\nHost: any\r\n\r\n", "GET")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "./" {
		t.Errorf("redirect: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = ask(c, br, "GET /big.txt HTTP/1.1\r\nHost: any\r\n\r\n", "GET")
	if resp.StatusCode != 200 || body != big {
		t.Errorf("large file: %d, %d bytes of %d", resp.StatusCode, len(body), len(big))
	}
	resp, body = ask(c, br, "GET / HTTP/1.1\r\nHost: any\r\nConnection: close\r\n\r\n", "GET")
	if body != "hello from web1" || !resp.Close || !closed(c, br) {
		t.Errorf("Connection: close: %q close=%v, and the connection must end", body, resp.Close)
	}

	c, br = dial()
	resp, body = ask(c, br, "GET / HTTP/1.0\r\n\r\n", "GET")
	if body != "hello from web1" || !resp.Close || !closed(c, br) {
		t.Errorf("HTTP/1.0: %q close=%v, and the connection must end", body, resp.Close)
	}
	c, br = dial()
	ask(c, br, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET")
	if resp, body = ask(c, br, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET"); body != "hello from web1" || resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("HTTP/1.0 keep-alive, second request: %q Connection %q", body, resp.Header.Get("Connection"))
	}

	// A body the handler does not read: a short one is skipped and the
	// connection kept; past 64 KiB the connection ends after the answer.
	c, br = dial()
	small := "POST / HTTP/1.1\r\nHost: any\r\nContent-Length: 5\r\n\r\nhello"
	ask(c, br, small, "POST")
	if resp, body = ask(c, br, "GET / HTTP/1.1\r\nHost: any\r\n\r\n", "GET"); body != "hello from web1" {
		t.Errorf("after a short unread body: %d %q", resp.StatusCode, body)
	}
	c, br = dial()
	long := "POST / HTTP/1.1\r\nHost: any\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("b", 100000)
	go func() { _, _ = io.WriteString(c, long) }()
	if resp, err := http.ReadResponse(br, nil); err != nil {
		t.Errorf("a long unread body: %v", err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	if !closed(c, br) {
		t.Errorf("the connection outlived a long unread body (its rest would be read as a request)")
	}

	c, br = dial()
	huge := "GET / HTTP/1.1\r\nHost: any\r\nX-Big: " + strings.Repeat("x", 100<<10) + "\r\n\r\n"
	go func() { _, _ = io.WriteString(c, huge) }()
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 100 KiB header: %v %v, want 431", resp, err)
	}

	c, br = dial()
	resp, _ = ask(c, br, "NOT HTTP AT ALL\r\n\r\n", "GET")
	if resp.StatusCode != 400 || !closed(c, br) {
		t.Errorf("garbage: %d, want 400 and the connection closed", resp.StatusCode)
	}

	// Stopping the site closes its kept connections, as IIS does.
	c, br = dial()
	ask(c, br, "GET / HTTP/1.1\r\nHost: any\r\n\r\n", "GET")
	must(t, n1.StopSite(ctx, cfg.Name))
	if !closed(c, br) {
		t.Errorf("a kept connection outlived its site's stop")
	}
}
