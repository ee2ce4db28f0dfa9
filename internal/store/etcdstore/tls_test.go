package etcdstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// writeCerts makes a CA and one member certificate for 127.0.0.1, valid
// for server and client authentication, as the README asks for.
func writeCerts(t *testing.T, dir string) TLSFiles {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sitekeeper test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node1"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	f := TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "node1.pem"), Key: filepath.Join(dir, "node1-key.pem")}
	for path, block := range map[string]*pem.Block{f.CA: {Type: "CERTIFICATE", Bytes: caDER}, f.Cert: {Type: "CERTIFICATE", Bytes: der}, f.Key: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestMemberServesPeersAndClientsOverTLS(t *testing.T) {
	dir := t.TempDir()
	files := writeCerts(t, dir)
	peer := strings.Replace(freeURL(t), "http://", "https://", 1)
	client := strings.Replace(freeURL(t), "http://", "https://", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := StartMember(ctx, MemberOptions{Name: "node1", DataDir: filepath.Join(dir, "etcd"), PeerURL: peer, ClientURL: client,
		InitialCluster: "node1=" + peer, TLS: files, Fast: true, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	st, err := ConnectTLS([]string{client}, files, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("a client with the CA's certificate: %v", err)
	}
	// Without a client certificate the member refuses.
	anon, err := ConnectTLS([]string{client}, TLSFiles{CA: files.CA}, 0)
	if err == nil {
		defer anon.Close()
		if err := anon.Ping(ctx); err == nil {
			t.Error("a client without a certificate was served")
		}
	}
	// http URLs with TLS files are a configuration error, said up front.
	_, err = StartMember(ctx, MemberOptions{Name: "x", DataDir: filepath.Join(dir, "x"), PeerURL: "http://127.0.0.1:1", ClientURL: "http://127.0.0.1:2",
		InitialCluster: "x=http://127.0.0.1:1", TLS: files, Log: logr.Discard()})
	if err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("http URLs with TLS files: %v", err)
	}
}
