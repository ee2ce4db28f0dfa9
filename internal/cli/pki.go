package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/pki"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// pkiDir is where a data folder keeps its certificates.
func pkiDir(dataDir string) string { return filepath.Join(dataDir, "pki") }

const (
	defaultCATTL   = 10 * 365 * 24 * time.Hour
	defaultCertTTL = 365 * 24 * time.Hour
	joinPort       = "2381"
)

func newInitCmd(s *streams) *cobra.Command {
	var name, node, dataDir string
	var hosts []string
	var tokenTTL, certTTL time.Duration
	cmd := &cobra.Command{
		Use:   "init --name CLUSTER --node NAME --host ADDRESS [--data-dir D]",
		Short: "Create the cluster's certificate authority, this node's certificate, an admin certificate and a join token",
		Long: `Init makes a cluster's PKI on its first node (or its witness): a CA (kept in
DATA-DIR/pki, its key 0600 and nowhere else), this node's certificate (member
server, peer and client), an admin certificate for the CLI, and a join token
(short-lived: --token-ttl). It prints the command that starts this node with
TLS everywhere and the command that joins the next node. Run it once: it never
overwrites a CA.`,
		Example: `  sitekeeper init --name prod --node witness --host 10.0.0.13 --data-dir /var/lib/sitekeeper`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || node == "" || len(hosts) == 0 {
				return usagef("init needs --name (the cluster), --node (this node) and --host (the address other nodes reach it on)")
			}
			if err := tokenTTLRange.check("--token-ttl", tokenTTL); err != nil {
				return err
			}
			if err := privateDataDir(s, "--data-dir", dataDir); err != nil {
				return err
			}
			dir := pkiDir(dataDir)
			if _, err := os.Stat(filepath.Join(dir, pki.CAKeyFile)); err == nil {
				return fmt.Errorf("%s already holds a CA: this cluster was initialised; make a join token with `sitekeeper token create --data-dir %s`", dir, dataDir)
			}
			ca, err := pki.NewCA(name, defaultCATTL)
			if err != nil {
				return err
			}
			if err := ca.Save(dir); err != nil {
				return fmt.Errorf("save the CA in %s: %w", dir, err)
			}
			cert, key, err := ca.Issue(pki.Request{Name: node, Role: pki.RoleNode, Hosts: append(hosts, "127.0.0.1", "localhost"), Server: true, Client: true, TTL: certTTL})
			if err != nil {
				return err
			}
			if err := pki.WritePair(dir, node, cert, key); err != nil {
				return err
			}
			admin, adminKey, err := ca.Issue(pki.Request{Name: "admin", Role: pki.RoleAdmin, Client: true, TTL: certTTL})
			if err != nil {
				return err
			}
			if err := pki.WritePair(dir, "admin", admin, adminKey); err != nil {
				return err
			}
			// Each certificate's name is a user of the store, with its role.
			if err := pki.RecordUser(dir, node, pki.RoleNode); err != nil {
				return err
			}
			if err := pki.RecordUser(dir, "admin", pki.RoleAdmin); err != nil {
				return err
			}
			tok, err := pki.NewToken(dir, ca, tokenTTL)
			if err != nil {
				return err
			}
			h := hosts[0]
			fmt.Fprintf(s.out, "cluster %s: CA %s (fingerprint %s)\n\n", name, filepath.Join(dir, pki.CACertFile), pki.Fingerprint(ca.Cert))
			fmt.Fprintf(s.out, "Start this node (a witness here; an agent takes the same flags with --node):\n  sitekeeper witness --data-dir %s --etcd-name %s --peer-url https://%s --client-url https://%s \\\n    --initial-cluster %s=https://%s %s --join-listen %s\n\n",
				dataDir, node, net.JoinHostPort(h, "2380"), net.JoinHostPort(h, "2379"), node, net.JoinHostPort(h, "2380"), tlsFlags(dir, node), net.JoinHostPort(h, joinPort))
			fmt.Fprintf(s.out, "Join the next node (the token is valid for %s; `sitekeeper token create` makes another):\n  sitekeeper join --server https://%s --token %s --node NODE --host NODE-ADDRESS --data-dir DATA-DIR\n\n",
				tokenTTL, net.JoinHostPort(h, joinPort), tok)
			fmt.Fprintf(s.out, "Use the cluster from this machine as its admin:\n  export SITEKEEPER_ENDPOINTS=https://%s\n  sitekeeper get nodes %s\n", net.JoinHostPort(h, "2379"), tlsFlags(dir, "admin"))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the cluster's name (in the CA's name)")
	cmd.Flags().StringVar(&node, "node", "", "this node's name (its member's name)")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "the addresses (IP or DNS name) other nodes reach this one on; repeatable")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".sitekeeper", "the node's data folder (the PKI goes in DATA-DIR/pki)")
	cmd.Flags().DurationVar(&tokenTTL, "token-ttl", 24*time.Hour, "how long the join token is valid")
	cmd.Flags().DurationVar(&certTTL, "cert-ttl", defaultCertTTL, "how long the certificates made are valid")
	return cmd
}

