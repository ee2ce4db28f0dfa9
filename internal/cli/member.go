package cli

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/logging"
	"github.com/sitekeeper/sitekeeper/internal/pki"
	"github.com/sitekeeper/sitekeeper/internal/printer"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// memberFlags configure an etcd member embedded in an agent or a witness.
type memberFlags struct {
	name, dataDir, peerURL, clientURL, initialCluster, state string
	// joinListen serves the join endpoint (the node that ran init), issuing
	// certificates valid for joinCertTTL.
	joinListen  string
	joinCertTTL time.Duration
	// token and server join the cluster at start (what `sitekeeper join`
	// does) when the node has no certificate yet.
	token, server string
	fast          bool
	election      time.Duration
}

func (f *memberFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.name, "etcd-name", "", "this member's name in --initial-cluster (default: the node's name)")
	cmd.Flags().StringVar(&f.dataDir, "etcd-data-dir", "", "etcd's data folder (default: DATA-DIR/etcd)")
	cmd.Flags().StringVar(&f.peerURL, "peer-url", "", "URL this member listens on and advertises to its peers: http(s)://IP:2380")
	cmd.Flags().StringVar(&f.clientURL, "client-url", "", "URL this member serves clients on: http(s)://IP:2379")
	cmd.Flags().StringVar(&f.initialCluster, "initial-cluster", "", "every member's name and peer URL: node1=http://10.0.0.11:2380,node2=...,witness=...")
	cmd.Flags().StringVar(&f.state, "initial-cluster-state", "new", "new (form the cluster) or existing (join after 'sitekeeper member add')")
	cmd.Flags().DurationVar(&f.election, "etcd-election-timeout", 300*time.Millisecond, "raft election timeout; keep it under a sixth of --lease-ttl, so an election (one or two rounds of one to two timeouts) never fences the agents (raise it, and the lease, for members across a WAN)")
	cmd.Flags().StringVar(&f.joinListen, "join-listen", "", "serve the join endpoint on this address (HOST:2381), for `sitekeeper join`; on the node that ran init")
	cmd.Flags().DurationVar(&f.joinCertTTL, "join-cert-ttl", defaultCertTTL, "with --join-listen: how long the node certificates it issues (and renews) are valid")
	cmd.Flags().StringVar(&f.token, "token", "", "join the cluster with this token at start, as `sitekeeper join` does, when DATA-DIR holds no certificate for this node yet; the certificates become --etcd-cacert, --etcd-cert and --etcd-key")
	cmd.Flags().StringVar(&f.server, "server", "", "with --token: the join endpoint, https://HOST:2381 (printed by init)")
	cmd.Flags().BoolVar(&f.fast, "etcd-fast", false, "no fsync (tests only)")
	_ = cmd.Flags().MarkHidden("etcd-fast")
}

// joinWithToken gets this node's certificate with --token from --server
// when it has none yet, and uses it (and the CA) for the member and the
// store client unless --etcd-cert says otherwise.
func (f *memberFlags) joinWithToken(ctx context.Context, g *globalFlags, dataDir string, log logr.Logger) error {
	if f.token == "" {
		if f.server != "" {
			return usagef("--server is the join endpoint for --token; give both, or neither once the node has joined")
		}
		return nil
	}
	if !strings.HasPrefix(f.server, "https://") {
		return usagef("--token needs --server https://HOST:%s, the join endpoint init printed", joinPort)
	}
	dir := pkiDir(dataDir)
	files := etcdstore.TLSFiles{CA: filepath.Join(dir, pki.CACertFile), Cert: filepath.Join(dir, f.name+".crt"), Key: filepath.Join(dir, f.name+".key")}
	if _, err := os.Stat(files.Cert); err != nil {
		var hosts []string
		for _, raw := range []string{f.peerURL, f.clientURL} {
			if u, err := url.Parse(raw); err == nil && u.Hostname() != "" && !slices.Contains(hosts, u.Hostname()) {
				hosts = append(hosts, u.Hostname())
			}
		}
		if err := joinCluster(ctx, f.server, f.token, f.name, hosts, dir); err != nil {
			return fmt.Errorf("join with --token at %s: %w", f.server, err)
		}
		log.Info("Joined the cluster: this node's certificate is made", "certificate", files.Cert)
	}
	if g.tls.Cert == "" {
		g.tls = files
	}
	return nil
}

