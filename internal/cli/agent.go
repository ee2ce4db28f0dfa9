package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/controllers/agent"
	"github.com/sitekeeper/sitekeeper/controllers/placement"
	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
	"github.com/sitekeeper/sitekeeper/internal/logging"
)

func newAgentCmd(s *streams, g *globalFlags) *cobra.Command {
	var node, manifests, dataDir, backendName string
	var leaseTTL time.Duration
	var gf gitopsFlags
	cmd := &cobra.Command{
		Use:   "agent --node NAME [--manifests DIR] --endpoints HOST:PORT",
		Short: "Run one node's agent against a cluster store (watch mode)",
		Long: `Agent runs on every node: it holds the node's lease, converges the node on
the desired state, reports status, and stands for election as the placement
leader. With --manifests it also watches a manifest folder (a git checkout
kept fresh by any sync tool); only the elected leader applies it, so nodes
whose checkouts differ never fight, and each node's revision shows in
'sitekeeper get sources'.

The backend on Linux is the simulator (--backend sim), for trying the agent
out; the Windows backend is what runs on real nodes.`,
		Example: `  sitekeeper agent --node node1 --endpoints 127.0.0.1:2379 --manifests /srv/sitekeeper/manifests`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if node == "" {
				return usagef("--node is required")
			}
			if backendName != "sim" {
				return usagef("--backend %q is not available in this build; use sim", backendName)
			}
			ctx := cmd.Context()
			log := logging.New(s.err, g.verbose)
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			world := sim.NewWorld(filepath.Join(dataDir, "sim"), log.WithName("sim"))
			defer world.Close()
			defer world.Detach()
			n := world.Node(node)
			if !n.Powered() {
				n.PowerOn()
			}
			ctrl := &placement.Controller{Store: st, Log: log.WithName("placement"), Identity: node}
			m := &agent.Member{Node: node, Store: st, Backend: n, LeaseTTL: leaseTTL, Log: log.WithName(node)}
			var wg sync.WaitGroup
			run := func(f func(context.Context)) {
				wg.Add(1)
				go func() { defer wg.Done(); f(ctx) }()
			}
			if manifests != "" {
				if fi, err := os.Stat(manifests); err != nil || !fi.IsDir() {
					return fmt.Errorf("--manifests %s: not a folder", manifests)
				}
				r := gf.reconciler(st, manifests, node, log)
				r.IsLeader = ctrl.IsLeader
				lead := make(chan struct{}, 1)
				r.Trigger = lead
				ctrl.OnLead = func() {
					select {
					case lead <- struct{}{}:
					default:
					}
				}
				run(func(ctx context.Context) {
					if err := r.Run(ctx); err != nil {
						log.Error(err, "Folder watch stopped", "dir", manifests)
					}
				})
			}
			run(func(ctx context.Context) { _ = ctrl.Run(ctx) })
			fmt.Fprintf(s.out, "sitekeeper agent: node %s, store %v\n", node, st.Client.Endpoints())
			err = m.Run(ctx)
			wg.Wait()
			return err
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "this node's name, as placement.nodes names it")
	cmd.Flags().StringVar(&manifests, "manifests", "", "watch this manifest folder and apply it (GitOps)")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".sitekeeper-agent", "folder for the simulator's machines")
	cmd.Flags().StringVar(&backendName, "backend", "sim", "node backend: sim")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", 2*time.Second, "node lease TTL")
	gf.register(cmd)
	_ = cmd.Flags().MarkHidden("watch")
	return cmd
}
