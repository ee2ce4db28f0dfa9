package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/controllers/placement"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/printer"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// whatIf is what `plan --simulate` prints: each group's fate under the
// faults, with an outage estimate and the steps each node would take.
type whatIf struct {
	Faults []string    `json:"faults"`
	Groups []groupFate `json:"groups"`
	Steps  []nodePlan  `json:"steps,omitempty"`
	Note   string      `json:"note,omitempty"`
}

type groupFate struct {
	placement.Outcome
	// EstimatedOutage is detection (a lost lease is noticed after its
	// TTL) + the take-down budget waited for + the new node's measured
	// bring-up; empty when the group does not move.
	EstimatedOutage string `json:"estimatedOutage,omitempty"`
}

func parseFaults(vals []string) ([]placement.Fault, error) {
	var out []placement.Fault
	for _, v := range vals {
		f, err := placement.ParseFault(v)
		if err != nil {
			return nil, usagef("--simulate %v", err)
		}
		out = append(out, f)
	}
	return out, nil
}

// simulateLive plans the faults against the running cluster: the leader's
// own reading of the store, its own decision function.
func simulateLive(ctx context.Context, s *streams, st *etcdstore.Store, faults []placement.Fault, output string) error {
	sc, err := placement.ReadScenario(ctx, st)
	if err != nil {
		return err
	}
	known, err := st.KnownNodes(ctx)
	if err != nil {
		return err
	}
	ttls := map[string]time.Duration{}
	for n, l := range st.NodeLeases(ctx) {
		ttls[n] = l.TTL
	}
	outs, err := placement.Simulate(sc, faults, time.Now())
	if err != nil {
		return usagef("--simulate %v", err)
	}
	w := whatIf{Groups: fates(outs, faults, known, ttls)}
	// The steps: each node that stays up converges on the new placement
	// from what it has now.
	d, observed, err := desiredAndObserved(ctx, st)
	if err != nil {
		return err
	}
	w.Steps = stepsUnder(d, observed, outs, faults)
	return printWhatIf(s, w, faults, output)
}

// simulateOffline plans the faults for manifests on fresh nodes: every
// node of every placement up, each group where the leader would first
// place it.
func simulateOffline(s *streams, g *graph.Graph, faults []placement.Fault, output string) error {
	live := map[string]bool{}
	for _, grp := range g.Groups {
		for _, n := range grp.Placement.Nodes {
			live[n] = true
		}
	}
	sc := placement.Scenario{Graph: g, Suspended: store.Suspensions{}, Decisions: map[string]store.Decision{}, World: placement.World{Live: live}}
	now := time.Now()
	first, err := placement.Simulate(sc, nil, now)
	if err != nil {
		return err
	}
	for _, o := range first {
		sc.Decisions[o.Group] = store.Decision{Group: o.Group, Active: o.To, Reason: "Placed", Since: now}
	}
	outs, err := placement.Simulate(sc, faults, now)
	if err != nil {
		return usagef("--simulate %v", err)
	}
	w := whatIf{Groups: fates(outs, faults, nil, nil),
		Note: "offline: fresh nodes, no measured take-down budgets or bring-up times (run it against a cluster for those, and for the steps each node would take)"}
	return printWhatIf(s, w, faults, output)
}

func fates(outs []placement.Outcome, faults []placement.Fault, known map[string]store.NodeInfo, ttls map[string]time.Duration) []groupFate {
	lost := lostNodes(faults)
	var out []groupFate
	for _, o := range outs {
		gf := groupFate{Outcome: o}
		if o.Moved() && o.To != "" {
			var parts []string
			total := o.WaitedFor
			if lost[o.From] {
				ttl := ttls[o.From]
				if ttl == 0 {
					ttl = 2 * time.Second
				}
				total += ttl
				parts = append(parts, fmt.Sprintf("lease %s", ttl))
			}
			switch b := known[o.From].TakedownBudget.Duration; {
			case o.WaitedFor > 0:
				parts = append(parts, fmt.Sprintf("take-down budget %s", o.WaitedFor))
			case !lost[o.From] && b > 0:
				// A live node releases first: its take-down takes up to
				// its budget.
				total += b
				parts = append(parts, fmt.Sprintf("take-down up to %s", b))
			}
			if b := known[o.To].BringUp.Duration; b > 0 {
				total += b
				parts = append(parts, fmt.Sprintf("bring-up %s", b.Round(time.Millisecond)))
			} else {
				parts = append(parts, "bring-up not measured yet")
			}
			gf.EstimatedOutage = fmt.Sprintf("%s (%s)", total.Round(time.Millisecond), strings.Join(parts, " + "))
		}
		out = append(out, gf)
	}
	return out
}

// lostNodes are the nodes the faults take away (their lease expires).
func lostNodes(faults []placement.Fault) map[string]bool {
	out := map[string]bool{}
	for _, f := range faults {
		if f.Kind == "fail-node" || f.Kind == "partition-node" {
			out[f.Target] = true
		}
	}
	return out
}

// stepsUnder is, for each node the faults leave up, the steps it would
// take for the groups that move.
func stepsUnder(d *plan.Desired, observed map[string]plan.Observed, outs []placement.Outcome, faults []placement.Fault) []nodePlan {
	down := lostNodes(faults)
	dd := *d
	dd.Active = maps.Clone(d.Active)
	dd.Moving = map[string]string{}
	moved := map[string]bool{}
	for _, o := range outs {
		if o.Moved() {
			dd.Active[o.Group] = o.To
			moved[o.Group] = true
		}
	}
	var plans []nodePlan
	for _, n := range slices.Sorted(maps.Keys(observed)) {
		if down[n] {
			continue
		}
		steps := append(plan.Plan{}, plan.ComputeGroups(&dd, observed[n], moved)...)
		plans = append(plans, nodePlan{Node: n, Steps: steps})
	}
	return plans
}

func printWhatIf(s *streams, w whatIf, faults []placement.Fault, output string) error {
	for _, f := range faults {
		w.Faults = append(w.Faults, f.String())
	}
	if printer.Structured(output) {
		return printer.Encode(s.out, output, w)
	}
	fmt.Fprintf(s.out, "What if %s (nothing is changed):\n", strings.Join(w.Faults, " and "))
	tw := printer.NewTable(s.out)
	fmt.Fprintln(tw, "GROUP\tFROM\tTO\tOUTAGE (EST.)\tDECISION")
	for _, g := range w.Groups {
		to, outage := g.To, g.EstimatedOutage
		switch {
		case to == "":
			to = "<none>"
		case !g.Moved():
			to, outage = "(stays)", "-"
		}
		decision := "-"
		if g.Reason != "" {
			decision = g.Reason + ": " + g.Message
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Group, orDash(g.From), to, orDash(outage), decision)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printSteps(s.out, w.Steps)
	if w.Note != "" {
		fmt.Fprintf(s.out, "(%s)\n", w.Note)
	}
	return nil
}

func printSteps(out io.Writer, plans []nodePlan) {
	for _, p := range plans {
		if len(p.Steps) == 0 {
			continue
		}
		fmt.Fprintf(out, "Steps on %s:\n", p.Node)
		for _, st := range p.Steps {
			fmt.Fprintf(out, "  %s\n", st)
		}
	}
}
