package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/controllers/agent"
	"github.com/sitekeeper/sitekeeper/internal/clusterview"
	"github.com/sitekeeper/sitekeeper/internal/diag"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
	"github.com/sitekeeper/sitekeeper/internal/ops"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/printer"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

func newApplyCmd(s *streams, g *globalFlags) *cobra.Command {
	ff := fileFlags{sources: &[]manifest.SourceDocument{}}
	var dryRun, force bool
	var manager string
	cmd := &cobra.Command{
		Use:   "apply -f PATH [-R] [--dry-run] [--force-conflicts] [--field-manager NAME]",
		Short: "Create or update objects from manifests (the whole set validated first)",
		Long: `Apply validates the manifests, then the whole resulting set (what is stored
plus these), and writes them in one transaction: nothing is stored if any
object is invalid. Each object is reported created, configured or unchanged.

Each field remembers who last set it (see metadata.managedFields in
get -o yaml). Applying a change to a field another field manager set is a
conflict that names the field and the manager; nothing is written. Put
their value in your manifest, or take the field over with --force-conflicts.`,
		Example: `  sitekeeper apply -f manifests/demo
  sitekeeper apply -f site.yaml --dry-run`,
		Args: exactArgs(0, "no arguments (give manifests with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			docs, err := ff.loadValid(s)
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), g, func(st *etcdstore.Store) error {
				if len(docs) == 0 {
					// Only GitSources.
					return applySources(cmd.Context(), s, st, *ff.sources, dryRun)
				}
				results, err := ops.Apply(cmd.Context(), st, manifest.Objects(docs), store.ApplyOptions{DryRun: dryRun, ForceConflicts: force, Manager: manager})
				var oe *store.OwnedError
				if errors.As(err, &oe) {
					fmt.Fprintf(s.err, "warning: %v\n", err)
					return silentError{ExitError}
				}
				var ve *store.ValidationError
				if errors.As(err, &ve) {
					manifest.Locate(ve.Errors, docs)
					return reportInvalid(s, ve.Errors)
				}
				if err != nil {
					return err
				}
				printApplied(s, results, dryRun)
				// The objects are stored; the sources after them, so that a
				// refused set stores neither.
				return applySources(cmd.Context(), s, st, *ff.sources, dryRun)
			})
		},
	}
	ff.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate against the store and print what would change, without writing")
	cmd.Flags().BoolVar(&force, "force-conflicts", false, "change fields another field manager set, and objects a manifest folder owns (its next change set will undo it)")
	cmd.Flags().StringVar(&manager, "field-manager", defaultFieldManager(), "who this apply is, as recorded on each field it sets")
	return cmd
}

// applySources stores the GitSources an apply read (already validated).
func applySources(ctx context.Context, s *streams, st *etcdstore.Store, sources []manifest.SourceDocument, dryRun bool) error {
	for _, sd := range sources {
		verb := "created"
		if dryRun {
			if _, _, ok, err := st.GitSource(ctx, sd.Source.Metadata.Name); err != nil {
				return err
			} else if ok {
				verb = "configured"
			}
			verb += " (dry run)"
		} else {
			v, err := putGitSource(ctx, st, sd.Source)
			if err != nil {
				return fmt.Errorf("%s:%d: GitSource/%s: %w", sd.File, sd.Line, sd.Source.Metadata.Name, err)
			}
			verb = v
		}
		fmt.Fprintf(s.out, "gitsource/%s %s\n", sd.Source.Metadata.Name, verb)
	}
	return nil
}

// defaultFieldManager is the person applying: user@host, so that two
// operators changing the same field conflict instead of one silently
// undoing the other.
func defaultFieldManager() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return name
	}
	return name + "@" + host
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

