// Package probe checks that a binding serves, over the network, the way a
// client would: an HTTP(S) request or an FTP banner. It is the same on every
// backend.
package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// Network probes bindings over real sockets. Its zero value is ready.
//
// A node checks hundreds of sites every few seconds, and a TCP connection
// set up and torn down per check cost more than the check (most of an idle
// node's CPU with 1,000 sites). So Network keeps one connection per HTTP
// binding open between checks, as a browser or a load balancer does, and
// checks on it. A kept connection is given half the check's time and, when
// it fails (the server closed it, the address went away), the check is made
// again on a fresh connection with the rest, so only the fresh connection's
// verdict counts. No connection is kept longer than keepFor, so a new
// connection is proven at least that often.
type Network struct {
	mu    sync.Mutex
	plain map[string]*keptConn
	tls   map[string]*http.Transport
}

// keepFor is less than IIS's default connection timeout (120 s), so the
// server does not close a kept connection under a check.
const keepFor = time.Minute

type keptConn struct {
	conn  net.Conn
	br    *bufio.Reader
	since time.Time
}

// Probe checks b: an HTTP(S) GET of path answered below 500, or an FTP
// server greeting with 220.
func (n *Network) Probe(ctx context.Context, b backend.Binding, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(b.IP, strconv.Itoa(int(b.Port)))
	switch b.Protocol {
	case "http":
		return n.probePlainHTTP(ctx, b, addr, path)
	case "https":
		return n.probeHTTPS(ctx, b, addr, path)
	case "ftp":
		return probeFTP(ctx, addr, b.Port == 990)
	}
	return fmt.Errorf("probe %s: unknown protocol", b)
}

// transport is the keep-alive client of one HTTPS binding: net/http pools
// by URL host, and two bindings with one host name on two addresses must
// not share connections.
func (n *Network) transport(addr string, b backend.Binding) *http.Transport {
	key := addr + " " + b.HostName
	n.mu.Lock()
	defer n.mu.Unlock()
	if tr, ok := n.tls[key]; ok {
		return tr
	}
	if n.tls == nil {
		n.tls = map[string]*http.Transport{}
	}
	tr := &http.Transport{
		// The check is "does it serve", not "is the certificate trusted":
		// certificates are managed on the nodes, not by Sitekeeper.
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, ServerName: b.HostName}, //nolint:gosec
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     keepFor,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	n.tls[key] = tr
	return tr
}

func (n *Network) probeHTTPS(ctx context.Context, b backend.Binding, addr, path string) error {
	host := b.HostName
	if host == "" {
		host = b.IP
	}
	tr := n.transport(addr, b)
	u := b.Protocol + "://" + net.JoinHostPort(host, strconv.Itoa(int(b.Port))) + path
	get := func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, err
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, nil
	}
	half, cancel := halfOf(ctx)
	code, err := get(half)
	cancel()
	if err != nil {
		// Perhaps a kept connection that no longer leads anywhere: the
		// verdict is a fresh connection's.
		tr.CloseIdleConnections()
		code, err = get(ctx)
	}
	if err != nil {
		return fmt.Errorf("probe %s: %w", b, err)
	}
	if code >= 500 {
		return fmt.Errorf("probe %s: HTTP %d", b, code)
	}
	return nil
}

// halfOf is ctx with half of its remaining time.
func halfOf(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
}

// probePlainHTTP sends an HTTP/1.1 GET and reads the answer. Plain HTTP is
// spoken directly: a client transport per check (its goroutines, buffers
// and pools) cost more than the check. HTTPS goes through net/http
// (probeHTTPS) for its TLS.
func (n *Network) probePlainHTTP(ctx context.Context, b backend.Binding, addr, path string) error {
	host := b.HostName
	if host == "" {
		host = b.IP
	}
	if b.Port != 80 {
		host = net.JoinHostPort(host, strconv.Itoa(int(b.Port)))
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 literal
	}
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: sitekeeper-probe\r\n\r\n"
	key := addr + " " + host
	if k := n.take(key); k != nil {
		half, cancel := halfOf(ctx)
		code, reusable, err := k.get(half, req)
		cancel()
		if err == nil {
			if reusable {
				n.keep(key, k)
			} else {
				k.conn.Close()
			}
			return verdict(b, code)
		}
		k.conn.Close()
	}
	conn, err := dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("probe %s: %w", b, err)
	}
	k := &keptConn{conn: conn, br: bufio.NewReaderSize(conn, 1024), since: time.Now()}
	code, reusable, err := k.get(ctx, req)
	if err != nil || !reusable {
		conn.Close()
	} else {
		n.keep(key, k)
	}
	if err != nil {
		return fmt.Errorf("probe %s: %w", b, err)
	}
	return verdict(b, code)
}

func verdict(b backend.Binding, code int) error {
	if code >= 500 {
		return fmt.Errorf("probe %s: HTTP %d", b, code)
	}
	return nil
}

// get sends req on the connection and reads the whole answer. reusable is
// whether the connection may carry the next check: the server did not say
// it closes, and the body was read to its end.
func (k *keptConn) get(ctx context.Context, req string) (code int, reusable bool, err error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(keepFor)
	}
	if err := k.conn.SetDeadline(dl); err != nil {
		return 0, false, err
	}
	if _, err := io.WriteString(k.conn, req); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) {
			return 0, false, fmt.Errorf("read the answer: %w", err)
		}
		return 0, false, fmt.Errorf("not an HTTP answer: %w", err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	whole := err == nil && n < 64<<10
	return resp.StatusCode, whole && !resp.Close && time.Since(k.since) < keepFor, nil
}

// take removes key's kept connection, if any, so that two checks never
// share one.
func (n *Network) take(key string) *keptConn {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := n.plain[key]
	delete(n.plain, key)
	return k
}

func (n *Network) keep(key string, k *keptConn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.plain == nil {
		n.plain = map[string]*keptConn{}
	}
	if old := n.plain[key]; old != nil {
		old.conn.Close()
	}
	n.plain[key] = k
}

// dial connects to addr with the probe's deadline on the connection too, so
// that a server that accepts and then says nothing cannot hold the probe.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

func probeFTP(ctx context.Context, addr string, implicitTLS bool) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("probe ftp %s: %w", addr, err)
	}
	defer conn.Close()
	var rw net.Conn = conn
	if implicitTLS {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("probe ftps %s: %w", addr, err)
		}
		rw = tc
	}
	line, err := bufio.NewReader(rw).ReadString('\n')
	if err != nil {
		return fmt.Errorf("probe ftp %s: read banner: %w", addr, err)
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("probe ftp %s: banner %q, want 220", addr, strings.TrimSpace(line))
	}
	_, _ = io.WriteString(rw, "QUIT\r\n")
	return nil
}
