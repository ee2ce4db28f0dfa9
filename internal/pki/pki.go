// Package pki is a cluster's own certificate authority: the CA `sitekeeper
// init` creates, the certificates it issues to members, nodes and
// operators, and the join tokens that let a new node ask for one. Keys are
// ECDSA P-256 and are written 0600 from the start.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/atomicfile"
)

// The files of a PKI folder.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Roles an operator's certificate carries (its Organization).
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
	// RoleNode is a node's (agent's or witness's) certificate.
	RoleNode = "node"
)

// CA is a cluster's certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a CA for cluster name, valid for ttl.
func NewCA(name string, ttl time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "sitekeeper CA " + name, Organization: []string{"sitekeeper"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // the system's random source failed: nothing is safe
	}
	return n
}

// Fingerprint is the SHA-256 of the certificate's DER, in hex: what a join
// token pins.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Save writes the CA into dir: the certificate 0644, the key 0600 (and
// never over an existing key).
func (ca *CA) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyPEM, err := encodeKey(ca.Key)
	if err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return writeNew(filepath.Join(dir, CACertFile), CertPEM(ca.Cert), 0o644)
}

// LoadCA reads the CA of dir (its key too).
func LoadCA(dir string) (*CA, error) {
	cert, err := LoadCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("the CA's key (only the node that ran init has it): %w", err)
	}
	key, err := decodeKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCert reads one PEM certificate.
func LoadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

// Request says what a certificate is for.
type Request struct {
	// Name is the subject's common name: a node's or an operator's name.
	Name string
	// Role is the subject's organization: node, admin, operator or viewer.
	Role string
	// Hosts are the DNS names and IP addresses a server certificate
	// answers for (a member's peer and client URLs' hosts).
	Hosts []string
	// Server and Client say which ends of TLS it may be.
	Server, Client bool
	TTL            time.Duration
	// PublicKey, when set, is certified (a join's request) instead of a
	// new key being made.
	PublicKey crypto.PublicKey
}

// Issue certifies r: the certificate, and the new key when r brought none.
func (ca *CA) Issue(r Request) (cert *x509.Certificate, key crypto.Signer, err error) {
	if r.Name == "" {
		return nil, nil, errors.New("a certificate needs a name")
	}
	pub := r.PublicKey
	if pub == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		key, pub = k, k.Public()
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: r.Name, Organization: []string{r.Role}},
		// Back-dated for clocks a little behind, by a tenth of the life at
		// most, so that "a third of its life left" still means that.
		NotBefore: now.Add(-min(5*time.Minute, r.TTL/10)),
		NotAfter:  now.Add(r.TTL),
		KeyUsage:  x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	if r.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if r.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, h := range r.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	cert, err = x509.ParseCertificate(der)
	return cert, key, err
}

// WritePair writes cert (0644) and key (0600: its temporary file is
// created so) as dir/name.crt and dir/name.key, replacing earlier ones
// atomically.
func WritePair(dir, name string, cert *x509.Certificate, key crypto.Signer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if key != nil {
		keyPEM, err := encodeKey(key)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(filepath.Join(dir, name+".crt"), CertPEM(cert), 0o644)
}

// CertPEM is c in PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func decodeKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("not a signing key")
	}
	return s, nil
}

// writeNew creates path with mode, failing if it exists: a CA key is
// never overwritten.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