// tlsFlags are the TLS flags of a command that uses name's certificate.
func tlsFlags(dir, name string) string {
	return fmt.Sprintf("--etcd-cacert %s --etcd-cert %s --etcd-key %s", filepath.Join(dir, pki.CACertFile), filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
}

// joinCluster gets node's certificate for hosts (and this machine's
// loopback names, for local clients) into dir with the token.
func joinCluster(ctx context.Context, server, token, node string, hosts []string, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return pki.Join(ctx, server, token, node, append(slices.Clone(hosts), "127.0.0.1", "localhost"), dir)
}

func newJoinCmd(s *streams) *cobra.Command {
	var server, token, node, dataDir string
	var hosts []string
	cmd := &cobra.Command{
		Use:   "join --server URL --token TOKEN --node NAME --host ADDRESS [--data-dir D]",
		Short: "Get this node's certificate from the cluster with a join token",
		Long: `Join makes this node's key (it never leaves the node), and sends a
certificate request with the token to the cluster's join endpoint, trusting
the endpoint only if it shows the CA the token names. The node's
certificate and the CA land in DATA-DIR/pki; it prints the agent command.`,
		Example: `  sitekeeper join --server https://10.0.0.13:2381 --token skt1.… --node node1 --host 10.0.0.11 --data-dir /var/lib/sitekeeper`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" || token == "" || node == "" || len(hosts) == 0 {
				return usagef("join needs --server, --token, --node and --host")
			}
			if !strings.HasPrefix(server, "https://") {
				return usagef("--server %q: the join endpoint is https://HOST:%s", server, joinPort)
			}
			if err := privateDataDir(s, "--data-dir", dataDir); err != nil {
				return err
			}
			dir := pkiDir(dataDir)
			if err := joinCluster(cmd.Context(), server, token, node, hosts, dir); err != nil {
				return err
			}
			h := hosts[0]
			fmt.Fprintf(s.out, "node %s joined: certificate %s\n\nStart its agent (add the other members to --initial-cluster, and --initial-cluster-state existing after `sitekeeper member add`):\n  sitekeeper agent --node %s --data-dir %s --etcd-member --peer-url https://%s --client-url https://%s \\\n    --initial-cluster ... %s\n",
				node, filepath.Join(dir, node+".crt"), node, dataDir, net.JoinHostPort(h, "2380"), net.JoinHostPort(h, "2379"), tlsFlags(dir, node))
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "the join endpoint: https://HOST:2381 (printed by init)")
	cmd.Flags().StringVar(&token, "token", "", "the join token (printed by init or `token create`)")
	cmd.Flags().StringVar(&node, "node", "", "this node's name")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "the addresses other nodes reach this one on; repeatable")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".sitekeeper", "the node's data folder")
	return cmd
}

func newTokenCmd(s *streams) *cobra.Command {
	cmd := parent(&cobra.Command{Use: "token", Short: "Join tokens (on the node that holds the CA)"})
	var dataDir string
	var ttl time.Duration
	create := &cobra.Command{
		Use:     "create [--ttl 1h] [--data-dir D]",
		Short:   "Make a join token for another node",
		Example: "  sitekeeper token create --ttl 1h --data-dir /var/lib/sitekeeper",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := tokenTTLRange.check("--ttl", ttl); err != nil {
				return err
			}
			ca, err := pki.LoadCA(pkiDir(dataDir))
			if err != nil {
				return err
			}
			tok, err := pki.NewToken(pkiDir(dataDir), ca, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(s.out, tok)
			return nil
		},
	}
	create.Flags().StringVar(&dataDir, "data-dir", ".sitekeeper", "the data folder of the node that ran init")
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	cmd.AddCommand(create)
	return cmd
}

