package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/controllers/gitops"
	"github.com/sitekeeper/sitekeeper/controllers/placement"
	"github.com/sitekeeper/sitekeeper/internal/cluster"
	"github.com/sitekeeper/sitekeeper/internal/console"
	"github.com/sitekeeper/sitekeeper/internal/logging"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/ops"
	"github.com/sitekeeper/sitekeeper/internal/privdir"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

func newUpCmd(s *streams, g *globalFlags) *cobra.Command {
	var ff fileFlags
	var nodes []string
	var dataDir, listen, httpListen string
	var leaseTTL time.Duration
	var fast bool
	var latency []string
	var gf gitopsFlags
	cmd := &cobra.Command{
		Use:   "up [-f DIR] [--nodes node1,node2] [--data-dir D] [--listen 127.0.0.1:PORT]",
		Short: "Run the embedded default: a store and simulated nodes in one process",
		Long: `Up runs a whole Sitekeeper cluster on this machine: an etcd store inside the
process (data under --data-dir) and, per simulated node, the node runtime
'sitekeeper agent' runs on a real node (its agent and its placement
candidate; one is elected leader). The simulated IIS really serves each started site on its
loopback addresses. Manifests given with -f are applied at start. The store
endpoint is printed and recorded, so other commands in another terminal find
it. Inject faults with 'sitekeeper sim'. Stop with Ctrl-C; start again on the
same --data-dir to resume.`,
		Example: `  sitekeeper up -f manifests/demo
  sitekeeper up -f manifests/demo --nodes node1,node2,node3 --listen 127.0.0.1:23790`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := logging.New(s.err, g.verbose)
			stepLatency, err := parseStepLatency(latency)
			if err != nil {
				return err
			}
			if err := leaseTTLRange.check("--lease-ttl", leaseTTL); err != nil {
				return err
			}
			if err := gf.check(); err != nil {
				return err
			}
			if err := checkListen(listen, g.insecure); err != nil {
				return err
			}
			if g.insecure && !loopbackListen(listen) {
				fmt.Fprintf(s.err, "WARNING: the store at %s takes plaintext writes from anyone who can reach it (--insecure-plaintext): use this for a lab only\n", listen)
			}
			var docs []manifest.Document
			folder := watchedFolder(ff.files)
			if folder != "" && gf.watch {
				ff.files = nil // the folder watch applies it, valid or not
			}
			if len(ff.files) > 0 {
				d, r := manifest.LoadAndValidate(ff.files, manifest.Options{Recursive: ff.recursive, Stdin: s.in})
				if len(r.Errors) > 0 {
					for _, e := range r.Errors {
						fmt.Fprintln(s.err, e.Error())
					}
					return fmt.Errorf("%d error(s) in %s; nothing was started", len(r.Errors), strings.Join(ff.files, ", "))
				}
				docs = d
			}
			var folderSource *gitops.Source
			var onApplied func(string, []store.ApplyResult, error)
			if folder != "" && gf.watch {
				src := gf.source(folder)
				folderSource = &src
				onApplied = func(rev string, results []store.ApplyResult, err error) {
					if err != nil {
						fmt.Fprintf(s.out, "%s source %s: revision %s NOT applied (the last good revision stays in force):\n%s\n", time.Now().Format("15:04:05.000"), src.Name, rev, err)
						return
					}
					for _, res := range results {
						if res.Outcome != store.Unchanged {
							fmt.Fprintf(s.out, "%s source %s: %s/%s %s\n", time.Now().Format("15:04:05.000"), src.Name, strings.ToLower(res.Ref.Kind), res.Ref.Name, res.Outcome)
						}
					}
				}
			}
			if err := privateDataDir(s, "--data-dir", dataDir); err != nil {
				return err
			}
			web, err := openHTTP(httpListen, g.tls, true, g.insecure)
			if err != nil {
				return err
			}
			if web != nil && g.insecure && !loopbackListen(httpListen) {
				fmt.Fprintf(s.err, "WARNING: the dashboard at %s lets anyone who reaches it act on the cluster (--insecure-plaintext): use this for a lab only\n", httpListen)
			}
			mset := metrics.New()
			// The endpoint file names this store while it runs; when up
			// stops, it names again what it named before (or nothing).
			restore := func() {}
			started := false
			defer func() {
				restore()
				// A start that failed says why on stderr; "run up again
				// to resume" would send the user round in a circle.
				if started {
					fmt.Fprintf(s.out, "sitekeeper up: stopped (data kept in %s; run up again on it to resume)\n", dataDir)
				}
			}()
			return cluster.RunLocal(ctx, cluster.LocalOptions{
				DataDir: dataDir, Listen: listen, Nodes: nodes, LeaseTTL: leaseTTL, Fast: fast, Verbose: g.verbose > 0, Log: log, StepLatency: stepLatency,
				Ready: func(endpoint string, st *etcdstore.Store) error {
					started = true
					prev, err := recordEndpoint(endpoint)
					if err != nil {
						log.Error(err, "Record the store endpoint (other commands need --endpoints)")
					} else {
						restore = prev
					}
					fmt.Fprintf(s.out, "sitekeeper up: store at %s, data in %s, nodes %s\n", endpoint, dataDir, strings.Join(nodes, ", "))
					if len(docs) == 0 {
						return nil
					}
					results, err := ops.Apply(ctx, st, manifest.Objects(docs), store.ApplyOptions{Manager: defaultFieldManager()})
					if err != nil {
						return fmt.Errorf("apply %s: %w", strings.Join(ff.files, ", "), err)
					}
					printApplied(s, results, false)
					return nil
				},
				// The live log: every placement decision, as it is taken.
				Recorder: record.Func(func(e store.Event) {
					if e.Component == placement.Component && strings.HasPrefix(e.Object, "group/") {
						fmt.Fprintf(s.out, "%s placement %s: %s: %s\n", time.Now().Format("15:04:05.000"), strings.TrimPrefix(e.Object, "group/"), e.Reason, e.Message)
					}
				}),
				Folder:    folderSource,
				OnApplied: onApplied,
				Metrics:   mset,
				Started: func(l *cluster.Local) {
					if web == nil {
						return
					}
					web.serve(ctx, l.Store, console.Options{Metrics: mset, Ready: l.Ready, Title: "sitekeeper up"}, log)
					fmt.Fprintf(s.out, "sitekeeper up: dashboard at %s (metrics at %smetrics)\n", web.url(), web.url())
				},
			})
		},
	}
	ff.register(cmd)
	gf.register(cmd)
	cmd.Flags().StringSliceVar(&nodes, "nodes", []string{"node1", "node2"}, "simulated nodes to run")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".sitekeeper", "folder for the store's data and the simulated disks")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address of the store's client endpoint (port 0: any free port); loopback only, unless --insecure-plaintext")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", 2*time.Second, "node lease TTL; a node that misses it for this long is failed over")
	cmd.Flags().StringVar(&httpListen, "http-listen", "127.0.0.1:0", "address of the dashboard, /metrics, /healthz and /readyz (port 0: any free port; off: none); loopback only, unless --insecure-plaintext")
	cmd.Flags().StringSliceVar(&latency, "sim-step-latency", nil, "make every simulated backend call take this long, as a slow Windows step would: 2s for every node, or node1=2s for one (repeatable)")
	cmd.Flags().BoolVar(&fast, "unsafe-fast-store", false, "tune the embedded store for tests (no fsync); never for real data")
	_ = cmd.Flags().MarkHidden("unsafe-fast-store")
	return cmd
}

