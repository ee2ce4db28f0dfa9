// Package probe checks that a binding serves, over the network, the way a
// client would: an HTTP(S) request or an FTP banner. It is the same on every
// backend.
package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// Network probes bindings over real sockets.
type Network struct{}

// Probe checks b: an HTTP(S) GET of path answered below 500, or an FTP
// server greeting with 220.
func (Network) Probe(ctx context.Context, b backend.Binding, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(b.IP, strconv.Itoa(int(b.Port)))
	switch b.Protocol {
	case "http":
		return probePlainHTTP(ctx, b, addr, path)
	case "https":
		return probeHTTP(ctx, b, addr, path)
	case "ftp":
		return probeFTP(ctx, addr, b.Port == 990)
	}
	return fmt.Errorf("probe %s: unknown protocol", b)
}

func probeHTTP(ctx context.Context, b backend.Binding, addr, path string) error {
	host := b.HostName
	if host == "" {
		host = b.IP
	}
	tr := &http.Transport{
		// The check is "does it serve", not "is the certificate trusted":
		// certificates are managed on the nodes, not by Sitekeeper.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ServerName: b.HostName}, //nolint:gosec
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	u := b.Protocol + "://" + net.JoinHostPort(host, strconv.Itoa(int(b.Port))) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", b, err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", b, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 500 {
		return fmt.Errorf("probe %s: HTTP %d", b, resp.StatusCode)
	}
	return nil
}

// probePlainHTTP sends one HTTP/1.1 GET on a fresh connection and reads
// the status line. A node checks hundreds of sites every few seconds; a
// client transport per check (its goroutines, buffers and pools) cost
// more than the check, so plain HTTP is spoken directly. HTTPS goes
// through net/http (probeHTTP) for its TLS.
func probePlainHTTP(ctx context.Context, b backend.Binding, addr, path string) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("probe %s: %w", b, err)
	}
	defer conn.Close()
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
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: sitekeeper-probe\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return fmt.Errorf("probe %s: %w", b, err)
	}
	line, err := bufio.NewReaderSize(conn, 512).ReadString('\n')
	if err != nil {
		return fmt.Errorf("probe %s: read the status line: %w", b, err)
	}
	// "HTTP/1.1 200 OK"
	proto, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
	code, codeErr := strconv.Atoi(strings.SplitN(rest, " ", 2)[0])
	if !ok || !strings.HasPrefix(proto, "HTTP/") || codeErr != nil {
		return fmt.Errorf("probe %s: not an HTTP answer: %q", b, strings.TrimSpace(line))
	}
	if code >= 500 {
		return fmt.Errorf("probe %s: HTTP %d", b, code)
	}
	return nil
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
