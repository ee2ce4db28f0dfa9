package sim

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// listener is one socket of a node, shared by every started site bound to
// its ip:port (IIS routes by host name behind one socket, as HTTP.sys does).
type listener struct {
	key   string // ip:port
	proto string // http, https, ftp, ftps
	ln    net.Listener

	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool
}

func (l *listener) close() {
	l.mu.Lock()
	l.done = true
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	_ = l.ln.Close()
}

func socketProto(b backend.Binding, ftpSSL string) string {
	if b.Protocol == "ftp" && ftpSSL == "Implicit" {
		return "ftps"
	}
	return b.Protocol
}

// syncListenersLocked opens and closes sockets so that exactly the started
// sites' bindings on held addresses listen. Caller holds n.mu.
func (n *Node) syncListenersLocked() error {
	n.byKey = nil // every change of sites or bindings passes here
	n.indexLocked()
	keys := make([]string, 0, len(n.byKey)+len(n.listeners))
	for k := range n.byKey {
		keys = append(keys, k)
	}
	for k := range n.listeners {
		if _, ok := n.byKey[k]; !ok {
			keys = append(keys, k)
		}
	}
	return n.syncKeysLocked(keys)
}

// syncKeysLocked is syncListenersLocked for the sockets keys only: a site
// started or stopped touches its own bindings' sockets, and looking at
// every site for each (under the node's lock) made a node starting a
// thousand sites do a million lookups one at a time. Caller holds n.mu.
func (n *Node) syncKeysLocked(keys []string) error {
	n.indexLocked()
	var errs []error
	for _, key := range keys {
		want := ""
		for _, s := range n.byKey[key] {
			if !s.started {
				continue
			}
			for _, b := range s.cfg.Bindings {
				if _, held := n.addrs[b.IP]; held && bindingKey(b) == key {
					want = socketProto(b, s.cfg.FTPSSL)
				}
			}
		}
		if l, ok := n.listeners[key]; ok && (want == "" || want != l.proto || !n.powered.Load()) {
			l.close()
			delete(n.listeners, key)
		}
		if want == "" || !n.powered.Load() {
			continue
		}
		if _, ok := n.listeners[key]; ok {
			continue
		}
		l, err := n.listen(key, want)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.listeners[key] = l
	}
	return errors.Join(errs...)
}

func bindingKey(b backend.Binding) string {
	return net.JoinHostPort(b.IP, strconv.Itoa(int(b.Port)))
}

// keysOf is the sockets of s's bindings.
func keysOf(s *site) []string {
	var keys []string
	for _, b := range s.cfg.Bindings {
		if k := bindingKey(b); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// indexLocked builds byKey when the sites changed. Caller holds n.mu.
func (n *Node) indexLocked() {
	if n.byKey != nil {
		return
	}
	n.byKey = map[string][]*site{}
	for _, s := range n.sites {
		for _, k := range keysOf(s) {
			n.byKey[k] = append(n.byKey[k], s)
		}
	}
}

func (n *Node) listen(key, proto string) (*listener, error) {
	ln, err := net.Listen("tcp", key)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", key, err)
	}
	l := &listener{key: key, proto: proto, ln: ln, conns: map[net.Conn]bool{}}
	switch proto {
	case "http":
		go l.serve(func(c net.Conn) { n.httpSession(l, c) })
	case "https":
		cfg := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return n.certFor(key, h.ServerName)
		}}
		go l.serve(func(c net.Conn) { n.httpSession(l, tls.Server(c, cfg)) })
	case "ftp", "ftps":
		go l.serve(func(c net.Conn) { n.ftpSession(l, c) })
	}
	return l, nil
}

