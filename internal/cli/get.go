package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/clusterview"
	"github.com/sitekeeper/sitekeeper/internal/ops"
	"github.com/sitekeeper/sitekeeper/internal/printer"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

func age(t *time.Time) string {
	if t == nil {
		return "-"
	}
	d := time.Since(*t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func readyOf(st v1alpha1.Status) string {
	if c := v1alpha1.FindCondition(st.Conditions, v1alpha1.ConditionReady); c != nil {
		if c.Status == v1alpha1.ConditionTrue {
			return "True"
		}
		return string(c.Status) + " (" + c.Reason + ")"
	}
	return "Unknown"
}

func newGetCmd(s *streams, g *globalFlags) *cobra.Command {
	var output string
	var watch bool
	cmd := &cobra.Command{
		Use:   "get KIND [NAME] [-o table|wide|yaml|json] [-w]",
		Short: "List objects, groups or nodes with their state",
		Long: `Get lists iissites (site), ipresources (ip), volumeresources (vol), groups or
nodes. Objects show their active node, readiness and age.`,
		Example: `  sitekeeper get sites
  sitekeeper get groups -w
  sitekeeper get site WebSite1 -o yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("get takes KIND [NAME]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(&output); err != nil {
				return err
			}
			ctx := cmd.Context()
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				if !watch {
					return show(ctx, s, st, args[0], name, output)
				}
				return watchGet(ctx, s, st, func() error { return show(ctx, s, st, args[0], name, output) })
			})
		},
	}
	outputFlag(cmd, &output, "")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print again whenever the state changes, until interrupted")
	return cmd
}

// watchGet runs show now and again after each change of the state it
// reads (changes within a quarter second are shown once), each time under
// a line with the time, until ctx ends.
func watchGet(ctx context.Context, s *streams, st *etcdstore.Store, show func() error) error {
	changes := st.Changes(ctx, store.FamilyObjects, store.FamilyStatus, store.FamilyDecisions, store.FamilyNodes,
		store.FamilyReports, store.FamilySuspended, store.FamilyObserved, store.FamilySources)
	for {
		fmt.Fprintf(s.out, "--- %s\n", time.Now().Format("15:04:05.000"))
		if err := show(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
		for drained := false; !drained; {
			select {
			case <-changes:
			default:
				drained = true
			}
		}
	}
}

// show prints one get.
func show(ctx context.Context, s *streams, st *etcdstore.Store, kindArg, name, output string) error {
	read := readState
	if kind, object := v1alpha1.ParseKind(kindArg); object && output != "wide" {
		// No group, node or report column to fill: that kind's objects
		// and status are all it needs.
		read = func(ctx context.Context, st *etcdstore.Store) (*clusterState, error) {
			snap, err := st.ListKind(ctx, kind)
			return &clusterState{Snap: snap}, err
		}
	}
	cs, err := read(ctx, st)
	if err != nil {
		return err
	}
	warnDamaged(s.err, cs)
	switch strings.ToLower(kindArg) {
	case "source", "sources", "src":
		return getSources(ctx, s, st, name, output)
	case "group", "groups", "grp":
		return getGroups(s, cs, name, output)
	case "node", "nodes", "no":
		return getNodes(ctx, s, st, cs, name, output)
	}
	kind, ok := v1alpha1.ParseKind(kindArg)
	if !ok {
		return usagef("unknown kind %q; use sites, ips, vols, groups or nodes", kindArg)
	}
	var objs []v1alpha1.Object
	for _, o := range cs.Snap.Objects {
		if o.GetKind() == kind && (name == "" || o.Meta().Name == name) {
			objs = append(objs, o)
		}
	}
	if name != "" && len(objs) == 0 {
		return fmt.Errorf("%s %q: %w", kind, name, store.ErrNotFound)
	}
	if printer.Structured(output) {
		return printer.Items(s.out, output, kind, objs, name != "")
	}
	tw := printer.NewTable(s.out)
	if output == "wide" {
		fmt.Fprintln(tw, "NAME\tACTIVE\tREADY\tAGE\tGROUP\tNODES\tGENERATION\tOBSERVED")
	} else {
		fmt.Fprintln(tw, "NAME\tACTIVE\tREADY\tAGE")
	}
	for _, o := range objs {
		st := o.StatusRef()
		active := st.ActiveNode
		if active == "" {
			active = "<none>"
		}
		state := readyOf(*st)
		if o.Meta().DeletionTimestamp != nil {
			state = "Deleting"
		}
		if output == "wide" {
			grp, nodes := "-", "-"
			if gr, ok := cs.Graph.GroupOf(v1alpha1.RefOf(o)); ok {
				grp, nodes = gr.Name, strings.Join(gr.Placement.Nodes, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", o.Meta().Name, active, state, age(o.Meta().CreationTimestamp), grp, nodes, o.Meta().Generation, st.ObservedGeneration)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Meta().Name, active, state, age(o.Meta().CreationTimestamp))
		}
	}
	return tw.Flush()
}

func getGroups(s *streams, cs *clusterState, name, output string) error {
	rows := cs.GroupRows(name)
	if name != "" && len(rows) == 0 {
		return fmt.Errorf("group %q: %w", name, store.ErrNotFound)
	}
	if printer.Structured(output) {
		return printer.Items(s.out, output, "Group", rows, name != "")
	}
	tw := printer.NewTable(s.out)
	fmt.Fprintln(tw, "NAME\tACTIVE\tSTANDBY\tNODES\tSWITCHBACK\tMEMBERS\tREASON")
	for _, r := range rows {
		var ready []string
		for _, sb := range r.Standbys {
			if sb.Ready {
				ready = append(ready, sb.Node)
			}
		}
		active := r.Active
		switch {
		case r.Moving != "":
			active = "moving " + r.Moving
		case active == "":
			active = "<none>"
		}
		if r.Suspended {
			active += " (suspended)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Name, active, orDash(strings.Join(ready, ",")), strings.Join(r.Nodes, ","), r.Switchback, len(r.Members), r.Reason)
	}
	return tw.Flush()
}

func getNodes(ctx context.Context, s *streams, st *etcdstore.Store, cs *clusterState, name, output string) error {
	members := map[string]string{}
	if ms, err := st.Members(ctx); err == nil {
		for _, m := range ms {
			members[m.Name] = m.Role()
		}
	}
	rows := cs.NodeRows(name, st.LeaseAges(ctx), members)
	if name != "" && len(rows) == 0 {
		return fmt.Errorf("node %q: %w", name, store.ErrNotFound)
	}
	if printer.Structured(output) {
		return printer.Items(s.out, output, "Node", rows, name != "")
	}
	tw := printer.NewTable(s.out)
	fmt.Fprintln(tw, "NAME\tSTATUS\tLEASE RENEWED\tTAKEDOWN\tHEALTH\tETCD MEMBER\tACTIVE GROUPS\tSUSPENDED\tSITES STARTED\tADDRESSES")
	for _, r := range rows {
		started, addrs := "-", "-"
		if o := r.Observed; o != nil {
			var up, ips []string
			for _, st := range o.Sites {
				if st.State == "Started" {
					up = append(up, st.Name)
				}
			}
			for _, a := range o.Addresses {
				ips = append(ips, a.CIDR)
			}
			started, addrs = orDash(strings.Join(up, ",")), orDash(strings.Join(ips, ","))
			if r.ObservedStale {
				started, addrs = "last known: "+started, "last known: "+addrs
			}
		}
		renewed := "-"
		if r.LeaseRenewedAgo != "" {
			renewed = r.LeaseRenewedAgo + " ago"
		}
		status := r.Status
		if r.Draining {
			status += ",Draining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\n", r.Name, status, renewed, orDash(r.TakedownBudget), r.Health, r.Member, orDash(strings.Join(r.Active, ",")), r.Suspended, started, addrs)
	}
	return tw.Flush()
}

func newDescribeCmd(s *streams, g *globalFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "describe KIND NAME (KIND: site, ip, vol, group, node, source) [-o table|wide|yaml|json]",
		Short: "Show an object's spec, group and coupling, per-node state, conditions and recent events",
		Example: `  sitekeeper describe site WebSite1
  sitekeeper describe group WebSite1 -o json`,
		Args: exactArgs(2, "KIND NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(&output); err != nil {
				return err
			}
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				cs, err := readState(ctx, st)
				if err != nil {
					return err
				}
				warnDamaged(s.err, cs)
				if strings.HasPrefix(strings.ToLower(args[0]), "source") {
					return describeSource(ctx, s, st, args[1], output)
				}
				if isGroupKind(args[0]) {
					ref, err := ops.GroupMemberIn(cs.Graph, args[1])
					if err != nil {
						return err
					}
					grp, _ := cs.Graph.GroupOf(ref)
					rows := cs.GroupRows(grp.Name)
					if len(rows) == 0 {
						return fmt.Errorf("group %q: %w", args[1], store.ErrNotFound)
					}
					return printer.Encode(s.out, keyValues(output), rows[0])
				}
				if k := strings.ToLower(args[0]); k == "node" || k == "nodes" || k == "no" {
					n, err := resolveNode(ctx, st, args[1])
					if err != nil {
						return err
					}
					return getNodes(ctx, s, st, cs, n, keyValues(output))
				}
				kind, ok := v1alpha1.ParseKind(args[0])
				if !ok {
					return usagef("unknown kind %q; use site, ip, vol or group", args[0])
				}
				ref, err := ops.ResolveIn(cs.Snap.Objects, v1alpha1.Ref{Kind: kind, Name: args[1]})
				if err != nil {
					return err
				}
				o := cs.Find(ref)
				if o == nil {
					return fmt.Errorf("%s: %w", ref, store.ErrNotFound)
				}
				events, err := recentEvents(ctx, st, cs, ref)
				if err != nil {
					return err
				}
				if printer.Structured(output) {
					d := objectDescription{APIVersion: v1alpha1.APIVersion, Kind: "Description", Object: o, Events: events}
					if gr, ok := cs.Graph.GroupOf(ref); ok {
						if rows := cs.GroupRows(gr.Name); len(rows) > 0 {
							d.Group = &rows[0]
						}
					}
					if d.Events == nil {
						d.Events = []store.Event{}
					}
					return printer.Encode(s.out, output, d)
				}
				m := o.Meta()
				w := s.out
				fmt.Fprintf(w, "Name:         %s\nKind:         %s\nGeneration:   %d (observed %d)\nCreated:      %s ago\n", m.Name, kind, m.Generation, o.StatusRef().ObservedGeneration, age(m.CreationTimestamp))
				if m.DeletionTimestamp != nil {
					fmt.Fprintf(w, "Deleting:     since %s\n", m.DeletionTimestamp.Format(time.RFC3339))
				}
				spec, _ := yaml.Marshal(map[string]any{"spec": specOf(o)})
				fmt.Fprintf(w, "%s", spec)
				if gr, ok := cs.Graph.GroupOf(ref); ok {
					d := cs.Decisions[gr.Name]
					members := make([]string, len(gr.Members))
					for i, mm := range gr.Members {
						members[i] = mm.String()
					}
					fmt.Fprintf(w, "Group:        %s\n  Members:    %s\n  Nodes:      %s (switchback %s)\n", gr.Name, strings.Join(members, ", "), strings.Join(gr.Placement.Nodes, " > "), gr.Placement.Switchback)
					if txt := validation.CouplingText(gr); txt != "" {
						fmt.Fprintf(w, "  Coupling:   %s; they always move together\n", txt)
					}
					fmt.Fprintf(w, "  Decision:   %s\n", d.Summary())
					if rows := cs.GroupRows(gr.Name); len(rows) > 0 {
						for _, sb := range rows[0].Standbys {
							state := "not ready: " + sb.Why
							if sb.Ready {
								state = "ready"
							}
							fmt.Fprintf(w, "  Standby:    %s %s\n", sb.Node, state)
						}
					}
					if len(d.Failures) > 0 {
						fmt.Fprintf(w, "  Failures:   ")
						for _, n := range slices.Sorted(maps.Keys(d.Failures)) {
							fmt.Fprintf(w, "%s=%d ", n, len(d.Failures[n]))
						}
						fmt.Fprintln(w, "(within the failure window; `sitekeeper clear-failures` resets)")
					}
				}
				stt := o.StatusRef()
				fmt.Fprintf(w, "Active node:  %s\nNodes:\n", orDash(stt.ActiveNode))
				for _, n := range stt.Nodes {
					fmt.Fprintf(w, "  %-12s %-12s %s\n", n.Node, n.State, n.Message)
				}
				fmt.Fprintf(w, "Conditions:\n")
				tw := printer.NewTable(w)
				fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
				for _, c := range stt.Conditions {
					t := c.LastTransitionTime
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, age(&t), c.Message)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(w, "Events:\n")
				for _, e := range events {
					fmt.Fprintf(w, "  %s  %-7s  %-12s  %s\n", e.Time.Local().Format("15:04:05"), e.Type, e.Reason, e.Message)
				}
				return nil
			})
		},
	}
	outputFlag(cmd, &output, "table and wide: the description; yaml and json: the object with its group and events")
	return cmd
}

// objectDescription is describe's -o json and -o yaml of an object: the
// object with its status, its group as `get groups` shows it, and its
// recent events.
type objectDescription struct {
	APIVersion string                `json:"apiVersion"`
	Kind       string                `json:"kind"`
	Object     v1alpha1.Object       `json:"object"`
	Group      *clusterview.GroupRow `json:"group,omitempty"`
	Events     []store.Event         `json:"events"`
}

// recentEvents returns the last ten events of the object and of its group.
func recentEvents(ctx context.Context, st *etcdstore.Store, cs *clusterState, ref v1alpha1.Ref) ([]store.Event, error) {
	events, _, err := st.Events(ctx)
	if err != nil {
		return nil, err
	}
	grpName := ""
	if gr, ok := cs.Graph.GroupOf(ref); ok {
		grpName = "group/" + gr.Name
	}
	var mine []store.Event
	for _, e := range events {
		if e.Object == ref.String() || e.Object == grpName {
			mine = append(mine, e)
		}
	}
	if len(mine) > 10 {
		mine = mine[len(mine)-10:]
	}
	return mine, nil
}

// keyValues is how describe prints a group or a node: yaml reads as a
// description, so table and wide print it too.
func keyValues(output string) string {
	if output == "json" {
		return "json"
	}
	return "yaml"
}

func specOf(o v1alpha1.Object) any {
	switch t := o.(type) {
	case *v1alpha1.IISSite:
		return t.Spec
	case *v1alpha1.IPResource:
		return t.Spec
	case *v1alpha1.VolumeResource:
		return t.Spec
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type sourceRow struct {
	store.Source
	Ready bool `json:"ready"`
	// Status is what the applied revision does on the nodes: Refused (the
	// last change set was not applied), Applied (its objects report no
	// readiness yet), Progressing (not all Ready yet, within the
	// source's timeout of the apply), Healthy (all Ready: the only
	// Ready source) or Degraded (some still not Ready after it).
	Status   string             `json:"status"`
	NotReady []string           `json:"notReady,omitempty"`
	Message  string             `json:"message"`
	Nodes    []store.SourceNode `json:"nodes,omitempty"`
}

// health sets r's status from its inventory's Ready conditions: success
// means serving, not only applied. timeout is the source's (a GitSource's
// spec.timeout; 5 minutes for a folder).
func (r *sourceRow) health(statuses map[v1alpha1.Ref]v1alpha1.Status, now time.Time, timeout time.Duration) {
	r.Status, r.NotReady = r.Source.Health(statuses, now, timeout)
	r.Ready = r.Status == store.SourceHealthy
}

func readSources(ctx context.Context, st *etcdstore.Store, name string) ([]sourceRow, error) {
	srcs, err := st.Sources(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := st.SourceNodes(ctx)
	if err != nil {
		return nil, err
	}
	statuses, err := st.Statuses(ctx)
	if err != nil {
		return nil, err
	}
	specs, err := st.GitSources(ctx)
	if err != nil {
		return nil, err
	}
	var rows []sourceRow
	for _, k := range slices.Sorted(maps.Keys(srcs)) {
		src := srcs[k]
		if name != "" && src.Name != name {
			continue
		}
		r := sourceRow{Source: src}
		timeout := store.DefaultSourceTimeout
		if gs, ok := specs[src.Name]; ok && gs.Spec.Timeout.Duration > 0 {
			timeout = gs.Spec.Timeout.Duration
		}
		r.health(statuses, time.Now(), timeout)
		switch {
		case src.LastAttempt.Error != "":
			r.Message = fmt.Sprintf("revision %s refused; %s stays in force: %s", src.LastAttempt.Revision, orDash(src.Revision), strings.SplitN(src.LastAttempt.Error, "\n", 2)[0])
		case len(r.NotReady) > 0:
			shown, more := r.NotReady, ""
			if len(shown) > 5 {
				shown, more = shown[:5], fmt.Sprintf(" and %d more", len(r.NotReady)-5)
			}
			r.Message = fmt.Sprintf("applied %s; not Ready: %s%s", src.Revision, strings.Join(shown, ", "), more)
		default:
			r.Message = fmt.Sprintf("applied %s", src.Revision)
		}
		var behind []string
		sns := nodes[src.Name]
		sort.Slice(sns, func(i, j int) bool { return sns[i].Node < sns[j].Node })
		for _, n := range sns {
			r.Nodes = append(r.Nodes, n)
			if n.Revision != src.Revision && n.Revision != src.LastAttempt.Revision {
				behind = append(behind, fmt.Sprintf("%s has %s", n.Node, n.Revision))
			}
		}
		if len(behind) > 0 {
			r.Message += "; checkout differs: " + strings.Join(behind, ", ")
		}
		if src.Git != nil && src.Git.FetchError != "" {
			// What was applied stays in force, but the source no longer
			// follows its repository: not Ready.
			r.Ready = false
			r.Message = fmt.Sprintf("fetch failed: %s; %s", firstLineOf(src.Git.FetchError), r.Message)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func getSources(ctx context.Context, s *streams, st *etcdstore.Store, name, output string) error {
	rows, err := readSources(ctx, st, name)
	if err != nil {
		return err
	}
	if name != "" && len(rows) == 0 {
		return fmt.Errorf("source %q: %w", name, store.ErrNotFound)
	}
	if printer.Structured(output) {
		return printer.Items(s.out, output, "Source", rows, name != "")
	}
	tw := printer.NewTable(s.out)
	fmt.Fprintln(tw, "NAME\tREADY\tSTATUS\tREVISION\tOBJECTS\tAGE\tMESSAGE")
	for _, r := range rows {
		t := r.AppliedAt
		fmt.Fprintf(tw, "%s\t%t\t%s\t%s\t%d\t%s\t%s\n", r.Name, r.Ready, r.Status, shortRev(r.Revision), len(r.Inventory), age(&t), r.Message)
	}
	return tw.Flush()
}

func shortRev(r string) string {
	if k, id, ok := strings.Cut(r, ":"); ok && len(id) > 12 {
		dirty := ""
		if _, mark, found := strings.Cut(id, "-dirty"); found {
			dirty = "-dirty" + mark // with the hash of what was loaded
		}
		return k + ":" + id[:12] + dirty
	}
	return orDash(r)
}

func describeSource(ctx context.Context, s *streams, st *etcdstore.Store, name, output string) error {
	rows, err := readSources(ctx, st, name)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("source %q: %w", name, store.ErrNotFound)
	}
	r := rows[0]
	if printer.Structured(output) {
		return printer.Encode(s.out, output, r)
	}
	w := s.out
	where := "Folder:     "
	if r.Git != nil {
		where = "Repository: "
	}
	fmt.Fprintf(w, "Name:        %s\n%s %s\nRevision:    %s (applied %s by %s)\nPrune:       %t\n", r.Name, where, r.Path, orDash(r.Revision), r.AppliedAt.Local().Format(time.RFC3339), orDash(r.AppliedBy), r.Prune)
	if g := r.Git; g != nil {
		fmt.Fprintf(w, "Ref:         %s, resolved to %s\n", g.Ref, orDash(g.Resolved))
		if g.FetchError != "" {
			fmt.Fprintf(w, "Fetch:       failed: %s\n", g.FetchError)
		}
		fmt.Fprintf(w, "History:\n")
		for _, a := range g.History {
			outcome := "applied"
			if a.Error != "" {
				outcome = "refused: " + firstLineOf(a.Error)
			}
			fmt.Fprintf(w, "  %s  %s  %s\n", a.Time.Local().Format(time.RFC3339), shortRev(a.Revision), outcome)
		}
	}
	fmt.Fprintf(w, "Last change: %s at %s\n", r.LastAttempt.Revision, r.LastAttempt.Time.Local().Format(time.RFC3339))
	if r.LastAttempt.Error != "" {
		fmt.Fprintf(w, "Refused:     nothing of this change was applied; fix these and save:\n")
		for _, l := range strings.Split(r.LastAttempt.Error, "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	fmt.Fprintf(w, "Nodes:\n")
	for _, n := range r.Nodes {
		mark := ""
		if n.Revision != r.Revision {
			mark = "  (differs from the applied revision)"
		}
		fmt.Fprintf(w, "  %-10s %s%s\n", n.Node, n.Revision, mark)
	}
	fmt.Fprintf(w, "Inventory:\n")
	for _, e := range r.Inventory {
		fmt.Fprintf(w, "  %-40s %-11s %s\n", e.Ref, e.Outcome, e.File)
	}
	return nil
}
