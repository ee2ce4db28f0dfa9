package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.uber.org/zap"
)

// TLSFiles are PEM files for one side of a connection. One certificate
// may serve as both server and client certificate (an "ExtKeyUsage" of
// both), as k3s's embedded etcd does.
type TLSFiles struct {
	CA, Cert, Key string
}

// Enabled reports whether any file is set.
func (t TLSFiles) Enabled() bool { return t.CA != "" || t.Cert != "" || t.Key != "" }

func (t TLSFiles) info() transport.TLSInfo {
	return transport.TLSInfo{TrustedCAFile: t.CA, CertFile: t.Cert, KeyFile: t.Key, ClientCertAuth: t.CA != ""}
}

// ClientTLS returns the client configuration for t (nil when disabled).
func (t TLSFiles) ClientTLS() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	if t.CA == "" {
		return nil, errors.New("TLS to etcd needs --etcd-cacert (the CA that signed the members' certificates)")
	}
	c, err := t.info().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client TLS: %w", err)
	}
	return c, nil
}

// ConnectTLS connects to endpoints with t (plain when t is empty). The
// client learns the other members from the first it reaches and spreads
// its requests over them; keep-alive pings find a connection through a cut
// link within seconds, so its requests go to the members that answer.
// Every call without a deadline of its own gets requestTimeout (zero:
// DefaultRequestTimeout).
func ConnectTLS(endpoints []string, t TLSFiles, requestTimeout time.Duration) (*Store, error) {
	return connect(endpoints, t, true, requestTimeout)
}

// ConnectMember connects to one member only and never to the others: the
// client of a process that runs that member. Through a peer's member, a
// request would wait on the link to that peer (a frozen or cut-off peer
// held an agent's renewals for 40 s in a fault run); through its own, it
// fails when the member lost quorum, which is what makes an agent fence.
func ConnectMember(endpoint string, t TLSFiles, requestTimeout time.Duration) (*Store, error) {
	return connect([]string{endpoint}, t, false, requestTimeout)
}

func connect(endpoints []string, t TLSFiles, spread bool, requestTimeout time.Duration) (*Store, error) {
	tc, err := t.ClientTLS()
	if err != nil {
		return nil, err
	}
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 3 * time.Second,
		TLS:         tc,
		Logger:      zap.NewNop(),
		// gRPC's 2 MiB default refused a 5,001-object apply the member
		// would take; its framing adds a little to the request.
		MaxCallSendMsgSize: MaxRequestBytes + 1<<20,
	}
	if spread {
		cfg.AutoSyncInterval = 30 * time.Second
		cfg.DialKeepAliveTime, cfg.DialKeepAliveTimeout = keepAlivePing, keepAlivePing
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	if requestTimeout <= 0 {
		requestTimeout = DefaultRequestTimeout
	}
	boundRequests(c, requestTimeout)
	return &Store{client: c, now: time.Now}, nil
}

// keepAlivePing is how often a client pings an idle connection, and how
// long it waits for the answer; members accept pings this often (see
// sitekeeperLimits).
const keepAlivePing = 2 * time.Second

// MemberOptions configure one member of a multi-member etcd cluster
// embedded in an agent or a witness.
type MemberOptions struct {
	// Name is the member's name in the initial cluster (the node's name).
	Name    string
	DataDir string
	// PeerURL and ClientURL are what the member listens on and advertises:
	// "http://10.0.0.11:2380", "https://10.0.0.11:2379".
	PeerURL, ClientURL string
	// InitialCluster is "node1=http://10.0.0.11:2380,node2=...,witness=...".
	InitialCluster string
	// Existing joins a running cluster (after `sitekeeper member add`),
	// instead of forming a new one.
	Existing bool
	// TLS serves peer and client traffic with one certificate when set;
	// the URLs must then be https.
	TLS TLSFiles
	// ElectionTimeout is raft's election timeout (heartbeat a tenth of
	// it); zero means 500 ms, for members on one LAN.
	ElectionTimeout time.Duration
	Fast            bool
	Verbose         bool
	Log             logr.Logger
}

func parseURL(what, raw string) (url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return url.URL{}, fmt.Errorf("%s %q: want http(s)://host:port", what, raw)
	}
	return *u, nil
}

// ValidateInitialCluster checks "name=url,..." and that it names self.
func ValidateInitialCluster(ic, self, peerURL string) error {
	found := false
	for _, part := range strings.Split(ic, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" {
			return fmt.Errorf("--initial-cluster entry %q: want name=http(s)://host:port", part)
		}
		if _, err := parseURL("--initial-cluster "+name, u); err != nil {
			return err
		}
		if name == self {
			found = true
			if peerURL != "" && u != peerURL {
				return fmt.Errorf("--initial-cluster says %s=%s, but this member's peer URL is %s; make them equal", name, u, peerURL)
			}
		}
	}
	if !found {
		return fmt.Errorf("--initial-cluster does not name this member %q; add %s=<its peer URL>", self, self)
	}
	return nil
}