// parseStepLatency reads --sim-step-latency: "2s" or "node1=2s".
func parseStepLatency(vals []string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, v := range vals {
		node, d, found := strings.Cut(v, "=")
		if !found {
			node, d = "", v
		}
		dur, err := time.ParseDuration(d)
		if err != nil {
			return nil, usagef("--sim-step-latency %q: give a duration (2s) or NODE=DURATION (node1=2s)", v)
		}
		if err := stepLatencyRange.check("--sim-step-latency", dur); err != nil {
			return nil, err
		}
		out[node] = dur
	}
	return out, nil
}

func printApplied(s *streams, results []store.ApplyResult, dryRun bool) {
	suffix := ""
	if dryRun {
		suffix = " (dry run)"
	}
	for _, r := range results {
		fmt.Fprintf(s.out, "%s/%s %s%s\n", strings.ToLower(r.Ref.Kind), r.Ref.Name, r.Outcome, suffix)
	}
}

// loopbackListen reports whether addr (host:port) listens on loopback only.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkListen refuses a store endpoint other hosts can reach: up serves
// plaintext with no authentication, so any host could take over every
// node.
func checkListen(addr string, insecure bool) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("--listen %q: give host:port, such as 127.0.0.1:23790", addr)
	}
	if !loopbackListen(addr) && !insecure {
		return usagef("--listen %s: up serves the store without TLS or authentication, so it listens on loopback only (127.0.0.1:PORT); for a cluster other hosts reach, run agents with a witness (see \"A real cluster\"), or pass --insecure-plaintext for a lab", addr)
	}
	return nil
}

