// Package clusterview reads what the cluster looks like, for people: the
// objects with their status, each group's placement and standbys, each
// node's lease, health and holdings. `get`, `describe`, the dashboard and
// the metrics all show these same rows, so what they say cannot disagree.
package clusterview

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// Reader is what a view reads.
type Reader interface {
	List(ctx context.Context) (store.Snapshot, error)
	Decisions(ctx context.Context) (map[string]store.Decision, error)
	Nodes(ctx context.Context) (map[string]store.NodeInfo, error)
	KnownNodes(ctx context.Context) (map[string]store.NodeInfo, error)
	Reports(ctx context.Context) ([]store.Report, error)
	Suspensions(ctx context.Context) (store.Suspensions, error)
	Observed(ctx context.Context) (map[string]plan.Observed, error)
	Drains(ctx context.Context) (map[string]int, error)
}

// State is everything get, describe, plan and the dashboard show.
type State struct {
	Snap      store.Snapshot
	Graph     *graph.Graph
	Decisions map[string]store.Decision
	Nodes     map[string]store.NodeInfo // nodes holding a lease
	Known     map[string]store.NodeInfo // every node's last record, live or not
	Reports   []store.Report
	Suspended store.Suspensions
	Observed  map[string]plan.Observed
	Drains    map[string]int // nodes being drained
}

