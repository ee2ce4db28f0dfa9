package pki

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/atomicfile"
)

// ServerFile holds the join endpoint a node joined through: where it
// renews its certificate.
const ServerFile = "server"

// RenewRequest asks for a new certificate for the key of CSR; who asks is
// the client certificate of the TLS connection.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// renew serves /v1/renew: a node that shows its current, valid node
// certificate gets a new one, for a new key, with the same name and hosts.
func renew(ca *CA, certTTL time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "renewal needs the node's current certificate", http.StatusUnauthorized)
			return
		}
		old := r.TLS.VerifiedChains[0][0]
		if !slices.Contains(old.Subject.Organization, RoleNode) {
			http.Error(w, "only a node certificate is renewed here; operators get theirs from `sitekeeper certs operator`", http.StatusForbidden)
			return
		}
		var req RenewRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, "not a renewal request", http.StatusBadRequest)
			return
		}
		csr, err := parseCSR(req.CSR)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cert, _, err := ca.Issue(renewalOf(old, certTTL, csr.PublicKey))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(JoinReply{Cert: string(CertPEM(cert)), CA: string(CertPEM(ca.Cert))})
	}
}

// NeedsRenewal reports whether less than a third of c's lifetime is left.
func NeedsRenewal(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotAfter.Sub(now) < life/3
}

// Renew replaces dir/NAME.crt and dir/NAME.key with a new key and a
// certificate for it from the join endpoint the node joined through,
// authenticated by the current certificate. etcd reads the files at every
// TLS handshake, so the member and the agent's client use the new pair
// without a restart.
func Renew(ctx context.Context, dir, name string) (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, ServerFile))
	if err != nil {
		return nil, fmt.Errorf("the join endpoint to renew from (%s, written by join): %w", filepath.Join(dir, ServerFile), err)
	}
	server := strings.TrimSpace(string(b))
	caCert, err := LoadCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, err
	}
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
	cert, _, err := requestCert(ctx, client, server+"/v1/renew", "renew at "+server, RenewRequest{CSR: csr})
	if err != nil {
		return nil, err
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("renew at %s: the new certificate is not the cluster CA's: %w", server, err)
	}
	return cert, WritePair(dir, name, cert, key)
}

func saveServer(dir, server string) error {
	return atomicfile.WriteFile(filepath.Join(dir, ServerFile), []byte(server+"\n"), 0o600)
}

// renewalOf is the request that renews node certificate old: the same
// name and hosts, valid ttl, for pub (nil: a new key).
func renewalOf(old *x509.Certificate, ttl time.Duration, pub crypto.PublicKey) Request {
	hosts := slices.Clone(old.DNSNames)
	for _, ip := range old.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return Request{Name: old.Subject.CommonName, Role: RoleNode, Hosts: hosts, Server: true, Client: true, TTL: ttl, PublicKey: pub}
}

// ttlOf is the TTL c was issued for: Issue back-dates by a tenth of it, at
// most five minutes.
func ttlOf(c *x509.Certificate) time.Duration {
	life := c.NotAfter.Sub(c.NotBefore)
	if ttl := life - 5*time.Minute; ttl/10 >= 5*time.Minute {
		return ttl
	}
	return life * 10 / 11
}

// RenewLocal renews dir/NAME's node certificate with the CA in dir (the
// node that ran init holds the CA's key and has no join endpoint to ask):
// a new key, the same name and hosts, the old certificate's lifetime.
func RenewLocal(dir, name string) (*x509.Certificate, error) {
	ca, err := LoadCA(dir)
	if err != nil {
		return nil, err
	}
	old, err := LoadCert(filepath.Join(dir, name+".crt"))
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue(renewalOf(old, ttlOf(old), nil))
	if err != nil {
		return nil, err
	}
	return cert, WritePair(dir, name, cert, key)
}
