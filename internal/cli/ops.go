package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/ops"
	"github.com/sitekeeper/sitekeeper/internal/printer"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

func newEventsCmd(s *streams, g *globalFlags) *cobra.Command {
	var watch bool
	var output, object, node, typ string
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "events [--watch] [-o table|wide|yaml|json] [--object OBJ] [--node NODE] [--type Normal|Warning] [--since 10m]",
		Short: "List what happened: placement decisions, steps, applies and deletes",
		Example: `  sitekeeper events --watch
  sitekeeper events --type Warning --since 10m
  sitekeeper events --object group/WebSite1 --node node2`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(&output); err != nil {
				return err
			}
			if output == "wide" {
				output = "table" // every column already
			}
			if watch && output == "yaml" {
				return usagef("events --watch prints a table or one JSON event a line; use -o table or -o json")
			}
			if typ != "" && !strings.EqualFold(typ, store.Normal) && !strings.EqualFold(typ, store.Warning) {
				return usagef("--type %q: use Normal or Warning", typ)
			}
			if since < 0 {
				return usagef("--since %s: give a positive duration (10m)", since)
			}
			from := time.Time{}
			if since > 0 {
				from = time.Now().Add(-since)
			}
			keep := func(e store.Event) bool {
				return (object == "" || strings.EqualFold(e.Object, object) || strings.HasSuffix(strings.ToLower(e.Object), "/"+strings.ToLower(object))) &&
					(node == "" || strings.EqualFold(e.Node, node)) &&
					(typ == "" || strings.EqualFold(e.Type, typ)) &&
					(from.IsZero() || !e.Time.Before(from))
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				events, rev, err := st.Events(ctx)
				if err != nil {
					return err
				}
				tw := printer.NewTable(s.out)
				var listed []store.Event
				print := func(e store.Event) {
					if !keep(e) {
						return
					}
					if printer.Structured(output) && !watch {
						listed = append(listed, e)
						return
					}
					if output == "json" {
						// Watching: one event a line, as it happens.
						b, err := json.Marshal(e)
						if err == nil {
							fmt.Fprintln(s.out, string(b))
						}
						return
					}
					msg := e.Message
					if e.By != "" {
						msg += " (by " + e.By + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("15:04:05.000"), e.Type, e.Reason, e.Object, orDash(e.Node), msg)
					if watch {
						_ = tw.Flush()
					}
				}
				if output == "table" {
					fmt.Fprintln(tw, "TIME\tTYPE\tREASON\tOBJECT\tNODE\tMESSAGE")
				}
				for _, e := range events {
					print(e)
				}
				if printer.Structured(output) && !watch {
					return printer.Encode(s.out, output, printer.List("Event", listed))
				}
				if !watch {
					return tw.Flush()
				}
				for e := range st.WatchEvents(ctx, rev) {
					print(e)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "keep printing new events")
	outputFlag(cmd, &output, "a List; with --watch one JSON event a line")
	cmd.Flags().StringVar(&object, "object", "", "only events of this object: group/NAME, node/NAME, IISSite/NAME, or a bare NAME")
	cmd.Flags().StringVar(&node, "node", "", "only events on this node")
	cmd.Flags().StringVar(&typ, "type", "", "only Normal or only Warning events")
	cmd.Flags().DurationVar(&since, "since", 0, "only events of the last DURATION (10m)")
	return cmd
}

func newSuspendCmd(s *streams, g *globalFlags, suspend bool) *cobra.Command {
	var node string
	verb, short := "resume", "Let Sitekeeper act on an object's group (or a node) again"
	if suspend {
		verb, short = "suspend", "Stop Sitekeeper acting on an object's group (or a node): maintenance mode"
	}
	cmd := &cobra.Command{
		Use:   verb + " (KIND NAME | --node NAME)",
		Short: short,
		Long: short + `. While suspended nothing is started, stopped or failed
over; status keeps being observed.`,
		Example: fmt.Sprintf("  sitekeeper %s iissite WebSite1\n  sitekeeper %s --node node1", verb, verb),
		RunE: func(cmd *cobra.Command, args []string) error {
			var t ops.Target
			switch {
			case node != "" && len(args) == 0:
				t = ops.Target{Kind: "Node", Name: node}
			case node == "" && len(args) == 2:
				if _, ok := v1alpha1.ParseKind(args[0]); !ok && !isGroupKind(args[0]) {
					return usagef("unknown kind %q; use site, ip, vol or group", args[0])
				}
			default:
				return usagef("give KIND NAME or --node NAME")
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				if node != "" {
					n, err := resolveNode(ctx, st, node)
					if err != nil {
						return err
					}
					t = ops.Target{Kind: "Node", Name: n}
				} else {
					ref, err := resolveObject(ctx, st, args[0], args[1])
					if err != nil {
						return err
					}
					t = ops.Target{Kind: ref.Kind, Name: ref.Name}
				}
				if err := ops.SetSuspended(ctx, st, t, suspend); err != nil {
					return err
				}
				done := map[bool]string{true: "suspended", false: "resumed"}[suspend]
				fmt.Fprintf(s.out, "%s %s\n", t, done)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "a whole node")
	return cmd
}

func newClearFailuresCmd(s *streams, g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "clear-failures KIND NAME",
		Short: "Forget a group's recorded failures, so automatic moves may use every node again",
		Args:  exactArgs(2, "KIND NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, ok := v1alpha1.ParseKind(args[0]); !ok && !isGroupKind(args[0]) {
				return usagef("unknown kind %q; use site, ip, vol or group", args[0])
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				ref, err := resolveObject(ctx, st, args[0], args[1])
				if err != nil {
					return err
				}
				group, cleared, err := ops.ClearFailures(ctx, st, ref)
				if err != nil {
					return err
				}
				if !cleared {
					fmt.Fprintf(s.out, "group %s has no recorded failures\n", group)
					return nil
				}
				fmt.Fprintf(s.out, "group %s: failures cleared\n", group)
				return nil
			})
		},
	}
}