// manifestYAML is o as a user writes it: without what the system adds
// (uid, generation, resourceVersion, timestamps, managed fields, status,
// the owner annotation) and with defaults filled in on both sides of a diff, so
// that only what the user changed differs.
func manifestYAML(o v1alpha1.Object) string {
	c := v1alpha1.DeepCopy(o)
	v1alpha1.Default(c)
	m := c.Meta()
	m.UID, m.ResourceVersion, m.Generation, m.CreationTimestamp, m.DeletionTimestamp = "", "", 0, nil, nil
	m.ManagedFields = nil
	m.Annotations = v1alpha1.WithoutSystemAnnotations(m.Annotations)
	if len(m.Annotations) == 0 {
		m.Annotations = nil
	}
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
	var wait, ignoreNotFound, force bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "delete (-f PATH | KIND NAME) [--wait] [--force]",
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
				for i, r := range refs {
					got, err := ops.ResolveIn(snap.Objects, r)
					switch {
					case err == nil:
						refs[i] = got
					case errors.Is(err, store.ErrNotFound) && ignoreNotFound:
					default:
						return err
					}
				}
				deleted, err := ops.Delete(ctx, st, refs, ignoreNotFound, force)
				var be *ops.BreaksSetError
				if errors.As(err, &be) {
					for _, e := range be.Errors {
						fmt.Fprintln(s.err, e.Error())
					}
					return fmt.Errorf("deleting these would leave the objects above invalid; delete them together or fix them first")
				}
				if err != nil {
					return err
				}
				for _, r := range deleted {
					fmt.Fprintf(s.out, "%s/%s deleted\n", strings.ToLower(r.Kind), r.Name)
				}
				if !wait {
					return nil
				}
				fmt.Fprintf(s.out, "waiting until every node took %d object(s) out of service\n", len(deleted))
				if err := waitFor(ctx, timeout, func() (bool, error) { return ops.Deleted(ctx, st, deleted) }); err != nil {
					return fmt.Errorf("delete not finished (the nodes go on taking the objects out of service): %w", err)
				}
				fmt.Fprintln(s.out, "out of service on every node and removed")
				return nil
			})
		},
	}
	ff.register(cmd)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every node took the objects out of service and they are removed")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "with --wait: give up after this long (the delete goes on)")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "skip objects that do not exist instead of failing")
	cmd.Flags().BoolVar(&force, "force", false, "delete objects a source owns anyway (they come back at its next sync unless removed from it)")
	return cmd
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	if err := waitTimeoutRange.check("--timeout", timeout); err != nil {
		return err
	}
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
type clusterState = clusterview.State

// warnDamaged tells on stderr which keys were skipped, so that a listing
// that lacks an object says why.
func warnDamaged(w io.Writer, c *clusterState) {
	for _, k := range c.Damaged() {
		fmt.Fprintf(w, "warning: %s\n", store.DamagedMessage(k))
	}
}

func readState(ctx context.Context, st *etcdstore.Store) (*clusterState, error) {
	return clusterview.Read(ctx, st)
}