// StartMember starts a member of a multi-member cluster and waits until it
// has joined (a new cluster is ready once a quorum of members runs).
func StartMember(ctx context.Context, o MemberOptions) (*Server, error) {
	pu, err := parseURL("peer URL", o.PeerURL)
	if err != nil {
		return nil, err
	}
	cu, err := parseURL("client URL", o.ClientURL)
	if err != nil {
		return nil, err
	}
	if err := ValidateInitialCluster(o.InitialCluster, o.Name, o.PeerURL); err != nil {
		return nil, err
	}
	if o.TLS.Enabled() != (pu.Scheme == "https") || o.TLS.Enabled() != (cu.Scheme == "https") {
		return nil, fmt.Errorf("with TLS files the peer and client URLs are https, without them http (peer %s, client %s)", o.PeerURL, o.ClientURL)
	}
	if err := CheckDataDir(o.DataDir); err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = o.Name
	cfg.Dir = o.DataDir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = o.InitialCluster
	cfg.InitialClusterToken = clusterToken
	cfg.ClusterState = embed.ClusterStateFlagNew
	if o.Existing {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	if o.TLS.Enabled() {
		cfg.ClientTLSInfo, cfg.PeerTLSInfo = o.TLS.info(), o.TLS.info()
	}
	// A leaderless cluster renews no lease, so an election must end well
	// inside the agents' fence deadline (3/4 of a 2 s lease): at most
	// twice the election timeout passes before a new leader is in.
	if o.ElectionTimeout == 0 {
		o.ElectionTimeout = 500 * time.Millisecond
	}
	cfg.ElectionMs = uint(o.ElectionTimeout / time.Millisecond)
	cfg.TickMs = max(cfg.ElectionMs/10, 10)
	cfg.UnsafeNoFsync = o.Fast
	sitekeeperLimits(cfg, o.Log, o.Verbose)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s in %s: %w", o.Name, o.DataDir, err)
	}
	wait := time.NewTicker(10 * time.Second)
	defer wait.Stop()
	for {
		select {
		case <-e.Server.ReadyNotify():
			return &Server{etcd: e, Endpoint: cu.String()}, nil
		case err := <-e.Err():
			closeWithin(e, 5*time.Second)
			return nil, fmt.Errorf("etcd member %s: %w", o.Name, err)
		case <-wait.C:
			o.Log.Info("Waiting for a quorum of etcd members", "member", o.Name, "initialCluster", o.InitialCluster)
		case <-ctx.Done():
			// A member that never became ready can hang in Close: the
			// process must still stop when told to.
			closeWithin(e, 5*time.Second)
			return nil, ctx.Err()
		}
	}
}

// IsLearner reports whether the member runs as a learner.
func (s *Server) IsLearner() bool { return s.etcd.Server.IsLearner() }

// ID is the member's ID.
func (s *Server) ID() uint64 { return uint64(s.etcd.Server.MemberID()) }

