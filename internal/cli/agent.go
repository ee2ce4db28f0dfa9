package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/linux"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/backend/windows"
	"github.com/sitekeeper/sitekeeper/internal/console"
	"github.com/sitekeeper/sitekeeper/internal/logging"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/node"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/winsvc"
)

func defaultBackend() string {
	if runtime.GOOS == "windows" {
		return "windows"
	}
	return "sim"
}

func defaultAgentDataDir() string {
	if pd := os.Getenv("ProgramData"); runtime.GOOS == "windows" && pd != "" {
		return filepath.Join(pd, "sitekeeper")
	}
	return ".sitekeeper-agent"
}

type backendOptions struct {
	name, node, dataDir, iface string
	leaseTTL, stepLatency      time.Duration
}

// openBackend returns the node backend the agent drives and how to let it go.
// A simulated IIS seeds an index page into each started site's empty folder.
func openBackend(o backendOptions, log logr.Logger) (backend.Node, func(), error) {
	// An address outlives a silent agent by half its lease at most (the
	// kernel counts whole seconds): it expires before the lease does.
	lifetime := ((o.leaseTTL/2 + time.Second - 1) / time.Second) * time.Second
	if o.name == "windows" {
		b, err := windows.New(windows.Options{DataDir: o.dataDir, Lifetime: lifetime, Log: log.WithName("windows")})
		return b, func() {}, err
	}
	world := sim.NewWorld(filepath.Join(o.dataDir, "sim"), log.WithName("sim"))
	world.SeedIndexPages()
	world.SetStepLatency("", o.stepLatency)
	n := world.Node(o.node)
	if !n.Powered() {
		n.PowerOn()
	}
	release := func() { world.Detach(); world.Close() }
	if o.name != "linux" {
		return n, release, nil
	}
	world.AllowAnyAddress()
	ln, err := linux.New(n, linux.Options{Interface: o.iface, Lifetime: lifetime, Log: log.WithName("linux")})
	if err != nil {
		release()
		return nil, nil, err
	}
	return ln, release, nil
}

