package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJoin: a node with a live token gets a certificate for its name and
// hosts, signed by the CA, with its key made (0600) and kept on the node;
// a wrong secret, an expired token, a server that is not the cluster's CA
// (another CA, same token) and a bad name are refused.
func TestJoin(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("prod", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err == nil {
		t.Fatal("a second init overwrote the CA's key")
	}
	if fi, _ := os.Stat(filepath.Join(dir, CAKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode %v, want 0600", fi.Mode().Perm())
	}
	loaded, err := LoadCA(dir)
	if err != nil || Fingerprint(loaded.Cert) != Fingerprint(ca.Cert) {
		t.Fatalf("LoadCA: %v", err)
	}
	srvCert, srvKey, err := ca.Issue(Request{Name: "join", Role: RoleNode, Hosts: []string{"127.0.0.1"}, Server: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(JoinHandler(dir, ca, time.Hour, nil))
	// Served as serveJoin does: the certificate comes from the callback
	// (httptest's StartTLS would put its own in front of it).
	srv.Listener = tls.NewListener(srv.Listener, ServerTLS(func() (*tls.Certificate, error) {
		return &tls.Certificate{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey, Leaf: srvCert}, nil
	}, ca))
	srv.Start()
	defer srv.Close()
	srv.URL = strings.Replace(srv.URL, "http://", "https://", 1)

	tok, err := NewToken(dir, ca, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	node := t.TempDir()
	if err := Join(context.Background(), srv.URL, tok.String(), "node2", []string{"10.0.0.12", "node2.example.com"}, node); err != nil {
		t.Fatal(err)
	}
	cert, err := LoadCert(filepath.Join(node, "node2.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, DNSName: "node2.example.com"}); err != nil {
		t.Errorf("the node's certificate: %v", err)
	}
	if cert.Subject.CommonName != "node2" || cert.Subject.Organization[0] != RoleNode || len(cert.IPAddresses) != 1 {
		t.Errorf("subject %v, IPs %v", cert.Subject, cert.IPAddresses)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(node, "node2.crt"), filepath.Join(node, "node2.key")); err != nil {
		t.Errorf("key and certificate do not pair: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(node, "node2.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("node key mode %v, want 0600", fi.Mode().Perm())
	}

	bad := tok
	bad.Secret = strings.Repeat("0", 32)
	expired, err := NewToken(dir, ca, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewCA("other", time.Hour)
	pinnedElsewhere := tok
	pinnedElsewhere.CAHash = Fingerprint(other.Cert)
	for _, tc := range []struct {
		name, token, node, want string
	}{
		{"wrong secret", bad.String(), "node3", "unknown join token"},
		{"expired", expired.String(), "node3", "expired"},
		{"another CA pinned", pinnedElsewhere.String(), "node3", "did not show the CA"},
		{"bad name", tok.String(), "Node 3", "not a node name"},
		{"not a token", "hello", "node3", "not a join token"},
	} {
		err := Join(context.Background(), srv.URL, tc.token, tc.node, nil, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// Renewal: the node's current certificate gets a new key's certificate
	// with the same name and hosts; an operator's certificate gets none.
	before, _ := os.ReadFile(filepath.Join(node, "node2.key"))
	renewed, err := Renew(context.Background(), node, "node2")
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(node, "node2.key"))
	if string(before) == string(after) || renewed.Subject.CommonName != "node2" || len(renewed.DNSNames) != 1 || len(renewed.IPAddresses) != 1 || renewed.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Errorf("renewed: %v %v %v (key changed: %t)", renewed.Subject, renewed.DNSNames, renewed.IPAddresses, string(before) != string(after))
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(node, "node2.crt"), filepath.Join(node, "node2.key")); err != nil {
		t.Errorf("the renewed pair: %v", err)
	}
	opDir := t.TempDir()
	opCert, opKey, _ := ca.Issue(Request{Name: "alice", Role: RoleAdmin, Client: true, TTL: time.Hour})
	if err := WritePair(opDir, "alice", opCert, opKey); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CACertFile, ServerFile} {
		b, _ := os.ReadFile(filepath.Join(node, f))
		os.WriteFile(filepath.Join(opDir, f), b, 0o600)
	}
	if _, err := Renew(context.Background(), opDir, "alice"); err == nil || !strings.Contains(err.Error(), "only a node certificate") {
		t.Errorf("an operator renewed at the join endpoint: %v", err)
	}
	short, _, err := ca.Issue(Request{Name: "n", Role: RoleNode, Client: true, TTL: 30 * time.Second})
	if err != nil || NeedsRenewal(short, time.Now()) || !NeedsRenewal(short, time.Now().Add(25*time.Second)) {
		t.Errorf("a fresh 30 s certificate: renewal due now %t, after 25 s %t; want false, true", NeedsRenewal(short, time.Now()), NeedsRenewal(short, time.Now().Add(25*time.Second)))
	}
	if !NeedsRenewal(&x509.Certificate{NotBefore: time.Now().Add(-70 * time.Minute), NotAfter: time.Now().Add(30 * time.Minute)}, time.Now()) ||
		NeedsRenewal(&x509.Certificate{NotBefore: time.Now().Add(-10 * time.Minute), NotAfter: time.Now().Add(90 * time.Minute)}, time.Now()) {
		t.Error("NeedsRenewal: want a renewal with under a third of the life left, none before")
	}

	if users, _ := Users(dir); users["node2"] != RoleNode || users["node3"] != "" {
		t.Errorf("users after one join and refused ones: %v", users)
	}

	// Nothing in the tokens file is a secret.
	b, _ := os.ReadFile(filepath.Join(dir, TokensFile))
	if strings.Contains(string(b), tok.Secret) {
		t.Error("the tokens file holds a secret in clear")
	}
}

// The node that ran init renews its own certificate with its CA.
func TestRenewLocal(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("t", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	old, key, err := ca.Issue(Request{Name: "witness", Role: RoleNode, Hosts: []string{"10.0.0.13", "witness.example.com"}, Server: true, Client: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePair(dir, "witness", old, key); err != nil {
		t.Fatal(err)
	}
	renewed, err := RenewLocal(dir, "witness")
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := LoadCert(filepath.Join(dir, "witness.crt"))
	if err != nil || onDisk.SerialNumber.Cmp(renewed.SerialNumber) != 0 || renewed.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Fatalf("the renewed certificate is not the one on disk, or not new: %v", err)
	}
	if renewed.Subject.CommonName != "witness" || renewed.DNSNames[0] != "witness.example.com" || !renewed.IPAddresses[0].Equal(old.IPAddresses[0]) ||
		renewed.NotAfter.Sub(renewed.NotBefore) != old.NotAfter.Sub(old.NotBefore) {
		t.Fatalf("renewed %v %v %v, want the old name, hosts and lifetime", renewed.Subject, renewed.DNSNames, renewed.IPAddresses)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "witness.crt"), filepath.Join(dir, "witness.key"))
	if err != nil {
		t.Fatalf("the new key does not match the new certificate: %v", err)
	}
	if pair.PrivateKey.(crypto.Signer).Public().(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("the renewal kept the old key")
	}
}
