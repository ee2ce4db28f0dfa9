package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/controllers/agent"
	"github.com/sitekeeper/sitekeeper/internal/diag"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/store"
	etcdstore "github.com/sitekeeper/sitekeeper/internal/store/etcd"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

func newApplyCmd(s *streams, g *globalFlags) *cobra.Command {
	var ff fileFlags
	var dryRun, force bool
	cmd := &cobra.Command{
		Use:   "apply -f PATH [-R] [--dry-run] [--force-conflicts]",
		Short: "Create or update objects from manifests (the whole set validated first)",
		Long: `Apply validates the manifests, then the whole resulting set (what is stored
plus these), and writes them in one transaction: nothing is stored if any
object is invalid. Each object is reported created, configured or unchanged.`,
		Example: `  sitekeeper apply -f manifests/demo
  sitekeeper apply -f site.yaml --dry-run`,
		Args: exactArgs(0, "no arguments (give manifests with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			docs, err := ff.loadValid(s)
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), g, func(st *etcdstore.Store) error {
				results, err := st.Apply(cmd.Context(), manifest.Objects(docs), etcdstore.ApplyOptions{DryRun: dryRun, ForceConflicts: force})
				var oe *etcdstore.OwnedError
				if errors.As(err, &oe) {
					fmt.Fprintf(s.err, "warning: %v\n", err)
					return silentError{ExitError}
				}
				var ve *etcdstore.ValidationError
				if errors.As(err, &ve) {
					manifest.Locate(ve.Errors, docs)
					return reportInvalid(s, ve.Errors)
				}
				if err != nil {
					return err
				}
				printApplied(s, results, dryRun)
				return nil
			})
		},
	}
	ff.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate against the store and print what would change, without writing")
	cmd.Flags().BoolVar(&force, "force-conflicts", false, "change objects a manifest folder owns (its next change set will undo it)")
	return cmd
}

// loadValid loads and validates the -f manifests; an invalid set is
// reported (every error) and returned as exit status 1.
func (f *fileFlags) loadValid(s *streams) ([]manifest.Document, error) {
	docs, res, err := f.load(s)
	if err != nil {
		return nil, err
	}
	if len(res.Errors) > 0 {
		return nil, reportInvalid(s, res.Errors)
	}
	return docs, nil
}

func reportInvalid(s *streams, errs diag.List) error {
	for _, e := range errs {
		fmt.Fprintln(s.err, e.Error())
	}
	fmt.Fprintf(s.err, "%d error(s); nothing was applied\n", len(errs))
	return silentError{ExitError}
}

// manifestYAML renders an object as the user would write it: no status and
// no fields the store sets.
func manifestYAML(o v1alpha1.Object) string {
	c := v1alpha1.DeepCopy(o)
	m := c.Meta()
	m.UID, m.ResourceVersion, m.Generation, m.CreationTimestamp, m.DeletionTimestamp = "", "", 0, nil, nil
	*c.StatusRef() = v1alpha1.Status{}
	b, _ := yaml.Marshal(c)
	return string(b)
}

func newDiffCmd(s *streams, g *globalFlags) *cobra.Command {
	var ff fileFlags
	cmd := &cobra.Command{
		Use:   "diff -f PATH [-R]",
		Short: "Show what apply would change (exit 1 when there is a difference)",
		Args:  exactArgs(0, "no arguments (give manifests with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			docs, err := ff.loadValid(s)
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), g, func(st *etcdstore.Store) error {
				different := false
				for _, d := range docs {
					ref := v1alpha1.RefOf(d.Object)
					live := ""
					if o, err := st.Get(cmd.Context(), ref); err == nil && o.Meta().DeletionTimestamp == nil {
						live = manifestYAML(o)
					} else if err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					if out := unifiedDiff("live/"+ref.String(), "manifest/"+ref.String(), live, manifestYAML(d.Object)); out != "" {
						different = true
						fmt.Fprint(s.out, out)
					}
				}
				if different {
					return silentError{ExitError}
				}
				return nil
			})
		},
	}
	ff.register(cmd)
	return cmd
}