func newAgentCmd(s *streams, g *globalFlags) *cobra.Command {
	var nodeName, manifests, dataDir, backendName, logFile, serviceName, iface, httpListen string
	var leaseTTL, stepLatency, syncPeriod time.Duration
	var gf gitopsFlags
	var mf memberFlags
	var etcdMember bool
	var runAgent func(ctx context.Context, logOut io.Writer) error
	cmd := &cobra.Command{
		Use:   "agent --node NAME [--manifests DIR] --endpoints HOST:PORT",
		Short: "Run one node's agent against a cluster store (watch mode)",
		Long: `Agent runs on every node: it holds the node's lease, converges the node on
the desired state, reports status, and stands for election as the placement
leader. With --manifests it also watches a manifest folder (a git checkout
kept fresh by any sync tool); only the elected leader applies it, so nodes
whose checkouts differ never fight, and each node's revision shows in
'sitekeeper get sources'.

On Windows the backend is the real node (--backend windows, the default
there): IIS, virtual IPs and volumes, checked for the IIS features first.
Elsewhere it is the simulator (--backend sim), for trying the agent out.
Started by the Service Control Manager (see 'sitekeeper service install'),
the agent runs as a Windows service and stops cleanly on service stop.`,
		Example: `  sitekeeper agent --node node1 --endpoints 127.0.0.1:2379 --manifests /srv/sitekeeper/manifests`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodeName == "" {
				return usagef("--node is required")
			}
			if err := leaseTTLRange.check("--lease-ttl", leaseTTL); err != nil {
				return err
			}
			if err := stepLatencyRange.check("--sim-step-latency", stepLatency); err != nil {
				return err
			}
			if err := syncPeriodRange.check("--sync-period", syncPeriod); err != nil {
				return err
			}
			if err := gf.check(); err != nil {
				return err
			}
			if etcdMember {
				if err := checkElection(mf.election, leaseTTL); err != nil {
					return err
				}
			}
			if backendName != "sim" && backendName != "windows" && backendName != "linux" {
				return usagef("--backend %q: use windows (on Windows nodes), linux (real addresses, simulated IIS) or sim", backendName)
			}
			if backendName == "linux" && iface == "" {
				return usagef("--backend linux needs --interface, the interface virtual IPs go on")
			}
			if stepLatency != 0 && backendName == "windows" {
				return usagef("--sim-step-latency slows the simulated IIS; it does not apply to --backend windows")
			}
			if backendName == "windows" && runtime.GOOS != "windows" {
				return usagef("--backend windows drives IIS and runs only on Windows; use --backend sim here")
			}
			if err := privateDataDir(s, "--data-dir", dataDir); err != nil {
				return err
			}
			logOut := s.err
			service := winsvc.IsService()
			if service && logFile == "" {
				// A service has no console: its log goes to a file.
				logFile = filepath.Join(dataDir, "logs", "agent.log")
			}
			if logFile != "" {
				rot := &lumberjack.Logger{Filename: logFile, MaxSize: 20, MaxBackups: 5, Compress: true}
				defer rot.Close()
				logOut = rot
			}
			if service {
				return winsvc.Run(serviceName, func(ctx context.Context) error { return runAgent(ctx, logOut) })
			}
			return runAgent(cmd.Context(), logOut)
		},
	}
	runAgent = func(ctx context.Context, logOut io.Writer) error {
		log := logging.New(logOut, g.verbose)
		var st *etcdstore.Store
		var err error
		if etcdMember {
			var srv *etcdstore.Server
			if srv, st, err = mf.join(ctx, g, nodeName, dataDir, log); err != nil {
				return err
			}
			// Deferred first, so closed last: after the agent's client.
			defer srv.Close()
		} else if st, err = g.connect(ctx); err != nil {
			return err
		} else if remote := g.plaintextRemote(st.Endpoints()); len(remote) > 0 {
			log.Info("WARNING: this agent talks to the store in plaintext across the network (--insecure-plaintext): anyone on the way can read and change what it is told; use this for a lab only", "endpoints", remote)
		}
		defer st.Close()
		st.SetLog(log)
		// After the member: --token may have just made the certificates
		// the listener serves with.
		web, err := openHTTP(httpListen, g.tls, false, g.insecure)
		if err != nil {
			return err
		}
		if web != nil && web.tls == nil && !loopbackListen(httpListen) {
			log.Info("WARNING: the dashboard and metrics are served in plaintext to anyone who reaches them (--insecure-plaintext), read-only: use this for a lab only", "listen", httpListen)
		}
		n, closeBackend, err := openBackend(backendOptions{name: backendName, node: nodeName, dataDir: dataDir, iface: iface, leaseTTL: leaseTTL, stepLatency: stepLatency}, log)
		if err != nil {
			return err
		}
		defer closeBackend()
		mset := metrics.New()
		o := node.Options{Name: nodeName, Store: st, Backend: n, LeaseTTL: leaseTTL, Resync: syncPeriod, Metrics: mset, Log: log}
		if manifests != "" {
			src := gf.source(manifests)
			o.Folder = &src
		}
		rt := node.New(o)
		fmt.Fprintf(s.out, "sitekeeper agent: node %s, store %v\n", nodeName, st.Endpoints())
		if web != nil {
			web.serve(ctx, st, console.Options{Metrics: mset, Ready: rt.Ready, Title: nodeName}, log)
			fmt.Fprintf(s.out, "sitekeeper agent: dashboard at %s (metrics at %smetrics)\n", web.url(), web.url())
		}
		return rt.Run(ctx)
	}
	cmd.Flags().StringVar(&nodeName, "node", "", "this node's name, as placement.nodes names it")
	cmd.Flags().StringVar(&manifests, "manifests", "", "watch this manifest folder and apply it (GitOps)")
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultAgentDataDir(), "folder for the agent's records (and the simulator's machines)")
	cmd.Flags().StringVar(&backendName, "backend", defaultBackend(), "node backend: windows (real IIS), linux (real virtual IPs with netlink, simulated IIS) or sim")
	cmd.Flags().StringVar(&iface, "interface", "", "with --backend linux: the interface virtual IPs go on (eth0)")
	cmd.Flags().StringVar(&logFile, "log-file", "", "log to this file, rotated at 20 MB with 5 compressed backups (default: stderr; as a Windows service DATA-DIR\\logs\\agent.log)")
	cmd.Flags().StringVar(&serviceName, "service-name", winsvc.DefaultName, "the Windows service name, when started by the service control manager")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", 2*time.Second, "node lease TTL")
	cmd.Flags().DurationVar(&syncPeriod, "sync-period", 30*time.Second, "look at every group this often even without a change (drift no store change signals, standby proofs)")
	cmd.Flags().DurationVar(&stepLatency, "sim-step-latency", 0, "with --backend sim or linux: every simulated IIS, address and volume call takes this long, as a slow Windows step would")
	cmd.Flags().StringVar(&httpListen, "http-listen", defaultAgentHTTP, "address of the dashboard, /metrics, /healthz and /readyz (off: none); beyond loopback it needs the cluster's certificates (https, client certificates with roles)")
	gf.register(cmd)
	cmd.Flags().BoolVar(&etcdMember, "etcd-member", false, "run an etcd member in this process (two nodes plus 'sitekeeper witness'); see --initial-cluster")
	mf.register(cmd)
	_ = cmd.Flags().MarkHidden("watch")
	return cmd
}