func newSimCmd(s *streams, g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Inject faults into the simulated nodes of `sitekeeper up`",
	}
	// do resolves node, makes the fault (told what to say, with the node's
	// known name) and prints what it said.
	do := func(cmd *cobra.Command, node string, say func(node string) string, act func(ctx context.Context, st *etcdstore.Store, node, msg string) error) error {
		ctx := cmd.Context()
		return withStore(ctx, g, func(st *etcdstore.Store) error {
			known, err := resolveNode(ctx, st, node)
			if err != nil {
				return err
			}
			msg := say(known)
			if err := act(ctx, st, known, msg); err != nil {
				return err
			}
			fmt.Fprintln(s.out, msg)
			return nil
		})
	}
	send := func(cmd *cobra.Command, node string, c store.SimCommand, msg string) error {
		return do(cmd, node, func(known string) string { return strings.Replace(msg, node, known, 1) },
			func(ctx context.Context, st *etcdstore.Store, known, msg string) error {
				return ops.Simulate(ctx, st, known, c, msg)
			})
	}
	fault := func(use, short, kind string, on bool, says string) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: exactArgs(2, strings.SplitN(use, " ", 2)[1]),
			RunE: func(c *cobra.Command, a []string) error {
				return do(c, a[0], func(known string) string { return fmt.Sprintf("%s %s on %s", kind, a[1], known) + says },
					func(ctx context.Context, st *etcdstore.Store, known, msg string) error {
						return ops.SimulateStandbyFault(ctx, st, known, kind, a[1], on, msg)
					})
			},
		}
	}
	cmd.AddCommand(
		fault("hide-volume NODE VOLUME", "Make a VolumeResource's volume invisible to the node (a disk not zoned to it, a mirror resyncing): its standbys are not ready", "volume", true, " hidden"),
		fault("show-volume NODE VOLUME", "Make the volume visible to the node again", "volume", false, " visible again"),
		fault("remove-cert NODE THUMBPRINT", "Remove a certificate (with its key) from the node's store: standbys of groups whose https/ftps bindings need it are not ready", "cert", true, " removed"),
		fault("add-cert NODE THUMBPRINT", "Put the certificate back", "cert", false, " back"),
		fault("remove-feature NODE FEATURE", "Uninstall an IIS role (Web-Server, Web-Ftp-Server) from the node", "feature", true, " uninstalled"),
		fault("add-feature NODE FEATURE", "Install the IIS role again", "feature", false, " installed"),
		fault("fail-site NODE SITE", "The site answers every request with 500 on the node (a broken deployment, a crashed pool): its health checks fail until heal-site", "site", true, " failing"),
		fault("heal-site NODE SITE", "The site answers normally on the node again", "site", false, " healed"),
		&cobra.Command{
			Use: "fail-node NODE", Short: "The node loses power: it stops renewing its lease, its listeners and addresses vanish",
			Args: exactArgs(1, "NODE"),
			RunE: func(c *cobra.Command, a []string) error {
				return send(c, a[0], store.SimCommand{Powered: false}, a[0]+" lost power")
			},
		},
		&cobra.Command{
			Use: "heal-node NODE", Short: "The node boots again (or its partition ends) and rejoins as standby",
			Args: exactArgs(1, "NODE"),
			RunE: func(c *cobra.Command, a []string) error {
				return send(c, a[0], store.SimCommand{Powered: true}, a[0]+" boots")
			},
		},
		&cobra.Command{
			Use: "partition-node NODE", Short: "Cut the node off from the store: it keeps running and serving, stops renewing its lease and must fence itself (heal-node ends it)",
			Args: exactArgs(1, "NODE"),
			RunE: func(c *cobra.Command, a []string) error {
				return send(c, a[0], store.SimCommand{Powered: true, Partitioned: true}, a[0]+" cut off from the store")
			},
		},
		&cobra.Command{
			Use: "stop-site NODE SITE", Short: "Stop a site in IIS behind Sitekeeper's back",
			Args: exactArgs(2, "NODE SITE"),
			RunE: func(c *cobra.Command, a []string) error {
				return send(c, a[0], store.SimCommand{Powered: true, StopSite: a[1]}, fmt.Sprintf("site %s stopped on %s behind sitekeeper's back", a[1], a[0]))
			},
		},
	)
	return parent(cmd)
}