func newDeleteCmd(s *streams, g *globalFlags) *cobra.Command {
	var ff fileFlags
	var wait bool
	cmd := &cobra.Command{
		Use:   "delete (-f PATH | KIND NAME) [--wait]",
		Short: "Take objects out of service on every node, then remove them",
		Example: `  sitekeeper delete iissite web1
  sitekeeper delete -f manifests/demo --wait`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var refs []v1alpha1.Ref
			switch {
			case len(ff.files) > 0 && len(args) == 0:
				docs, errs := manifest.Load(ff.files, manifest.Options{Recursive: ff.recursive, Stdin: s.in})
				if len(errs) > 0 {
					return reportInvalid(s, errs)
				}
				for _, d := range docs {
					refs = append(refs, v1alpha1.RefOf(d.Object))
				}
			case len(ff.files) == 0 && len(args) == 2:
				kind, ok := v1alpha1.ParseKind(args[0])
				if !ok {
					return usagef("unknown kind %q; use iissite, ip or vol", args[0])
				}
				refs = append(refs, v1alpha1.Ref{Kind: kind, Name: args[1]})
			default:
				return usagef("give -f PATH or KIND NAME")
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				snap, err := st.List(ctx)
				if err != nil {
					return err
				}
				gone := map[v1alpha1.Ref]bool{}
				for _, r := range refs {
					gone[r] = true
				}
				var rest []v1alpha1.Object
				for _, o := range snap.Objects {
					if !gone[v1alpha1.RefOf(o)] && o.Meta().DeletionTimestamp == nil {
						rest = append(rest, o)
					}
				}
				if errs := validation.Validate(rest).Errors; len(errs) > 0 {
					for _, e := range errs {
						fmt.Fprintln(s.err, e.Error())
					}
					return fmt.Errorf("deleting these would leave the objects above invalid; delete them together or fix them first")
				}
				for _, r := range refs {
					if err := st.MarkDeleted(ctx, r); err != nil {
						return err
					}
					fmt.Fprintf(s.out, "%s/%s deleted\n", strings.ToLower(r.Kind), r.Name)
				}
				if !wait {
					return nil
				}
				return waitFor(ctx, 60*time.Second, func() (bool, error) {
					for _, r := range refs {
						if _, err := st.Get(ctx, r); err == nil {
							return false, nil
						} else if !errors.Is(err, store.ErrNotFound) {
							return false, err
						}
					}
					return true, nil
				})
			})
		},
	}
	ff.register(cmd)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every node took the objects out of service and they are removed")
	return cmd
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clusterState is everything get, describe and plan show.
type clusterState struct {
	snap      etcdstore.Snapshot
	graph     *graph.Graph
	decisions map[string]store.Decision
	nodes     map[string]store.NodeInfo
	reports   map[string]store.Report
	suspended map[string]bool
	observed  map[string]plan.Observed
}

func readState(ctx context.Context, st *etcdstore.Store) (*clusterState, error) {
	c := &clusterState{}
	var err error
	if c.snap, err = st.List(ctx); err != nil {
		return nil, err
	}
	var live []v1alpha1.Object
	for _, o := range c.snap.Objects {
		if o.Meta().DeletionTimestamp == nil {
			live = append(live, v1alpha1.DeepCopy(o))
		}
	}
	c.graph = graph.Of(live)
	if c.decisions, err = st.Decisions(ctx); err != nil {
		return nil, err
	}
	if c.nodes, err = etcdstore.GetPrefix[store.NodeInfo](ctx, st, store.Prefix+"nodes/"); err != nil {
		return nil, err
	}
	if c.reports, err = etcdstore.GetPrefix[store.Report](ctx, st, store.Prefix+"reports/"); err != nil {
		return nil, err
	}
	if c.suspended, err = etcdstore.GetPrefix[bool](ctx, st, store.Prefix+"suspend/"); err != nil {
		return nil, err
	}
	if c.observed, err = etcdstore.GetPrefix[plan.Observed](ctx, st, store.Prefix+"observed/"); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *clusterState) find(ref v1alpha1.Ref) v1alpha1.Object {
	for _, o := range c.snap.Objects {
		if v1alpha1.RefOf(o) == ref {
			return o
		}
	}
	return nil
}

