package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/printer"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// newSourceCmd is `sitekeeper source`: thin commands over GitSource
// objects, which the placement leader fetches and applies.
func newSourceCmd(s *streams, g *globalFlags) *cobra.Command {
	cmd := parent(&cobra.Command{
		Use:   "source",
		Short: "Git sources the cluster fetches and applies itself (add, list, suspend, resume, reconcile, delete)",
		Long: `A git source is a repository the placement leader fetches every interval and
applies at the commit its ref names: the manifests under its path, as one change
set, pruning what the source applied before and no longer holds. The leader
resolves the ref itself, so a new leader applies what the old one would have; a
commit older than (or unrelated to) the applied one is refused unless asked for.`,
	})
	cmd.AddCommand(newSourceAddCmd(s, g), newSourceListCmd(s, g), newSourceSetCmd(s, g, "suspend"), newSourceSetCmd(s, g, "resume"),
		newSourceReconcileCmd(s, g), newSourceDeleteCmd(s, g))
	return cmd
}

func newSourceAddCmd(s *streams, g *globalFlags) *cobra.Command {
	var gs v1alpha1.GitSource
	var prune, export bool
	var notify []string
	cmd := &cobra.Command{
		Use:   "add NAME --url URL [--branch B | --tag T | --semver RANGE | --commit SHA] [--path DIR]",
		Short: "Declare a git source (or change one): the leader fetches and applies it from then on",
		Example: `  sitekeeper source add sites --url https://git.example.com/ops/sites.git --branch main --path prod
  sitekeeper source add sites --url git@git.example.com:ops/sites.git --semver ">=1.0.0 <2.0.0" --ssh-key-file /etc/sitekeeper/deploy.key
  sitekeeper source add sites --url file:///srv/git/sites.git --interval 10s --export > sites-source.yaml`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			gs.Metadata.Name = args[0]
			gs.Spec.Prune = &prune
			for _, u := range notify {
				gs.Spec.Notify = append(gs.Spec.Notify, v1alpha1.Webhook{URL: u})
			}
			if c := gs.Spec.Credentials; c != nil && *c == (v1alpha1.GitCredentials{}) {
				gs.Spec.Credentials = nil
			}
			gs.Default()
			if errs := gs.Validate(); len(errs) > 0 {
				return usagef("%s", strings.Join(errs, "\n"))
			}
			if export {
				return printer.Encode(s.out, "yaml", gs)
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				verb, err := putGitSource(ctx, st, gs)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.out, "source %s %s: %s %s, every %s; `sitekeeper get sources %s` shows what it applied\n", gs.Metadata.Name, verb, gs.Spec.URL, gs.Spec.Ref, gs.Spec.Interval.Duration, gs.Metadata.Name)
				return nil
			})
		},
	}
	f := cmd.Flags()
	gs.Spec.Credentials = &v1alpha1.GitCredentials{}
	f.StringVar(&gs.Spec.URL, "url", "", "the repository: https://, http://, ssh://, git@host:path or file://")
	f.StringVar(&gs.Spec.Ref.Branch, "branch", "", "follow this branch (default main)")
	f.StringVar(&gs.Spec.Ref.Tag, "tag", "", "apply this tag")
	f.StringVar(&gs.Spec.Ref.SemVer, "semver", "", "follow the highest tag in this semver range, e.g. \">=1.0.0 <2.0.0\"")
	f.StringVar(&gs.Spec.Ref.Commit, "commit", "", "apply this commit (40 hex digits)")
	f.StringVar(&gs.Spec.Path, "path", "", "the folder inside the repository that holds the manifests (default its root)")
	f.DurationVar(&gs.Spec.Interval.Duration, "interval", time.Minute, "how often to fetch (1s to 24h)")
	f.DurationVar(&gs.Spec.Timeout.Duration, "timeout", 5*time.Minute, "how long an applied revision may take to be served before the source is Degraded")
	f.BoolVar(&prune, "prune", true, "delete the objects the source applied and no longer holds")
	f.BoolVar(&gs.Spec.AllowRollback, "allow-rollback", false, "apply a commit older than (or unrelated to) the applied one; by default it is refused")
	f.StringVar(&gs.Spec.Credentials.TokenFile, "token-file", "", "a file holding an HTTPS token, on every node (the store keeps only the file's name)")
	f.StringVar(&gs.Spec.Credentials.Username, "username", "", "the user name sent with the token (default git)")
	f.StringVar(&gs.Spec.Credentials.SSHKeyFile, "ssh-key-file", "", "a file holding an SSH private key, on every node")
	f.StringVar(&gs.Spec.Credentials.KnownHostsFile, "known-hosts-file", "", "the SSH server's host keys (default: the user's known_hosts)")
	f.StringSliceVar(&notify, "notify", nil, "a webhook URL told of every applied, refused and degraded revision and failover (repeat for more; spec.notify takes events and a secret)")
	f.BoolVar(&export, "export", false, "print the GitSource as YAML instead of storing it (for a manifest kept in git)")
	return cmd
}