// checkTLS refuses a member in plaintext, or without the certificates
// that make its https mean anything. Loopback is no exception: on a
// server, a local user who could write the store could make the SYSTEM
// service run whatever site and path they like. Only `up`, the
// single-process development cluster, serves plaintext on loopback.
func (f *memberFlags) checkTLS(g *globalFlags) error {
	for _, u := range []struct{ flag, url string }{{"--peer-url", f.peerURL}, {"--client-url", f.clientURL}} {
		switch {
		case strings.HasPrefix(u.url, "https://"):
			if g.tls.CA == "" || g.tls.Cert == "" || g.tls.Key == "" {
				return usagef("%s %s is https: give --etcd-cacert, --etcd-cert and --etcd-key (`sitekeeper init` or `join` makes them)", u.flag, u.url)
			}
		case !g.insecure:
			where := "other hosts reach"
			if loopbackURL(u.url) {
				where = "this machine's other users reach, even on loopback,"
			}
			return usagef("%s %s: a member that %s serves TLS with client certificates; use https:// with the certificates `sitekeeper init` and `sitekeeper join` make, or pass --insecure-plaintext for a lab", u.flag, u.url, where)
		}
	}
	return nil
}

// loopbackURL reports whether a member URL's host is a loopback address.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	return loopbackListen(u.Host)
}

