// Package etcd is the store on etcd: an embedded single-member server for
// the default set-up, or an external cluster reached by its endpoints.
package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ServerOptions configure the embedded etcd.
type ServerOptions struct {
	// DataDir holds etcd's data.
	DataDir string
	// ClientAddr is host:port for clients; port 0 picks a free one.
	ClientAddr string
	// Fast tunes the member for tests: short ticks and no fsync.
	Fast bool
	// Verbose lets etcd's info logs through.
	Verbose bool
	Log     logr.Logger
}

// MaxTxnOps is the largest transaction the embedded member accepts; an
// external etcd needs --max-txn-ops at least this for large applies.
const MaxTxnOps = 16384

// MaxRequestBytes is the largest request the embedded member accepts, and
// the largest a client sends: one apply of a big folder is one request.
// An external etcd needs --max-request-bytes at least this.
const MaxRequestBytes = 16 << 20

// singleName is the name of the one member `sitekeeper up` runs;
// clusterToken is the cluster token of the members agents and witnesses
// run.
const singleName, clusterToken = "sitekeeper", "sitekeeper"

// Server is an embedded etcd member.
type Server struct {
	etcd     *embed.Etcd
	Endpoint string
}

// StartServer starts a one-member etcd inside the process.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	if err := CheckDataDir(o.DataDir); err != nil {
		return nil, err
	}
	if o.ClientAddr == "" {
		o.ClientAddr = "127.0.0.1:0"
	}
	// A port chosen free can be taken before etcd binds it (another
	// process starting at the same moment): choose again, a few times.
	var e *embed.Etcd
	var cu url.URL
	for attempt := 0; ; attempt++ {
		var cfg *embed.Config
		var err error
		cfg, cu, err = singleConfig(o)
		if err != nil {
			return nil, err
		}
		e, err = embed.StartEtcd(cfg)
		if err == nil {
			break
		}
		if attempt < 4 && portTaken(err) {
			continue
		}
		return nil, fmt.Errorf("start embedded etcd in %s: %w", o.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		closeWithin(e, 5*time.Second)
		return nil, fmt.Errorf("embedded etcd in %s did not become ready in 30s: if its files are damaged, restore a snapshot (sitekeeper snapshot restore) or remove the folder and join the member again", o.DataDir)
	case <-ctx.Done():
		closeWithin(e, 5*time.Second)
		return nil, ctx.Err()
	}
	return &Server{etcd: e, Endpoint: cu.String()}, nil
}