// putGitSource stores gs, keeping the annotations of the one it replaces.
func putGitSource(ctx context.Context, st *etcdstore.Store, gs v1alpha1.GitSource) (string, error) {
	existed, err := st.UpdateGitSource(ctx, gs.Metadata.Name, true, func(cur *v1alpha1.GitSource, existed bool) error {
		annotations := cur.Metadata.Annotations
		*cur = gs
		if existed {
			cur.Metadata.Annotations = annotations
		}
		return nil
	})
	if existed {
		return "configured", err
	}
	return "created", err
}

// changeGitSource applies change to the stored source name.
func changeGitSource(ctx context.Context, st *etcdstore.Store, name string, change func(*v1alpha1.GitSource) error) error {
	_, err := st.UpdateGitSource(ctx, name, false, func(gs *v1alpha1.GitSource, _ bool) error { return change(gs) })
	return err
}

type gitSourceRow struct {
	v1alpha1.GitSource
	Status *store.Source `json:"status,omitempty"`
}

func newSourceListCmd(s *streams, g *globalFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the git sources: what each follows, the commit it resolved and the one applied",
		Example: "  sitekeeper source list\n  sitekeeper source list -o yaml",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(&output); err != nil {
				return err
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				specs, err := st.GitSources(ctx)
				if err != nil {
					return err
				}
				srcs, err := st.Sources(ctx)
				if err != nil {
					return err
				}
				var rows []gitSourceRow
				for _, name := range slices.Sorted(maps.Keys(specs)) {
					r := gitSourceRow{GitSource: specs[name]}
					r.Default()
					if src, ok := srcs[name]; ok {
						r.Status = &src
					}
					rows = append(rows, r)
				}
				if printer.Structured(output) {
					return printer.Items(s.out, output, v1alpha1.KindGitSource, rows, false)
				}
				tw := printer.NewTable(s.out)
				head := "NAME\tURL\tREF\tSUSPENDED\tRESOLVED\tAPPLIED\tMESSAGE"
				if output == "wide" {
					head = "NAME\tURL\tPATH\tREF\tINTERVAL\tSUSPENDED\tRESOLVED\tAPPLIED\tMESSAGE"
				}
				fmt.Fprintln(tw, head)
				for _, r := range rows {
					resolved, applied, msg := "-", "-", "not fetched yet"
					if st := r.Status; st != nil {
						applied = shortRev(st.Revision)
						msg = "applied " + orDash(st.Revision)
						if st.Git != nil {
							resolved = shortRev("git:" + st.Git.Resolved)
							if st.Git.FetchError != "" {
								msg = "fetch failed: " + firstLineOf(st.Git.FetchError)
							}
						}
						if st.LastAttempt.Error != "" {
							msg = fmt.Sprintf("%s refused: %s", shortRev(st.LastAttempt.Revision), firstLineOf(st.LastAttempt.Error))
						}
					}
					if output == "wide" {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", r.Metadata.Name, r.Spec.URL, orDash(r.Spec.Path), r.Spec.Ref, r.Spec.Interval.Duration, r.Spec.Suspend, resolved, applied, msg)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", r.Metadata.Name, r.Spec.URL, r.Spec.Ref, r.Spec.Suspend, resolved, applied, msg)
				}
				return tw.Flush()
			})
		},
	}
	outputFlag(cmd, &output, "")
	return cmd
}

