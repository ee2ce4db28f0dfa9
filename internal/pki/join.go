package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/atomicfile"
)

// A join token is "skt1.<id>.<secret>.<CA fingerprint>": the id names it,
// the secret proves the joiner was given it, and the fingerprint lets the
// joiner check, before it sends the secret, that it talks to this
// cluster's CA (as kubeadm's discovery-token-ca-cert-hash does).
const tokenPrefix = "skt1"

// TokensFile holds the tokens a CA folder accepts: each id with the
// SHA-256 of its secret and its expiry, never the secret itself.
const TokensFile = "tokens.json"

var tokenRE = regexp.MustCompile(`^skt1\.([0-9a-f]{8})\.([0-9a-f]{32})\.([0-9a-f]{64})$`)

// Token is a parsed join token.
type Token struct {
	ID, Secret, CAHash string
}

// String is the token as it is given to a joining node.
func (t Token) String() string {
	return strings.Join([]string{tokenPrefix, t.ID, t.Secret, t.CAHash}, ".")
}

// ParseToken reads a join token.
func ParseToken(s string) (Token, error) {
	m := tokenRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Token{}, errors.New("not a join token (skt1.<id>.<secret>.<CA fingerprint>); copy it whole from `sitekeeper init` or `sitekeeper token create`")
	}
	return Token{ID: m[1], Secret: m[2], CAHash: m[3]}, nil
}

type storedToken struct {
	SecretHash string    `json:"secretHash"`
	Expires    time.Time `json:"expires"`
}

var tokensMu sync.Mutex

// NewToken makes a join token for the CA in dir, valid for ttl, and
// records it there.
func NewToken(dir string, ca *CA, ttl time.Duration) (Token, error) {
	id, secret := make([]byte, 4), make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return Token{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return Token{}, err
	}
	t := Token{ID: hex.EncodeToString(id), Secret: hex.EncodeToString(secret), CAHash: Fingerprint(ca.Cert)}
	tokensMu.Lock()
	defer tokensMu.Unlock()
	all, err := readTokens(dir)
	if err != nil {
		return Token{}, err
	}
	now := time.Now()
	for k, st := range all {
		if now.After(st.Expires) {
			delete(all, k) // expired ones are forgotten
		}
	}
	all[t.ID] = storedToken{SecretHash: hashSecret(t.Secret), Expires: now.Add(ttl).UTC()}
	return t, writeTokens(dir, all)
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func readTokens(dir string) (map[string]storedToken, error) {
	b, err := os.ReadFile(filepath.Join(dir, TokensFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]storedToken{}, nil
	}
	if err != nil {
		return nil, err
	}
	all := map[string]storedToken{}
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, TokensFile), err)
	}
	return all, nil
}

func writeTokens(dir string, all map[string]storedToken) error {
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, TokensFile), b, 0o600)
}

// checkToken reports whether id and secret name a live token of dir.
func checkToken(dir, id, secret string) error {
	tokensMu.Lock()
	defer tokensMu.Unlock()
	all, err := readTokens(dir)
	if err != nil {
		return err
	}
	st, ok := all[id]
	if !ok || !hmac.Equal([]byte(st.SecretHash), []byte(hashSecret(secret))) {
		return errors.New("unknown join token")
	}
	if time.Now().After(st.Expires) {
		return fmt.Errorf("the join token expired at %s; make a new one with `sitekeeper token create`", st.Expires.Format(time.RFC3339))
	}
	return nil
}

// JoinRequest is what a joining node sends.
type JoinRequest struct {
	TokenID string `json:"tokenId"`
	Secret  string `json:"secret"`
	Name    string `json:"name"`
	// Hosts are the addresses the node's member serves on.
	Hosts []string `json:"hosts"`
	// CSR is a PEM certificate request for the node's own key, which never
	// leaves the node.
	CSR string `json:"csr"`
}