// PromoteWhenCaughtUp promotes this member from learner to voter once the
// leader says its log caught up, retrying until ctx ends; a voter returns
// at once. A learner adds no vote, so a joining node never costs quorum.
// The member asks the leader itself: a learner serves no client request
// but serializable reads.
func (s *Server) PromoteWhenCaughtUp(ctx context.Context, log logr.Logger) error {
	for s.IsLearner() {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := s.etcd.Server.PromoteMember(pctx, s.ID())
		cancel()
		switch {
		case err == nil:
			log.Info("Promoted from learner to voting member", "member", s.etcd.Config().Name)
			return nil
		case errors.Is(err, membership.ErrMemberNotLearner):
			return nil
		}
		log.Info("Waiting for the leader to promote this learner", "member", s.etcd.Config().Name, "reason", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote learner %s: %w", s.etcd.Config().Name, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return nil
}

// MemberInfo is one etcd member as `sitekeeper member list` shows it.
type MemberInfo struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	Learner    bool     `json:"learner"`
	Leader     bool     `json:"leader"`
	// Healthy is false when the member's client URL did not answer.
	Healthy bool `json:"healthy"`
}

// Role is leader, voter, learner, or unreachable.
func (m MemberInfo) Role() string {
	switch {
	case !m.Healthy:
		return "unreachable"
	case m.Learner:
		return "learner"
	case m.Leader:
		return "leader"
	}
	return "voter"
}

// Members lists the cluster's members with their role and health.
func (st *Store) Members(ctx context.Context) ([]MemberInfo, error) {
	resp, err := st.client.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	var out []MemberInfo
	for _, m := range resp.Members {
		mi := MemberInfo{Name: m.Name, ID: fmt.Sprintf("%x", m.ID), PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner}
		for _, ep := range m.ClientURLs {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			stat, err := st.client.Status(sctx, ep)
			cancel()
			if err == nil {
				mi.Healthy = true
				mi.Leader = stat.Leader == m.ID
				break
			}
		}
		if mi.Name == "" {
			mi.Name = "(not started yet)"
		}
		out = append(out, mi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// AddLearner adds a member as a learner and returns the --initial-cluster
// the new member must start with.
func (st *Store) AddLearner(ctx context.Context, name, peerURL string) (string, error) {
	if _, err := parseURL("peer URL", peerURL); err != nil {
		return "", err
	}
	var resp *clientv3.MemberAddResponse
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err = st.client.MemberAddAsLearner(ctx, []string{peerURL})
		// Right after a membership change etcd calls the cluster unhealthy
		// until every member has been heard from again.
		if err == nil || !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return "", fmt.Errorf("add learner %s at %s: %w", name, peerURL, err)
	}
	var parts []string
	for _, m := range resp.Members {
		n := m.Name
		if m.ID == resp.Member.ID {
			n = name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	sort.Strings(parts)
	st.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventMemberAdded, Object: "member/" + name, Message: fmt.Sprintf("etcd member %s added as a learner at %s", name, peerURL)})
	return strings.Join(parts, ","), nil
}

// RemoveMember removes the member called name.
func (st *Store) RemoveMember(ctx context.Context, name string) error {
	resp, err := st.client.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("list etcd members: %w", err)
	}
	for _, m := range resp.Members {
		if m.Name == name {
			if _, err := st.client.MemberRemove(ctx, m.ID); err != nil {
				return fmt.Errorf("remove member %s: %w", name, err)
			}
			st.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventMemberRemoved, Object: "member/" + name, Message: "etcd member " + name + " removed"})
			return nil
		}
	}
	return fmt.Errorf("no etcd member named %q (sitekeeper member list shows them)", name)
}

// NodeLease says how fresh a node's registration is: how long ago its
// lease was last renewed (granted TTL minus remaining, at etcd's one-second
// granularity) and the TTL.
type NodeLease struct {
	RenewedAgo time.Duration
	TTL        time.Duration
}

// LeaseAges is how long ago each registered node renewed its lease.
func (st *Store) LeaseAges(ctx context.Context) map[string]time.Duration {
	out := map[string]time.Duration{}
	for n, l := range st.NodeLeases(ctx) {
		out[n] = l.RenewedAgo
	}
	return out
}

// NodeLeases returns the lease of every registered node by name: one read
// of the node keys, then one lease query per node.
func (st *Store) NodeLeases(ctx context.Context) map[string]NodeLease {
	out := map[string]NodeLease{}
	prefix := nodeKey("")
	resp, err := st.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return out
	}
	for _, kv := range resp.Kvs {
		if kv.Lease == 0 {
			continue
		}
		ttl, err := st.client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
		if err != nil || ttl.TTL < 0 {
			continue
		}
		out[strings.TrimPrefix(string(kv.Key), prefix)] = NodeLease{RenewedAgo: time.Duration(ttl.GrantedTTL-ttl.TTL) * time.Second, TTL: time.Duration(ttl.GrantedTTL) * time.Second}
	}
	return out
}

// KeepLeadership moves raft leadership to this member whenever another
// member holds it, checking every interval until ctx ends. The witness
// runs it: etcd extends every lease by its TTL when leadership changes
// hands, so a dying node that held leadership would delay its own
// failover by a whole TTL plus an election.
func (s *Server) KeepLeadership(ctx context.Context, tlsFiles TLSFiles, interval time.Duration, log logr.Logger) {
	self := s.ID()
	denied := false
	wait := interval / 4 // soon after start, then every interval
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = interval
		if s.IsLearner() {
			continue
		}
		lead := uint64(s.etcd.Server.Leader())
		if lead == 0 || lead == self {
			continue
		}
		var leaderURLs []string
		for _, m := range s.etcd.Server.Cluster().Members() {
			if uint64(m.ID) == lead {
				leaderURLs = m.ClientURLs
			}
		}
		if len(leaderURLs) == 0 {
			continue
		}
		st, err := ConnectTLS(leaderURLs, tlsFiles, 0)
		if err != nil {
			continue
		}
		mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = st.client.MoveLeader(mctx, self)
		cancel()
		st.Close()
		switch {
		case err == nil:
			log.Info("Took raft leadership, so that losing a node never resets the leases", "member", s.etcd.Config().Name)
		case IsPermissionDenied(err) && !denied:
			denied = true
			log.Info("Cannot take raft leadership: the store's authentication allows it to its admin only; run the witness on the node that ran init (it holds the admin certificate)", "error", err.Error())
		default:
			log.V(1).Info("Could not take raft leadership", "error", err.Error())
		}
	}
}