func newSwitchoverCmd(s *streams, g *globalFlags) *cobra.Command {
	var to string
	var wait, force bool
	cmd := &cobra.Command{
		Use:   "switchover KIND NAME --to NODE [--wait] [--force]",
		Short: "Move a resource group to another node (any member names its group)",
		Long: `Switchover sets placement.activeNode to NODE on the group's members that
declare the placement (a new generation): the placement controller stops the
group on its node, then brings it up on NODE. This is also the manual
switchback after a failover.`,
		Example: `  sitekeeper switchover iissite WebSite1 --to node1 --wait`,
		Args:    exactArgs(2, "KIND NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := v1alpha1.ParseKind(args[0])
			if !ok {
				return usagef("unknown kind %q; use iissite, ip or vol", args[0])
			}
			if to == "" {
				return usagef("--to NODE is required")
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				cs, err := readState(ctx, st)
				if err != nil {
					return err
				}
				ref := v1alpha1.Ref{Kind: kind, Name: args[1]}
				grp, ok := cs.graph.GroupOf(ref)
				if !ok {
					return fmt.Errorf("%s: %w", ref, store.ErrNotFound)
				}
				if !containsFold(grp.Placement.Nodes, to) {
					return fmt.Errorf("%s is not in the placement of group %s (%s); add it to placement.nodes first", to, grp.Name, strings.Join(grp.Placement.Nodes, ", "))
				}
				var changed []v1alpha1.Object
				for _, m := range grp.Members {
					o := cs.find(m)
					if o == nil || o.PlacementSpec().IsZero() {
						continue
					}
					if src := o.Meta().Annotations[v1alpha1.AnnotationSource]; src != "" && !force {
						file := ""
						if rows, err := readSources(ctx, st, src); err == nil && len(rows) == 1 {
							for _, e := range rows[0].Inventory {
								if e.Ref == m.String() {
									file = rows[0].Path + "/" + e.File
								}
							}
						}
						fmt.Fprintf(s.out, "%s is managed by source %s; commit this change instead (or pass --force):\n  %s: %s: set spec.placement.activeNode: %s\n", m, src, orDash(file), m, to)
						return silentError{ExitError}
					}
					c := v1alpha1.DeepCopy(o)
					c.PlacementSpec().ActiveNode = to
					changed = append(changed, c)
				}
				if err := st.UpdateSpecs(ctx, changed...); err != nil {
					return err
				}
				fmt.Fprintf(s.out, "group %s: switchover to %s requested\n", grp.Name, to)
				if !wait {
					return nil
				}
				err = waitFor(ctx, 60*time.Second, func() (bool, error) {
					d, err := st.Decisions(ctx)
					if err != nil {
						return false, err
					}
					rep := store.Report{}
					reports, _ := etcdstore.GetPrefix[store.Report](ctx, st, store.Prefix+"reports/"+grp.Name+"/")
					rep = reports[to]
					return d[grp.Name].Active == to && rep.Active && rep.Phase == store.PhaseConverged, nil
				})
				if err == nil {
					fmt.Fprintf(s.out, "group %s: active on %s\n", grp.Name, to)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the node that should serve the group")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the group serves from NODE")
	cmd.Flags().BoolVar(&force, "force", false, "switch over a folder-owned group anyway (its next change set may move it back)")
	return cmd
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func newPlanCmd(s *streams, g *globalFlags) *cobra.Command {
	cmd := newLocalPlanCmd(s)
	local := cmd.RunE
	cmd.Use = "plan [-f PATH [--node NAME] [--active GROUP=NODE...]] [-o text|json]"
	cmd.Short = "Print the steps nodes would take: for manifests (-f) or for the cluster now"
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if f, _ := c.Flags().GetStringSlice("filename"); len(f) > 0 {
			return local(c, args)
		}
		output, _ := c.Flags().GetString("output")
		ctx := c.Context()
		return withStore(ctx, g, func(st *etcdstore.Store) error {
			d, err := agent.LoadDesired(ctx, st, "")
			if err != nil {
				return err
			}
			observed, err := etcdstore.GetPrefix[plan.Observed](ctx, st, store.Prefix+"observed/")
			if err != nil {
				return err
			}
			var nodes []plan.Observed
			for _, k := range slices.Sorted(maps.Keys(observed)) {
				nodes = append(nodes, observed[k])
			}
			return printPlan(s, plan.ComputeCluster(d, nodes), output)
		})
	}
	return cmd
}