func firstLineOf(s string) string { return strings.SplitN(s, "\n", 2)[0] }

func newSourceSetCmd(s *streams, g *globalFlags, verb string) *cobra.Command {
	short := map[string]string{
		"suspend": "Stop fetching and applying a git source; what it applied stays",
		"resume":  "Fetch and apply a suspended git source again",
	}[verb]
	return &cobra.Command{
		Use:     verb + " NAME",
		Short:   short,
		Example: fmt.Sprintf("  sitekeeper source %s sites", verb),
		Args:    exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				err := changeGitSource(ctx, st, args[0], func(gs *v1alpha1.GitSource) error {
					gs.Spec.Suspend = verb == "suspend"
					return nil
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(s.out, "source %s %sd\n", args[0], strings.TrimSuffix(verb, "e"))
				return nil
			})
		},
	}
}

func newSourceReconcileCmd(s *streams, g *globalFlags) *cobra.Command {
	var rollback bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "reconcile NAME",
		Short: "Fetch a git source and apply it now, and wait for the outcome",
		Example: `  sitekeeper source reconcile sites
  sitekeeper source reconcile sites --allow-rollback   # apply an older commit on purpose, this once`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name := args[0]
			token := time.Now().UTC().Format(time.RFC3339Nano)
			if rollback {
				token += ";allow-rollback"
			}
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				err := changeGitSource(ctx, st, name, func(gs *v1alpha1.GitSource) error {
					if gs.Spec.Suspend {
						return fmt.Errorf("source %s is suspended: `sitekeeper source resume %s` first", name, name)
					}
					if gs.Metadata.Annotations == nil {
						gs.Metadata.Annotations = map[string]string{}
					}
					gs.Metadata.Annotations[v1alpha1.AnnotationReconcile] = token
					return nil
				})
				if err != nil {
					return err
				}
				deadline := time.Now().Add(wait)
				for {
					src, _, err := st.Source(ctx, name)
					if err != nil {
						return err
					}
					if src.Git != nil && src.Git.HandledReconcile == token {
						switch {
						case src.Git.FetchError != "":
							return fmt.Errorf("source %s: fetch failed: %s; %s stays in force", name, src.Git.FetchError, orDash(src.Revision))
						case src.LastAttempt.Error != "":
							return fmt.Errorf("source %s: %s refused; %s stays in force:\n%s", name, src.LastAttempt.Revision, orDash(src.Revision), src.LastAttempt.Error)
						}
						fmt.Fprintf(s.out, "source %s: %s applied (the ref resolves to %s)\n", name, src.Revision, src.Git.Resolved)
						return nil
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("source %s: the request was stored, but no leader acted on it within %s; is the cluster running (`sitekeeper get nodes`)?", name, wait)
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(200 * time.Millisecond):
					}
				}
			})
		},
	}
	cmd.Flags().BoolVar(&rollback, "allow-rollback", false, "apply the commit even when it is older than (or unrelated to) the applied one, this once")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the leader's outcome")
	return cmd
}

func newSourceDeleteCmd(s *streams, g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop following a git source; the objects it applied stay, still owned by its name",
		Long: `Delete removes the GitSource: nothing is fetched any more. The objects it
applied stay in service and stay owned by the source's name: delete them with
'sitekeeper delete --force', or take them over with a source of the same name.`,
		Example: "  sitekeeper source delete sites",
		Args:    exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				ok, err := st.DeleteGitSource(ctx, args[0])
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("git source %q: %w", args[0], store.ErrNotFound)
				}
				fmt.Fprintf(s.out, "source %s deleted; the objects it applied stay\n", args[0])
				return nil
			})
		},
	}
}