func newCertsCmd(s *streams) *cobra.Command {
	cmd := parent(&cobra.Command{Use: "certs", Short: "Certificates for operators (on the node that holds the CA)"})
	var dataDir, role, out string
	var ttl time.Duration
	op := &cobra.Command{
		Use:   "operator NAME [--role admin|operator|viewer] [--out DIR]",
		Short: "Issue a client certificate for a person or a pipeline",
		Long: `Operator issues a client certificate whose name is NAME and whose role
(admin, operator or viewer) is its organization, for the CLI's --etcd-cert and
--etcd-key. The name becomes a user of the store with that role (the node
holding the CA adds it within seconds): a viewer reads; an operator also
switches over, suspends, resumes and clears failures; an admin also applies
and deletes, and manages members and snapshots.`,
		Example: "  sitekeeper certs operator alice --role operator --out ./alice",
		Args:    exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role != pki.RoleAdmin && role != pki.RoleOperator && role != pki.RoleViewer {
				return usagef("--role %q: use admin, operator or viewer", role)
			}
			ca, err := pki.LoadCA(pkiDir(dataDir))
			if err != nil {
				return err
			}
			cert, key, err := ca.Issue(pki.Request{Name: args[0], Role: role, Client: true, TTL: ttl})
			if err != nil {
				return err
			}
			if out == "" {
				out = pkiDir(dataDir)
			}
			if err := pki.RecordUser(pkiDir(dataDir), args[0], role); err != nil {
				return err
			}
			if err := pki.WritePair(out, args[0], cert, key); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%s (%s): %s, valid until %s\n", args[0], role, filepath.Join(out, args[0]+".crt"), cert.NotAfter.Format(time.RFC3339))
			return nil
		},
	}
	op.Flags().StringVar(&dataDir, "data-dir", ".sitekeeper", "the data folder of the node that ran init")
	op.Flags().StringVar(&role, "role", pki.RoleViewer, "admin, operator or viewer")
	op.Flags().StringVar(&out, "out", "", "folder for NAME.crt and NAME.key (default DATA-DIR/pki)")
	op.Flags().DurationVar(&ttl, "ttl", 90*24*time.Hour, "how long the certificate is valid")
	var node string
	renew := &cobra.Command{
		Use:   "renew --node NAME [--data-dir D]",
		Short: "Renew a joined node's certificate now (agents and witnesses renew their own when a third of its life is left)",
		Long: `Renew makes a new key and gets a certificate for it from the join endpoint the
node joined through, authenticated by its current certificate. The member and
the agent read the files at every TLS handshake: nothing restarts.`,
		Example: "  sitekeeper certs renew --node node1 --data-dir /var/lib/sitekeeper",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if node == "" {
				return usagef("--node is required")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			renew := renewerFor(pkiDir(dataDir), node)
			if renew == nil {
				return fmt.Errorf("%s holds neither a join endpoint to renew at (a joined node's) nor the CA (the node that ran init): a certificate of your own CA is renewed by that CA", pkiDir(dataDir))
			}
			cert, err := renew(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%s renewed, valid until %s\n", node, cert.NotAfter.Format(time.RFC3339))
			return nil
		},
	}
	renew.Flags().StringVar(&node, "node", "", "the node whose certificate to renew")
	renew.Flags().StringVar(&dataDir, "data-dir", ".sitekeeper", "the node's data folder")
	cmd.AddCommand(op, renew)
	return cmd
}