// closeWithin closes e, waiting at most d: a member that never became
// ready was seen to hang in Close, and the caller must still return its
// error rather than hang with no output.
func closeWithin(e *embed.Etcd, d time.Duration) {
	done := make(chan struct{})
	go func() {
		e.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// portTaken reports whether err is a listen on a port already taken.
func portTaken(err error) bool {
	msg := err.Error()
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(msg, "address already in use") || strings.Contains(msg, "Only one usage of each socket address")
}

// singleConfig is the configuration of a one-member store, with its ports
// chosen now when o asks for any free one.
func singleConfig(o ServerOptions) (*embed.Config, url.URL, error) {
	cfg := embed.NewConfig()
	cfg.Name = singleName
	cfg.Dir = o.DataDir
	clientAddr, err := resolvePort(o.ClientAddr)
	if err != nil {
		return nil, url.URL{}, err
	}
	peerAddr, err := resolvePort("127.0.0.1:0")
	if err != nil {
		return nil, url.URL{}, err
	}
	cu := url.URL{Scheme: "http", Host: clientAddr}
	pu := url.URL{Scheme: "http", Host: peerAddr}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.TickMs, cfg.ElectionMs = 100, 1000
	if o.Fast {
		cfg.TickMs, cfg.ElectionMs = 10, 50
		cfg.UnsafeNoFsync = true
	}
	sitekeeperLimits(cfg, o.Log, o.Verbose)
	// The one member of `up` has no peer to catch up: a short log holds
	// less of the live heap. An entry is a whole batch (128 groups'
	// statuses, a folder's apply: hundreds of kilobytes), so even a
	// snapshot every 100 entries kept 13 MB of them with 1,000 groups;
	// every 20 keeps under 3 MB, and a snapshot of the one member costs
	// a bolt commit. Members of a cluster keep the longer log: a lagging
	// peer (an agent restarted or cut off) then catches up from it rather
	// than being sent the whole database.
	cfg.SnapshotCount, cfg.SnapshotCatchUpEntries = 20, 5
	// Nor a watcher that lags by minutes: every reader is in the process.
	// History kept for an hour made etcd's key index and database hold
	// every write of the start of 1,000 groups (25 MiB of the database
	// resident); a minute is plenty for a watch to resume from.
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "periodic", "1m"
	return cfg, cu, nil
}

// sitekeeperLimits sets what every embedded member shares: compaction,
// transactions large enough for one apply of a big folder, and logs
// through logr.
func sitekeeperLimits(cfg *embed.Config, log logr.Logger, verbose bool) {
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "periodic", "1h"
	// Raft keeps the log since the last snapshot in memory; Sitekeeper's
	// entries are large (a batch of a hundred groups' decisions and
	// status, a whole folder's apply), and 10,000 of them were a third of
	// the heap of a node with thousands of sites. A snapshot of a few
	// megabytes is cheap; a member that lags further is sent one. A
	// member of a cluster keeps 1,000 entries for a peer that lags (a
	// restarted or cut-off agent catches up from the log instead of being
	// sent the whole database); see singleConfig for the one member of
	// `up`.
	cfg.SnapshotCount = 2000
	cfg.SnapshotCatchUpEntries = 1000
	// One apply is one transaction (all or nothing): allow large sets.
	cfg.MaxTxnOps = MaxTxnOps
	cfg.MaxRequestBytes = MaxRequestBytes
	// Clients ping idle connections every keepAlivePing, to find a cut
	// link in seconds; etcd's default refuses pings under 5 s apart.
	cfg.GRPCKeepAliveMinTime = keepAlivePing / 2
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(logrCore{log: log.WithName("etcd"), verbose: verbose}))
}

// Close stops the member.
func (s *Server) Close() { s.etcd.Close() }

// resolvePort picks a free port when addr asks for port 0. The port could
// be taken again before etcd binds it; etcd then fails clearly.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

// logrCore sends etcd's zap logs to Sitekeeper's logger: errors always,
// the rest only when verbose. A normal shutdown logs nothing.
type logrCore struct {
	log     logr.Logger
	verbose bool
	fields  []zapcore.Field
}

func (c logrCore) Enabled(l zapcore.Level) bool {
	if c.verbose {
		return l >= zapcore.InfoLevel
	}
	// Quiet unless verbose: etcd logs recoverable trouble at error level
	// (a fresh data dir, a client gone); only a crash is worth showing.
	return l >= zapcore.DPanicLevel
}

func (c logrCore) With(f []zapcore.Field) zapcore.Core {
	return logrCore{log: c.log, verbose: c.verbose, fields: append(append([]zapcore.Field{}, c.fields...), f...)}
}

func (c logrCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c logrCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field{}, c.fields...), fields...) {
		f.AddTo(enc)
	}
	kv := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		kv = append(kv, k, v)
	}
	if e.Level >= zapcore.ErrorLevel {
		c.log.Error(nil, e.Message, kv...)
	} else {
		c.log.V(1).Info(e.Message, kv...)
	}
	return nil
}

func (c logrCore) Sync() error { return nil }

// Connect opens a client that calls this member inside the process,
// without the loopback socket, HTTP/2 framing and protobuf encoding a
// network client goes through: `up` runs every node's agent and the
// placement leader against its own member, and at 1,000 groups the gRPC
// round trips were a quarter of its idle CPU. Clients in other processes
// (the CLI, agents joining) still use Endpoint.
func (s *Server) Connect() *Store {
	c := v3client.New(s.etcd.Server)
	boundRequests(c, DefaultRequestTimeout)
	return &Store{client: c, now: time.Now}
}
