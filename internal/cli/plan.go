package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/printer"
)

// localPlan computes, without any cluster, what fresh nodes would do.
func localPlan(g *graph.Graph, node string, actives []string) (plan.Plan, error) {
	active := map[string]string{}
	for _, grp := range g.Groups {
		p := grp.Placement
		switch {
		case p.ActiveNode != "":
			active[grp.Name] = p.ActiveNode
		case len(p.Nodes) > 0:
			active[grp.Name] = p.Nodes[0]
		}
	}
	for _, a := range actives {
		name, n, ok := strings.Cut(a, "=")
		if !ok || name == "" || n == "" {
			return nil, usagef("--active %q: write it as GROUP=NODE", a)
		}
		grp, ok := g.Group(name)
		if !ok {
			return nil, usagef("--active %q: no resource group %q; `sitekeeper validate` lists them", a, name)
		}
		if !slices.ContainsFunc(grp.Placement.Nodes, func(x string) bool { return strings.EqualFold(x, n) }) {
			return nil, usagef("--active %q: %s is not in the placement of group %s (%s)", a, n, name, strings.Join(grp.Placement.Nodes, ", "))
		}
		active[name] = n
	}
	d := &plan.Desired{Graph: g, Active: active}
	if node != "" {
		return plan.Compute(d, plan.Observed{Node: node}), nil
	}
	var nodes []plan.Observed
	seen := map[string]bool{}
	for _, grp := range g.Groups {
		for _, n := range grp.Placement.Nodes {
			if !seen[strings.ToLower(n)] {
				seen[strings.ToLower(n)] = true
				nodes = append(nodes, plan.Observed{Node: n})
			}
		}
	}
	slices.SortFunc(nodes, func(a, b plan.Observed) int { return strings.Compare(a.Node, b.Node) })
	return plan.ComputeCluster(d, nodes), nil
}

// printPlan prints steps: one sentence a line (table), a table with a
// column per field (wide), or a StepList.
func printPlan(s *streams, p plan.Plan, output string) error {
	switch {
	case printer.Structured(output):
		return printer.Encode(s.out, output, printer.List("Step", p))
	case output == "wide":
		return printStepTable(s, p)
	}
	_, err := fmt.Fprint(s.out, p.String())
	return err
}

func printStepTable(s *streams, p plan.Plan) error {
	tw := newStepTable(s.out)
	for _, st := range p {
		stepRow(tw, st)
	}
	return tw.Flush()
}

// newStepTable starts the wide table of steps, a column per field.
func newStepTable(w io.Writer) *tabwriter.Writer {
	tw := printer.NewTable(w)
	fmt.Fprintln(tw, "NODE\tGROUP\tACTION\tTARGET\tDETAIL\tREASON")
	return tw
}

func stepRow(tw io.Writer, st plan.Step) {
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Node, st.Group, st.Action, st.Target, orDash(st.Detail()), st.Reason)
}

func newLocalPlanCmd(s *streams) *cobra.Command {
	var ff fileFlags
	var node, output string
	var actives []string
	cmd := &cobra.Command{
		Use:   "plan -f PATH [--node NAME] [--active GROUP=NODE...] [-o table|wide|yaml|json]",
		Short: "Print the steps fresh nodes would take for a set of manifests",
		Long: `Plan computes, without any cluster, the ordered steps that fresh (empty)
simulated nodes would take to serve the manifests: the same plan value the
agent executes. Each group is active on its placement's activeNode or first
node unless --active says otherwise. Without --node, every node of every
placement is planned, take-downs before bring-ups.`,
		Example: `  sitekeeper plan -f manifests/examples/active-active --node node1
  sitekeeper plan -f manifests/examples/active-active --active WebSite1=node2 -o json`,
		Args: exactArgs(0, "no arguments (give manifests with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(&output); err != nil {
				return err
			}
			_, res, err := ff.load(s)
			if err != nil {
				return err
			}
			if len(res.Errors) > 0 {
				return fmt.Errorf("manifests are invalid:\n%s", res.Errors.Error())
			}
			p, err := localPlan(res.Graph, node, actives)
			if err != nil {
				return err
			}
			return printPlan(s, p, output)
		},
	}
	ff.register(cmd)
	cmd.Flags().StringVar(&node, "node", "", "plan for this node only")
	cmd.Flags().StringArrayVar(&actives, "active", nil, "GROUP=NODE: the node that serves a group (repeatable)")
	outputFlag(cmd, &output, "table: one step a line; wide: a column per field; yaml and json: a StepList")
	return cmd
}