// keepRenewed renews a joined node's certificate (the pair certFile and
// its key, in a folder holding the join endpoint's address) when a third
// of its life is left, checking every tenth of its life (at most hourly),
// until ctx ends. A failed renewal is logged and tried at the next check.
func keepRenewed(ctx context.Context, certFile string, log logr.Logger) {
	dir, name := filepath.Dir(certFile), strings.TrimSuffix(filepath.Base(certFile), ".crt")
	renew := renewerFor(dir, name)
	if renew == nil {
		return // neither joined nor the CA's node: certificates of your own CA, renewed by hand
	}
	for {
		cert, err := pki.LoadCert(certFile)
		wait := time.Hour
		if err == nil {
			wait = min(time.Hour, max(time.Second, cert.NotAfter.Sub(cert.NotBefore)/10))
			if pki.NeedsRenewal(cert, time.Now()) {
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				renewed, rerr := renew(rctx)
				cancel()
				if rerr != nil {
					log.Error(rerr, "Certificate not renewed; trying again", "certificate", certFile, "expires", cert.NotAfter.Format(time.RFC3339))
				} else {
					log.Info("Certificate renewed", "certificate", certFile, "expires", renewed.NotAfter.Format(time.RFC3339))
				}
			}
		} else {
			log.Error(err, "Cannot read the node's certificate", "certificate", certFile)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// renewerFor renews dir/NAME's certificate: at the join endpoint for a
// joined node, with the CA itself on the node that ran init; nil for a
// certificate of the user's own CA.
func renewerFor(dir, name string) func(context.Context) (*x509.Certificate, error) {
	if _, err := os.Stat(filepath.Join(dir, pki.ServerFile)); err == nil {
		return func(ctx context.Context) (*x509.Certificate, error) { return pki.Renew(ctx, dir, name) }
	}
	if _, err := pki.LoadCA(dir); err == nil {
		return func(context.Context) (*x509.Certificate, error) { return pki.RenewLocal(dir, name) }
	}
	return nil
}

// serveJoin serves the join endpoint on addr when the data folder holds
// the CA's key (the node that ran init), until ctx ends.
func serveJoin(ctx context.Context, addr, dataDir, node string, certTTL time.Duration, onIssued func(), log logr.Logger) error {
	if addr == "" {
		return nil
	}
	dir := pkiDir(dataDir)
	ca, err := pki.LoadCA(dir)
	if err != nil {
		return fmt.Errorf("--join-listen: %w", err)
	}
	// Read again when renewed: clients pin the CA, but an expired
	// certificate fails their handshake all the same.
	pair := &keyPair{cert: filepath.Join(dir, node+".crt"), key: filepath.Join(dir, node+".key")}
	if _, err := pair.get(nil); err != nil {
		return fmt.Errorf("--join-listen: this node's certificate: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--join-listen: %w", err)
	}
	srv := &http.Server{Handler: pki.JoinHandler(dir, ca, certTTL, onIssued), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: pki.ServerTLS(func() (*tls.Certificate, error) { return pair.get(nil) }, ca)}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("Serving the join endpoint", "address", ln.Addr().String())
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "Join endpoint stopped")
		}
	}()
	return nil
}

// adminFiles are the admin's certificate files init wrote into dataDir,
// and whether they are there (on the node that ran init).
func adminFiles(dataDir string) (etcdstore.TLSFiles, bool) {
	dir := pkiDir(dataDir)
	f := etcdstore.TLSFiles{CA: filepath.Join(dir, pki.CACertFile), Cert: filepath.Join(dir, "admin.crt"), Key: filepath.Join(dir, "admin.key")}
	_, err := os.Stat(f.Key)
	return f, err == nil
}

// keepUsers makes every name the CA issued a certificate to a user of the
// store with its role, and turns the store's authentication on, through
// the member at endpoint as the admin; then again whenever the list
// changes (a join, `certs operator`). It also promotes caught-up learners,
// which cannot promote themselves once authentication is on. Run on the
// node that holds the CA.
func keepUsers(ctx context.Context, endpoint, dataDir string, timeout time.Duration, changed <-chan struct{}, log logr.Logger) {
	dir := pkiDir(dataDir)
	adminTLS, _ := adminFiles(dataDir)
	var st *etcdstore.Store
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	done := ""
	for {
		var err error
		if st == nil {
			st, err = etcdstore.ConnectMember(endpoint, adminTLS, timeout)
		}
		if err == nil {
			err = syncUsers(ctx, st, dir, &done, log)
		}
		if err != nil && ctx.Err() == nil {
			log.Info("Store users not set yet; trying again", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(2 * time.Second):
		}
	}
}

// syncUsers writes the users when the list changed since done, and
// promotes caught-up learners.
func syncUsers(ctx context.Context, st *etcdstore.Store, dir string, done *string, log logr.Logger) error {
	users, err := pki.Users(dir)
	if err != nil {
		return err
	}
	if key := fmt.Sprint(users); key != *done {
		if err := st.EnsureUsers(ctx, users); err != nil {
			return err
		}
		*done = key
		log.Info("Store users and roles in force", "users", len(users))
	}
	promoted, err := st.PromoteLearners(ctx)
	for _, name := range promoted {
		log.Info("Promoted a caught-up learner to a voting member", "member", name)
	}
	return err
}