// JoinReply is the node's certificate and the cluster's CA.
type JoinReply struct {
	Cert string `json:"cert"`
	CA   string `json:"ca"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// JoinHandler serves /v1/join for the CA of dir: a valid token and CSR get
// a node certificate (server and client) for the name and hosts asked; and
// /v1/renew: a node's current certificate gets it a new one.
func JoinHandler(dir string, ca *CA, certTTL time.Duration, onIssued func()) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/renew", renew(ca, certTTL))
	mux.HandleFunc("POST /v1/join", func(w http.ResponseWriter, r *http.Request) {
		var req JoinRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, "not a join request", http.StatusBadRequest)
			return
		}
		if err := checkToken(dir, req.TokenID, req.Secret); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if !nameRE.MatchString(req.Name) {
			http.Error(w, fmt.Sprintf("%q is not a node name: lower-case letters, digits and '-'", req.Name), http.StatusBadRequest)
			return
		}
		csr, err := parseCSR(req.CSR)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// The name becomes a user of the store before it has a certificate.
		if err := RecordUser(dir, req.Name, RoleNode); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if onIssued != nil {
			onIssued()
		}
		cert, _, err := ca.Issue(Request{Name: req.Name, Role: RoleNode, Hosts: req.Hosts, Server: true, Client: true, TTL: certTTL, PublicKey: csr.PublicKey})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(JoinReply{Cert: string(CertPEM(cert)), CA: string(CertPEM(ca.Cert))})
	})
	return mux
}

// parseCSR reads a PEM certificate request and checks it is signed by
// the key it asks a certificate for.
func parseCSR(text string) (*x509.CertificateRequest, error) {
	blk, _ := pem.Decode([]byte(text))
	if blk == nil {
		return nil, errors.New("no certificate request")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		return nil, errors.New("the certificate request is not signed by its key")
	}
	return csr, nil
}

// Join asks server (https://host:port) for a certificate for name, over
// TLS that is trusted only when the server's chain leads to the CA the
// token pins. It writes dir/ca.crt, dir/NAME.crt and dir/NAME.key (made
// here; only the request leaves the node).
func Join(ctx context.Context, server, tokenText, name string, hosts []string, dir string) error {
	tok, err := ParseToken(tokenText)
	if err != nil {
		return err
	}
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pinnedTLS(tok.CAHash)}}
	server = strings.TrimRight(server, "/")
	cert, caCert, err := requestCert(ctx, client, server+"/v1/join", "join "+server,
		JoinRequest{TokenID: tok.ID, Secret: tok.Secret, Name: name, Hosts: hosts, CSR: csr})
	if err != nil {
		return err
	}
	if Fingerprint(caCert) != tok.CAHash {
		return fmt.Errorf("join %s: the CA sent is not the one the token names", server)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, CACertFile), CertPEM(caCert), 0o644); err != nil {
		return err
	}
	if err := saveServer(dir, server); err != nil {
		return err
	}
	return WritePair(dir, name, cert, key)
}

// newKeyAndCSR makes a node's key and a PEM certificate request for it:
// the key never leaves the node.
func newKeyAndCSR() (*ecdsa.PrivateKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, "", err
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// requestCert posts a join or renewal request and reads the certificate
// and CA of the reply; what names the call in errors.
func requestCert(ctx context.Context, client *http.Client, url, what string, body any) (cert, ca *x509.Certificate, err error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: %s: %s", what, resp.Status, strings.TrimSpace(string(rb)))
	}
	var reply JoinReply
	if err := json.Unmarshal(rb, &reply); err != nil {
		return nil, nil, fmt.Errorf("%s: the reply: %w", what, err)
	}
	caBlk, _ := pem.Decode([]byte(reply.CA))
	certBlk, _ := pem.Decode([]byte(reply.Cert))
	if caBlk == nil || certBlk == nil {
		return nil, nil, fmt.Errorf("%s: the reply holds no certificates", what)
	}
	if ca, err = x509.ParseCertificate(caBlk.Bytes); err != nil {
		return nil, nil, fmt.Errorf("%s: the CA: %w", what, err)
	}
	if cert, err = x509.ParseCertificate(certBlk.Bytes); err != nil {
		return nil, nil, fmt.Errorf("%s: the certificate: %w", what, err)
	}
	return cert, ca, nil
}

// pinnedTLS trusts a server only when the chain it sends holds a CA with
// the fingerprint caHash that signed its certificate: a joiner has no CA
// yet, only the token.
func pinnedTLS(caHash string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // verified below against the pinned CA
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			var certs []*x509.Certificate
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs = append(certs, c)
			}
			for _, c := range certs {
				if Fingerprint(c) != caHash {
					continue
				}
				pool := x509.NewCertPool()
				pool.AddCert(c)
				if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
					return fmt.Errorf("the server's certificate is not signed by the cluster's CA: %w", err)
				}
				return nil
			}
			return errors.New("the server did not show the CA the join token names: is it this cluster's join endpoint?")
		},
	}
}

// ServerTLS is the join endpoint's TLS: the certificate get returns (read
// again when renewed), with the CA in the chain so a joiner can check the
// pin; a client certificate of the CA is checked when one is shown (a
// renewal), and needed by none (a join).
func ServerTLS(get func() (*tls.Certificate, error), ca *CA) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := get()
			if err != nil {
				return nil, err
			}
			withCA := *c
			withCA.Certificate = append(slices.Clone(c.Certificate), ca.Cert.Raw)
			return &withCA, nil
		},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
	}
}