// privateDataDir makes a command's data folder private (privdir), saying
// so when an existing one was open to other local users.
func privateDataDir(s *streams, flag, dir string) error {
	tightened, err := privdir.Ensure(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	if tightened {
		fmt.Fprintf(s.err, "sitekeeper: %s %s was open to other local users; made it private to this account\n", flag, dir)
	}
	return nil
}

// withStore runs f with a connected store.
func withStore(ctx context.Context, g *globalFlags, f func(*etcdstore.Store) error) error {
	st, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return f(st)
}

// check checks the flags' values.
func (f *gitopsFlags) check() error { return resyncRange.check("--resync", f.resync) }

// gitopsFlags configure the watch of a manifest folder.
type gitopsFlags struct {
	watch      bool
	prune      bool
	allowEmpty bool
	resync     time.Duration
	name       string
	rollback   bool
}

func (f *gitopsFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.watch, "watch", true, "when -f is one folder, watch it and apply every change (GitOps)")
	cmd.Flags().BoolVar(&f.prune, "prune", true, "delete objects this folder applied once they leave it")
	cmd.Flags().BoolVar(&f.allowEmpty, "allow-empty", false, "let an empty folder delete every object it owned (refused by default: a bad checkout looks like that)")
	cmd.Flags().DurationVar(&f.resync, "resync", 60*time.Second, "re-read the whole folder this often even without events")
	cmd.Flags().BoolVar(&f.rollback, "allow-rollback", false, "apply a checkout older than (or unrelated to) the commit applied last; refused by default")
	cmd.Flags().StringVar(&f.name, "source", "", "name of the source, the same on every node (default: the repository's remote name, with the folder's path inside it)")
	cmd.Flags().StringVar(&f.name, "source-name", "", "the same as --source")
	_ = cmd.Flags().MarkHidden("source-name")
}

func (f *gitopsFlags) source(dir string) gitops.Source {
	name := f.name
	var adopt []string
	if name == "" {
		name = gitops.DefaultName(dir)
		if old := gitops.FolderName(dir); old != name {
			adopt = []string{old}
		}
	}
	return gitops.Source{Name: name, Dir: dir, Prune: f.prune, AllowEmpty: f.allowEmpty, Resync: f.resync, AdoptFrom: adopt, AllowRollback: f.rollback}
}

// watchedFolder returns the folder when files is exactly one folder.
func watchedFolder(files []string) string {
	if len(files) != 1 || files[0] == "-" {
		return ""
	}
	if st, err := os.Stat(files[0]); err == nil && st.IsDir() {
		return files[0]
	}
	return ""
}