// Read reads the whole state.
func Read(ctx context.Context, r Reader) (*State, error) {
	c, err := ReadObjects(ctx, r)
	if err != nil {
		return nil, err
	}
	// The listed objects are already defaulted (the store client
	// defaults what it decodes), so building the graph changes nothing in
	// them: no copy (a copy of 15,000 objects was a third of `get` at
	// 5,000 groups).
	var live []v1alpha1.Object
	for _, o := range c.Snap.Objects {
		if o.Meta().DeletionTimestamp == nil {
			live = append(live, o)
		}
	}
	c.Graph = graph.Of(live)
	if c.Nodes, err = r.Nodes(ctx); err != nil {
		return nil, err
	}
	if c.Known, err = r.KnownNodes(ctx); err != nil {
		return nil, err
	}
	if c.Reports, err = r.Reports(ctx); err != nil {
		return nil, err
	}
	if c.Suspended, err = r.Suspensions(ctx); err != nil {
		return nil, err
	}
	if c.Observed, err = r.Observed(ctx); err != nil {
		return nil, err
	}
	if c.Drains, err = r.Drains(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// ReadObjects reads what a listing of objects needs: the objects with
// their status, and the decisions (for the damaged-key warnings). With
// 5,000 groups, reading reports and what every node holds as well was half
// of `get sites -o json`.
func ReadObjects(ctx context.Context, r Reader) (*State, error) {
	c := &State{}
	var err error
	if c.Snap, err = r.List(ctx); err != nil {
		return nil, err
	}
	if c.Decisions, err = r.Decisions(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Damaged is every key of the state that did not decode.
func (c *State) Damaged() []store.DamagedKey {
	out := slices.Clone(c.Snap.Damaged)
	for _, g := range slices.Sorted(maps.Keys(c.Decisions)) {
		if d := c.Decisions[g]; d.Damaged != "" {
			out = append(out, store.DamagedKey{Key: "placement/" + g, Error: d.Damaged, Revision: d.Revision})
		}
	}
	return out
}

// Find is the object ref names, or nil.
func (c *State) Find(ref v1alpha1.Ref) v1alpha1.Object {
	for _, o := range c.Snap.Objects {
		if v1alpha1.RefOf(o) == ref {
			return o
		}
	}
	return nil
}

// GroupRow is one resource group as people see it.
type GroupRow struct {
	Name       string   `json:"name"`
	Members    []string `json:"members"`
	Nodes      []string `json:"nodes"`
	Switchback string   `json:"switchback"`
	Active     string   `json:"active"`
	Moving     string   `json:"moving,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Coupling   string   `json:"coupling,omitempty"`
	Suspended  bool     `json:"suspended,omitempty"`
	// Standbys are the group's other nodes, each with whether it could
	// take the group over now.
	Standbys []Standby `json:"standbys,omitempty"`
	// Decided is when the placement leader last decided where the group
	// runs; Source is the manifest source that owns the group ("" when
	// applied by hand).
	Decided time.Time `json:"decided,omitzero"`
	Source  string    `json:"source,omitempty"`
	// Healthy says the active node reports the group converged and its
	// sites passing their checks.
	Healthy bool `json:"healthy"`
}

// Standby is one node that could serve a group other than its active one.
type Standby struct {
	Node  string `json:"node"`
	Ready bool   `json:"ready"`
	// Why says what stops it (or "configured, standing by").
	Why string `json:"why"`
}

// GroupRows are the groups, or the one named.
func (c *State) GroupRows(name string) []GroupRow {
	reports := map[[2]string]store.Report{}
	for _, r := range c.Reports {
		reports[[2]string{r.Group, r.Node}] = r
	}
	var rows []GroupRow
	for gi := range c.Graph.Groups {
		gr := &c.Graph.Groups[gi]
		if name != "" && gr.Name != name {
			continue
		}
		d := c.Decisions[gr.Name]
		r := GroupRow{Name: gr.Name, Nodes: gr.Placement.Nodes, Switchback: string(gr.Placement.Switchback), Active: d.Active, Reason: d.Summary(), Coupling: validation.CouplingText(gr), Decided: d.Since}
		if d.Target != "" {
			r.Moving = d.Releasing + " -> " + d.Target
		}
		if d.Damaged != "" {
			r.Reason = "DamagedDecision: the placement leader replaces it"
		}
		for _, m := range gr.Members {
			r.Members = append(r.Members, m.String())
			if c.Suspended.Object(m) {
				r.Suspended = true
			}
			if o := c.Graph.Object(m); o != nil && r.Source == "" {
				r.Source = o.Meta().Annotations[v1alpha1.AnnotationSource]
			}
		}
		if rep, ok := reports[[2]string{gr.Name, d.Active}]; ok && d.Active != "" {
			r.Healthy = rep.Active && rep.Healthy && rep.Phase == store.PhaseConverged
		}
		if c.Reports != nil || c.Nodes != nil {
			for _, n := range gr.Placement.Nodes {
				if strings.EqualFold(n, d.Active) {
					continue
				}
				r.Standbys = append(r.Standbys, c.standby(gr.Name, n, reports))
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// standby says whether node could take group over now, from what it
// publishes: its lease, its safety, and its own report on the group.
func (c *State) standby(group, node string, reports map[[2]string]store.Report) Standby {
	info, live := c.Nodes[node]
	rep, reported := reports[[2]string{group, node}]
	ready, why := store.StandbyState{Live: live, Suspended: c.Suspended.Node(node), Draining: c.Drains[node] > 0, Unsafe: info.Unsafe, Report: rep, Reported: reported}.Readiness()
	return Standby{Node: node, Ready: ready, Why: why}
}

// NodeRow is one node as people see it.
type NodeRow struct {
	Name      string   `json:"name"`
	Status    string   `json:"status"`
	Active    []string `json:"activeGroups"`
	Suspended bool     `json:"suspended,omitempty"`
	// Draining says its groups are being moved off (sitekeeper drain).
	Draining bool `json:"draining,omitempty"`
	// LeaseRenewedAgo is how long ago the node last renewed its lease
	// (whole seconds, as etcd counts them); empty when it holds none.
	LeaseRenewedAgo string `json:"leaseRenewedAgo,omitempty"`
	// Health is Healthy, or the groups whose sites fail their checks here,
	// or Unsafe with why (a take-down step hung).
	Health string `json:"health"`
	// TakedownBudget is how long the node may need to take down what it
	// holds once fenced: a group leaves it that long after its lease
	// expired. Last known for a node without a lease.
	TakedownBudget string `json:"takedownBudget,omitempty"`
	// Member is the node's etcd membership: leader, voter, learner,
	// unreachable, or "-" when it runs no member.
	Member string `json:"etcdMember"`
	// What the node last reported it has (sites, addresses, volumes).
	Observed *plan.Observed `json:"observed,omitempty"`
	// ObservedStale says Observed is what a node without a lease last
	// reported: last known, not known to be true now.
	ObservedStale bool `json:"observedStale,omitempty"`
}

// NodeRows are the nodes (those with a record and those placements name),
// or the one named. leases is how long ago each node renewed its lease;
// members each node's etcd membership.
func (c *State) NodeRows(name string, leases map[string]time.Duration, members map[string]string) []NodeRow {
	all := map[string]bool{}
	for n := range c.Nodes {
		all[n] = true
	}
	for _, gr := range c.Graph.Groups {
		for _, n := range gr.Placement.Nodes {
			all[n] = true
		}
	}
	var rows []NodeRow
	for _, n := range slices.Sorted(maps.Keys(all)) {
		if name != "" && n != name {
			continue
		}
		member := members[n]
		if member == "" {
			member = "-"
		}
		r := NodeRow{Name: n, Status: "NotReady", Suspended: c.Suspended.Node(n), Draining: c.Drains[n] > 0, Active: []string{}, Health: "Healthy", Member: member}
		if _, ok := c.Nodes[n]; ok {
			r.Status = "Ready"
		}
		if ago, ok := leases[n]; ok {
			r.LeaseRenewedAgo = ago.String()
		}
		var sick, failing []string
		for _, rep := range c.Reports {
			switch {
			case rep.Node != n:
			case rep.Phase == store.PhaseFailed || rep.Phase == store.PhaseStalled:
				failing = append(failing, rep.Group)
			case !rep.Healthy:
				sick = append(sick, rep.Group)
			}
		}
		if len(sick) > 0 {
			sort.Strings(sick)
			r.Health = "Unhealthy: " + strings.Join(sick, ",")
		}
		if len(failing) > 0 {
			// A step keeps failing there (an address in use, a disk not
			// attached): the node cannot do what it is asked.
			sort.Strings(failing)
			r.Health = "StepFailed: " + strings.Join(failing, ",")
		}
		if info, ok := c.Nodes[n]; ok && info.Unsafe != "" {
			r.Health = "Unsafe: " + info.Unsafe
		}
		if info, ok := c.Known[n]; ok && info.TakedownBudget.Duration > 0 {
			r.TakedownBudget = info.TakedownBudget.String()
		}
		for g, d := range c.Decisions {
			if d.Active == n {
				r.Active = append(r.Active, g)
			}
		}
		sort.Strings(r.Active)
		if o, ok := c.Observed[n]; ok {
			r.Observed = &o
		}
		if r.Status != "Ready" {
			// Its lease is gone: what it reported may no longer be true
			// (another node may hold its addresses now).
			r.Health, r.ObservedStale = "Unknown", r.Observed != nil
		}
		rows = append(rows, r)
	}
	return rows
}