// join runs the member, waits until it joined the cluster, and returns it
// with a store client talking to it; a learner promotes itself once caught
// up. Close the client before the member.
func (f *memberFlags) join(ctx context.Context, g *globalFlags, defaultName, dataDir string, log logr.Logger) (*etcdstore.Server, *etcdstore.Store, error) {
	if f.name == "" {
		f.name = defaultName
	}
	if f.dataDir == "" {
		f.dataDir = filepath.Join(dataDir, "etcd")
	}
	if f.peerURL == "" || f.clientURL == "" || f.initialCluster == "" {
		return nil, nil, usagef("an etcd member needs --peer-url, --client-url and --initial-cluster")
	}
	if f.state != "new" && f.state != "existing" {
		return nil, nil, usagef("--initial-cluster-state %q: use new or existing", f.state)
	}
	if err := electionRange.check("--etcd-election-timeout", f.election); err != nil {
		return nil, nil, err
	}
	if err := f.joinWithToken(ctx, g, dataDir, log); err != nil {
		return nil, nil, err
	}
	if err := f.checkTLS(g); err != nil {
		return nil, nil, err
	}
	if g.insecure && (!strings.HasPrefix(f.peerURL, "https://") || !strings.HasPrefix(f.clientURL, "https://")) {
		log.Info("WARNING: this member serves plaintext (--insecure-plaintext): anyone who reaches it, a local user included, can change the cluster; use this for a lab only", "peerURL", f.peerURL, "clientURL", f.clientURL)
	}
	// The join endpoint serves before the member: the nodes it lets join
	// are the quorum the member waits for.
	usersChanged := make(chan struct{}, 1)
	onIssued := func() {
		select {
		case usersChanged <- struct{}{}:
		default:
		}
	}
	if err := serveJoin(ctx, f.joinListen, dataDir, f.name, f.joinCertTTL, onIssued, log); err != nil {
		return nil, nil, err
	}
	if g.tls.Cert != "" {
		go keepRenewed(ctx, g.tls.Cert, log)
	}
	srv, err := etcdstore.StartMember(ctx, etcdstore.MemberOptions{
		Name: f.name, DataDir: f.dataDir, PeerURL: f.peerURL, ClientURL: f.clientURL,
		InitialCluster: f.initialCluster, Existing: f.state == "existing", TLS: g.tls,
		ElectionTimeout: f.election, Fast: f.fast, Verbose: g.verbose > 0, Log: log,
	})
	if err != nil {
		return nil, nil, err
	}
	// A learner serves no client request: the process starts once its
	// member votes.
	if err := srv.PromoteWhenCaughtUp(ctx, log); err != nil {
		srv.Close()
		return nil, nil, err
	}
	// The process talks to its own member only, as k3s does: a frozen or
	// partitioned peer never holds its requests, and a member cut off from
	// quorum fails them, which is what makes its agent fence.
	if f.joinListen != "" && g.tls.Cert != "" {
		// The node holding the CA keeps the store's users: one per
		// certificate name, with its role, and authentication on.
		go keepUsers(ctx, srv.Endpoint, dataDir, g.requestTimeout, usersChanged, log)
	}
	st, err := etcdstore.ConnectMember(srv.Endpoint, g.tls, g.requestTimeout)
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	// The member has its quorum, but a store busy catching up (a node
	// restarted while the others move hundreds of groups) may take
	// seconds to answer: the agent waits for it, as it waited for the
	// quorum, instead of exiting and leaving the node out until someone
	// starts it again.
	for attempt := 1; ; attempt++ {
		if err = st.Ping(ctx); err == nil {
			break
		}
		if ctx.Err() != nil || !etcdstore.IsTimeout(err) { // a refusal is not slowness
			st.Close()
			srv.Close()
			return nil, nil, err
		}
		log.Info("The store does not answer yet; asking again", "member", f.name, "attempt", attempt, "error", err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return srv, st, nil
}

func newWitnessCmd(s *streams, g *globalFlags) *cobra.Command {
	var mf memberFlags
	var dataDir string
	cmd := &cobra.Command{
		Use:   "witness --etcd-name witness --peer-url URL --client-url URL --initial-cluster LIST",
		Short: "Run only an etcd member, so two nodes keep quorum when one dies",
		Long: `Witness runs an etcd member and nothing else: no agent, no IIS. With two
nodes and a witness the store has three votes, so either node alone with
the witness still has a quorum and fails over; a node cut off from both
fences itself. Put the witness on a third machine (a small VM, or a
Linux host): it stores the cluster's state but serves no site.`,
		Example: `  sitekeeper witness --etcd-name witness --peer-url https://10.0.0.13:2380 --client-url https://10.0.0.13:2379 \
    --initial-cluster node1=https://10.0.0.11:2380,node2=https://10.0.0.12:2380,witness=https://10.0.0.13:2380 \
    --etcd-cacert pki/ca.crt --etcd-cert pki/witness.crt --etcd-key pki/witness.key --join-listen 10.0.0.13:2381`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := logging.New(s.err, g.verbose)
			if err := privateDataDir(s, "--data-dir", dataDir); err != nil {
				return err
			}
			srv, st, err := mf.join(ctx, g, "witness", dataDir, log)
			if err != nil {
				return err
			}
			defer srv.Close()
			defer st.Close()
			// Moving raft leadership is the store's root's to do once its
			// authentication is on: the witness that ran init does it as
			// the admin.
			leadTLS := g.tls
			if admin, ok := adminFiles(dataDir); ok && g.tls.Cert != "" {
				leadTLS = admin
			}
			go srv.KeepLeadership(ctx, leadTLS, 2*time.Second, log)
			fmt.Fprintf(s.out, "sitekeeper witness: etcd member %s serving %s\n", mf.name, srv.Endpoint)
			<-ctx.Done()
			return nil
		},
	}
	mf.register(cmd)
	cmd.Flags().StringVar(&dataDir, "data-dir", ".sitekeeper-witness", "folder for the member's data")
	return cmd
}

func newMemberCmd(s *streams, g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member list|add|remove",
		Short: "Manage the etcd members of a cluster",
		Long: `Member manages the store's membership. A new member is added as a learner:
it copies the log without a vote, so adding a node never costs quorum, and
it promotes itself to a voting member once it has caught up.`,
	}
	var output string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the members, their role and health",
		Example: "  sitekeeper member list --endpoints 10.0.0.11:2379",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(&output); err != nil {
				return err
			}
			st, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ms, err := st.Members(cmd.Context())
			if err != nil {
				return err
			}
			if printer.Structured(output) {
				return printer.Encode(s.out, output, printer.List("Member", ms))
			}
			tw := printer.NewTable(s.out)
			fmt.Fprintln(tw, "NAME\tID\tROLE\tPEER URLS\tCLIENT URLS")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, m.Role(), strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","))
			}
			return tw.Flush()
		},
	}
	outputFlag(list, &output, "")
	var peerURL string
	add := &cobra.Command{
		Use:     "add NAME --peer-url URL",
		Short:   "Add a member as a learner and print how to start it",
		Example: "  sitekeeper member add node3 --peer-url https://10.0.0.14:2380 --endpoints 10.0.0.11:2379",
		Args:    exactArgs(1, "the new member's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if peerURL == "" {
				return usagef("--peer-url is required")
			}
			st, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ic, err := st.AddLearner(cmd.Context(), args[0], peerURL)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "member %s added as a learner; start it with:\n  --etcd-name %s --peer-url %s --initial-cluster %s --initial-cluster-state existing\n", args[0], args[0], peerURL, ic)
			return nil
		},
	}
	add.Flags().StringVar(&peerURL, "peer-url", "", "the new member's peer URL")
	remove := &cobra.Command{
		Use:     "remove NAME",
		Short:   "Remove a member (stop its process first)",
		Example: "  sitekeeper member remove node3",
		Args:    exactArgs(1, "the member's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RemoveMember(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "member %s removed\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, add, remove)
	return parent(cmd)
}
