package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/console"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// defaultAgentHTTP is the agent's documented metrics, health and dashboard
// port.
const defaultAgentHTTP = "127.0.0.1:9650"

// httpListener is the process's one HTTP listener (--http-listen), bound
// before anything starts so that a port in use fails the command at once.
type httpListener struct {
	ln        net.Listener
	tls       *tls.Config
	anonymous string
}

// openHTTP checks --http-listen and binds it; nil when it is "off". A
// listener other hosts reach needs TLS with the cluster's certificates
// (tlsFiles), where a client certificate names the caller and its role;
// devCluster says the caller is `up`, whose loopback callers may act.
func openHTTP(addr string, tlsFiles etcdstore.TLSFiles, devCluster, insecure bool) (*httpListener, error) {
	if addr == "off" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, usagef("--http-listen %q: give host:port (127.0.0.1:9650) or off", addr)
	}
	h := &httpListener{}
	loopback := loopbackListen(addr)
	withTLS := !devCluster && tlsFiles.CA != "" && tlsFiles.Cert != "" && tlsFiles.Key != ""
	switch {
	case withTLS:
		cfg, err := serverTLS(tlsFiles)
		if err != nil {
			return nil, fmt.Errorf("--http-listen %s: %w", addr, err)
		}
		h.tls = cfg
		if loopback {
			// Local reads (a service manager's /readyz, a local
			// Prometheus) need no certificate; acting does.
			h.anonymous = console.RoleViewer
		}
	case devCluster && loopback:
		h.anonymous = console.RoleAdmin
	case loopback:
		h.anonymous = console.RoleViewer
	case insecure:
		h.anonymous = console.RoleViewer
		if devCluster {
			h.anonymous = console.RoleAdmin
		}
	case devCluster:
		return nil, usagef("--http-listen %s: up serves its dashboard without TLS or authentication, so it listens on loopback only (127.0.0.1:PORT); for a dashboard other hosts reach, run agents with the cluster's certificates (sitekeeper init), or pass --insecure-plaintext for a lab", addr)
	default:
		return nil, usagef("--http-listen %s: a dashboard other hosts reach needs the cluster's certificates (--etcd-cacert, --etcd-cert, --etcd-key, as 'sitekeeper join' writes them) so that callers prove who they are; listen on 127.0.0.1, or pass --insecure-plaintext for a lab (read-only)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http-listen %s: %w", addr, err)
	}
	h.ln = ln
	return h, nil
}

// url is where the listener answers.
func (h *httpListener) url() string {
	scheme := "http"
	if h.tls != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s/", scheme, h.ln.Addr())
}

// serve runs the console on the listener until ctx ends.
func (h *httpListener) serve(ctx context.Context, st *etcdstore.Store, o console.Options, log logr.Logger) {
	o.Store, o.TLS, o.Anonymous, o.Log = st, h.tls, h.anonymous, log.WithName("console")
	if o.AnonymousName == "" {
		o.AnonymousName = defaultFieldManager()
	}
	o.Leases = st.LeaseAges
	srv := console.New(o)
	go func() {
		if err := srv.Serve(ctx, h.ln); err != nil {
			log.Error(err, "Dashboard stopped")
		}
	}()
}

// serverTLS serves the node's certificate, read again when its file
// changes (renewals happen while the agent runs), and verifies client
// certificates against the cluster CA.
func serverTLS(f etcdstore.TLSFiles) (*tls.Config, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", f.CA)
	}
	kp := &keyPair{cert: f.Cert, key: f.Key}
	if _, err := kp.get(nil); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}, nil
}

// keyPair loads a certificate and key, again whenever the certificate
// file's modification time changes.
type keyPair struct {
	cert, key string
	mu        sync.Mutex
	mod       time.Time
	loaded    *tls.Certificate
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.cert)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if k.loaded != nil && fi.ModTime().Equal(k.mod) {
		return k.loaded, nil
	}
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		return nil, fmt.Errorf("load the node certificate %s: %w", k.cert, err)
	}
	k.loaded, k.mod = &c, fi.ModTime()
	return k.loaded, nil
}