// siteFor finds the started site answering host on key, exact host name
// first, then the site bound with no host name. Caller holds n.mu.
func (n *Node) siteForLocked(key, proto, host string) *site {
	n.indexLocked()
	var fallback *site
	for _, s := range n.byKey[key] {
		if !s.started {
			continue
		}
		for _, b := range s.cfg.Bindings {
			if bindingKey(b) != key || socketProto(b, s.cfg.FTPSSL) != proto {
				continue
			}
			if strings.EqualFold(b.HostName, host) {
				return s
			}
			if b.HostName == "" {
				fallback = s
			}
		}
	}
	return fallback
}

func (n *Node) certFor(key, host string) (*tls.Certificate, error) {
	n.mu.Lock()
	var thumb string
	for _, s := range n.sites {
		for _, b := range s.cfg.Bindings {
			if b.Protocol == "https" && net.JoinHostPort(b.IP, strconv.Itoa(int(b.Port))) == key && (thumb == "" || strings.EqualFold(b.HostName, host)) {
				thumb = b.CertHash
			}
		}
	}
	n.mu.Unlock()
	if thumb == "" {
		return nil, fmt.Errorf("no certificate bound on %s", key)
	}
	c, err := n.w.certificate(thumb, host)
	return &c, err
}

func (n *Node) serveHTTP(key, proto string, w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	n.mu.Lock()
	s := n.siteForLocked(key, proto, host)
	var name, path string
	if s != nil {
		name, path = s.cfg.Name, s.cfg.PhysicalPath
	}
	n.mu.Unlock()
	if s == nil {
		// HTTP.sys answers 404 "Bad Request - Invalid Hostname" without a site.
		http.Error(w, "Bad Request - Invalid Hostname", http.StatusNotFound)
		return
	}
	if n.hasFault("site", name) {
		http.Error(w, "500 - Internal server error (sitekeeper sim fail-site)", http.StatusInternalServerError)
		return
	}
	dir, online, err := n.w.hostPath(n.name, path)
	if err != nil {
		http.Error(w, "500 - Internal server error: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if !online {
		http.Error(w, fmt.Sprintf("503 - the volume holding %s of site %s is offline on %s", path, name, n.name), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Server", "Microsoft-IIS/10.0 (sitekeeper-sim)")
	w.Header().Set("X-Sitekeeper-Node", n.name)
	w.Header().Set("X-Sitekeeper-Site", name)
	n.w.static.serve(w, r, dir)
}

func (n *Node) ftpSession(l *listener, c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var rw io.ReadWriter = c
	if l.proto == "ftps" {
		tc := tls.Server(c, &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return n.ftpCert(l.key)
		}})
		if err := tc.HandshakeContext(context.Background()); err != nil {
			return
		}
		rw = tc
	}
	n.mu.Lock()
	s := n.siteForLocked(l.key, l.proto, "")
	name := ""
	if s != nil {
		name = s.cfg.Name
	}
	n.mu.Unlock()
	if s == nil {
		fmt.Fprintf(rw, "421 Service not available\r\n")
		return
	}
	fmt.Fprintf(rw, "220 Microsoft FTP Service (sitekeeper-sim %s, site %s)\r\n", n.name, name)
	sc := bufio.NewScanner(rw)
	for sc.Scan() {
		cmd := strings.ToUpper(strings.TrimSpace(sc.Text()))
		switch {
		case cmd == "QUIT":
			fmt.Fprintf(rw, "221 Goodbye.\r\n")
			return
		case cmd == "NOOP":
			fmt.Fprintf(rw, "200 NOOP command successful.\r\n")
		default:
			fmt.Fprintf(rw, "502 Command not implemented.\r\n")
		}
	}
}

func (n *Node) ftpCert(key string) (*tls.Certificate, error) {
	n.mu.Lock()
	thumb := ""
	for _, s := range n.sites {
		for _, b := range s.cfg.Bindings {
			if net.JoinHostPort(b.IP, strconv.Itoa(int(b.Port))) == key && b.CertHash != "" {
				thumb = b.CertHash
			}
		}
	}
	n.mu.Unlock()
	if thumb == "" {
		thumb = "FTP-" + key
	}
	c, err := n.w.certificate(thumb, "")
	return &c, err
}