func newSwitchoverCmd(s *streams, g *globalFlags) *cobra.Command {
	var to string
	var wait, force bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "switchover KIND NAME --to NODE [--wait] [--force]",
		Short: "Move a resource group to another node (any member names its group)",
		Long: `Switchover sets placement.activeNode to NODE on the group's members that
declare the placement (a new generation): the placement controller stops the
group on its node, then brings it up on NODE. This is also the manual
switchback after a failover.`,
		Example: `  sitekeeper switchover iissite WebSite1 --to node1 --wait
  sitekeeper switchover group WebSite1 --to node1`,
		Args: exactArgs(2, "KIND NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, ok := v1alpha1.ParseKind(args[0]); !ok && !isGroupKind(args[0]) {
				return usagef("unknown kind %q; use site, ip, vol or group", args[0])
			}
			if to == "" {
				return usagef("--to NODE is required")
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				ref, err := resolveObject(ctx, st, args[0], args[1])
				if err != nil {
					return err
				}
				group, err := ops.Switchover(ctx, st, ref, to, force)
				var me *ops.ManagedError
				if errors.As(err, &me) {
					fmt.Fprintln(s.out, me.Error())
					return silentError{ExitError}
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(s.out, "group %s: switchover to %s requested\n", group, to)
				if !wait {
					return nil
				}
				last := ""
				err = waitFor(ctx, timeout, func() (bool, error) {
					phase, done, err := ops.SwitchoverPhase(ctx, st, group, to)
					if err == nil && phase != last {
						fmt.Fprintf(s.out, "group %s: %s\n", group, phase)
						last = phase
					}
					return done, err
				})
				if err != nil {
					return fmt.Errorf("group %s: switchover to %s not done (last: %s): %w", group, to, last, err)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the node that should serve the group")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the group serves from NODE, printing each stage")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "with --wait: give up after this long (the switchover goes on)")
	cmd.Flags().BoolVar(&force, "force", false, "switch over a folder-owned group anyway (its next change set may move it back)")
	return cmd
}

func newPlanCmd(s *streams, g *globalFlags) *cobra.Command {
	cmd := newLocalPlanCmd(s)
	local := cmd.RunE
	cmd.Use = "plan [-f PATH [--node NAME] [--active GROUP=NODE...]] [--simulate FAULT...] [-o table|wide|yaml|json]"
	cmd.Short = "Print the steps nodes would take: for manifests (-f) or for the cluster now; what-if with --simulate"
	cmd.Example += `
  sitekeeper plan --simulate fail-node=node1
  sitekeeper plan --simulate fail-node=node1 --simulate drain-node=node2 -o json
  sitekeeper plan -f manifests/demo --simulate fail-site=WebSite1`
	var simulate []string
	cmd.Flags().StringArrayVar(&simulate, "simulate", nil, "what if: fail-node=NODE, partition-node=NODE, drain-node=NODE or fail-site=SITE (repeatable, for combined faults); prints each group's decision, an outage estimate and the steps, and changes nothing")
	cmd.RunE = func(c *cobra.Command, args []string) error {
		faults, err := parseFaults(simulate)
		if err != nil {
			return err
		}
		output, _ := c.Flags().GetString("output")
		if err := checkOutput(&output); err != nil {
			return err
		}
		if f, _ := c.Flags().GetStringSlice("filename"); len(f) > 0 {
			if len(faults) == 0 {
				return local(c, args)
			}
			recursive, _ := c.Flags().GetBool("recursive")
			ff := fileFlags{files: f, recursive: recursive}
			_, res, err := ff.load(s)
			if err != nil {
				return err
			}
			if len(res.Errors) > 0 {
				return fmt.Errorf("manifests are invalid:\n%s", res.Errors.Error())
			}
			return simulateOffline(s, res.Graph, faults, output)
		}
		ctx := c.Context()
		return withStore(ctx, g, func(st *etcdstore.Store) error {
			if len(faults) > 0 {
				return simulateLive(ctx, s, st, faults, output)
			}
			d, observed, err := desiredAndObserved(ctx, st)
			if err != nil {
				return err
			}
			if len(observed) == 0 {
				return fmt.Errorf("no node has published what it has, so there is nothing to plan for; start an agent (sitekeeper agent) or sitekeeper up, then try again")
			}
			return printNodePlans(s, d, observed, output)
		})
	}
	return cmd
}

// desiredAndObserved is what nodes' plans are computed from: the desired
// state and what each node last published it has.
func desiredAndObserved(ctx context.Context, st *etcdstore.Store) (*plan.Desired, map[string]plan.Observed, error) {
	d, err := agent.LoadDesired(ctx, st, "")
	if err != nil {
		return nil, nil, err
	}
	observed, err := st.Observed(ctx)
	return d, observed, err
}

// nodePlan is one node's steps, as `plan` against the cluster prints them.
type nodePlan struct {
	Node  string    `json:"node"`
	Steps plan.Plan `json:"steps"`
}

// printNodePlans prints, for each node that published what it has, the
// steps it would take now, or that it is converged.
func printNodePlans(s *streams, d *plan.Desired, observed map[string]plan.Observed, output string) error {
	var plans []nodePlan
	for _, n := range slices.Sorted(maps.Keys(observed)) {
		steps := plan.Compute(d, observed[n])
		if steps == nil {
			steps = plan.Plan{}
		}
		plans = append(plans, nodePlan{Node: n, Steps: steps})
	}
	switch {
	case printer.Structured(output):
		return printer.Encode(s.out, output, printer.List("NodePlan", plans))
	case output == "wide":
		tw := newStepTable(s.out)
		for _, p := range plans {
			if len(p.Steps) == 0 {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tconverged\n", p.Node)
			}
			for _, st := range p.Steps {
				stepRow(tw, st)
			}
		}
		return tw.Flush()
	}
	for _, p := range plans {
		if len(p.Steps) == 0 {
			fmt.Fprintf(s.out, "%s: converged\n", p.Node)
			continue
		}
		fmt.Fprintf(s.out, "%s: %d step(s)\n", p.Node, len(p.Steps))
		for _, st := range p.Steps {
			fmt.Fprintf(s.out, "  %s\n", st)
		}
	}
	return nil
}
