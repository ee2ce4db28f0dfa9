package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/ops"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

func newDrainCmd(s *streams, g *globalFlags) *cobra.Command {
	var parallel int
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "drain NODE [--parallel N] [--timeout 10m]",
		Short: "Move every group off a node and leave it suspended for maintenance",
		Long: `Drain moves every group off NODE, --parallel at a time (the placement
leader does it, so groups a folder owns move too and switchback does not
pull them back), waits for each to be serving elsewhere, then suspends the
node: nothing is started, stopped or failed over there until
'sitekeeper uncordon NODE'. A group whose only node that can serve it is
NODE is reported and stays.`,
		Example: "  sitekeeper drain node1\n  sitekeeper drain node1 --parallel 4 && sitekeeper uncordon node1",
		Args:    exactArgs(1, "NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if parallel < 1 {
				return usagef("--parallel %d: give 1 or more", parallel)
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				node, err := resolveNode(ctx, st, args[0])
				if err != nil {
					return err
				}
				groups, err := ops.Drain(ctx, st, node, parallel)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.out, "node %s: draining %d group(s), %d at a time\n", node, len(groups), parallel)
				last := map[string]string{}
				var blocked []string
				err = waitFor(ctx, timeout, func() (bool, error) {
					all := true
					blocked = blocked[:0]
					for _, grp := range groups {
						phase, done, stays, err := ops.DrainPhase(ctx, st, node, grp)
						if err != nil {
							return false, err
						}
						if phase != last[grp] {
							fmt.Fprintf(s.out, "group %s: %s\n", grp, phase)
							last[grp] = phase
						}
						all = all && done
						if stays {
							blocked = append(blocked, grp)
						}
					}
					return all, nil
				})
				if err != nil {
					return fmt.Errorf("node %s: drain not done (it goes on; 'sitekeeper get groups' shows where each is): %w", node, err)
				}
				if err := ops.SetSuspended(ctx, st, ops.Target{Kind: "Node", Name: node}, true); err != nil {
					return err
				}
				fmt.Fprintf(s.out, "node %s: drained and suspended for maintenance; 'sitekeeper uncordon %s' ends it\n", node, node)
				if len(blocked) > 0 {
					fmt.Fprintf(s.out, "node %s: %d group(s) stayed, no other node can serve them: %s\n", node, len(blocked), strings.Join(blocked, ", "))
				}
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&parallel, "parallel", 1, "how many groups move off at once")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting after this long (the drain goes on)")
	return cmd
}

func newUncordonCmd(s *streams, g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "uncordon NODE",
		Short:   "End a node's drain and maintenance: it takes groups again",
		Example: "  sitekeeper uncordon node1",
		Args:    exactArgs(1, "NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				node, err := resolveNode(ctx, st, args[0])
				if err != nil {
					return err
				}
				if err := ops.Uncordon(ctx, st, node); err != nil {
					return err
				}
				fmt.Fprintf(s.out, "node %s: takes groups again (groups with switchback: Automatic return to it)\n", node)
				return nil
			})
		},
	}
}
