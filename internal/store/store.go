// Package store holds what the cluster shares: desired objects, their
// status, node leases, the agents' reports, placement decisions, events and
// maintenance flags. The only implementation is store/etcd: leases,
// transactions and watches are etcd's.
//
// Key layout (every key lives under Prefix):
//
//	objects/<Kind>/<name>          desired object (metadata + spec), JSON;
//	                               resourceVersion = the key's mod revision
//	status/<Kind>/<name>           status of the object, written by the leader
//	nodes/<node>                   NodeInfo, attached to the node's lease
//	reports/<group>/<node>         the node agent's Report on a group
//	placement/<group>              the leader's Decision: who serves the group
//	deleted/<Kind>/<name>/<node>   a node's confirmation that a deleted object
//	                               is out of service there
//	suspend/<Kind>/<name>          maintenance flag (Kind "Node" for a node)
//	events/<time>-<seq>            Event, kept for EventRetention
//	sim/<node>                     simulator commands (power, stop a site)
//	sources/<name>                 a manifest folder's applied revision and
//	                               inventory (GitOps)
//	sourcenodes/<name>/<node>      the revision each node's checkout has
//	observed/<node>                what a node last reported it has
//	election/                      etcd election of the placement leader
package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
)

// Prefix is the root of every Sitekeeper key.
const Prefix = "/sitekeeper/"

// EventRetention is how long events are kept.
const EventRetention = time.Hour

// Sentinel errors.
var (
	// ErrNotFound: no such object.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the object changed since it was read.
	ErrConflict = errors.New("conflict: the object was changed by someone else; read it again and retry")
)

// Keys.
func ObjectKey(r v1alpha1.Ref) string     { return Prefix + "objects/" + r.Kind + "/" + r.Name }
func StatusKey(r v1alpha1.Ref) string     { return Prefix + "status/" + r.Kind + "/" + r.Name }
func NodeKey(node string) string          { return Prefix + "nodes/" + node }
func ReportKey(group, node string) string { return Prefix + "reports/" + group + "/" + node }
func DecisionKey(group string) string     { return Prefix + "placement/" + group }
func DeletedKey(r v1alpha1.Ref, node string) string {
	return Prefix + "deleted/" + r.Kind + "/" + r.Name + "/" + node
}
func SuspendKey(kind, name string) string { return Prefix + "suspend/" + kind + "/" + name }
func SimKey(node string) string           { return Prefix + "sim/" + node }
func EventKey(t time.Time, seq uint64) string {
	return fmt.Sprintf("%sevents/%020d-%08d", Prefix, t.UnixNano(), seq)
}

func SourceKey(name string) string           { return Prefix + "sources/" + name }
func SourceNodeKey(name, node string) string { return Prefix + "sourcenodes/" + name + "/" + node }

// ElectionPrefix is the etcd election of the placement leader.
const ElectionPrefix = Prefix + "election/"

// NodeInfo is what an agent publishes under its lease.
type NodeInfo struct {
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Version string    `json:"version,omitempty"`
}

// Decision is the leader's choice of the node serving a group.
type Decision struct {
	Group string `json:"group"`
	// Members are "Kind/name" of the group's objects, to carry a decision
	// over when a group is renamed (its first site renamed).
	Members []string `json:"members"`
	// Active is the node that serves the group now ("" while moving or
	// when no node can).
	Active string `json:"active"`
	// Target is the node the group moves to once Releasing confirmed.
	Target string `json:"target,omitempty"`
	// Releasing is the node that must confirm its take-down first.
	Releasing string `json:"releasing,omitempty"`
	// Reason is why the group is where it is: one of the CamelCase
	// Reason constants of api/v1alpha1 (FailedOver, SwitchedBack, ...).
	Reason string `json:"reason"`
	// Message says it for a person ("node1 lease expired; node2 serves the
	// group now").
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
	// Requested is the placement.activeNode already honoured, with the
	// generation that asked for it.
	Requested           string `json:"requested,omitempty"`
	RequestedGeneration int64  `json:"requestedGeneration,omitempty"`
	// Failures lists, per node, when the group failed there (lease expired
	// or unhealthy after local recovery), for the anti-flapping threshold.
	Failures map[string][]time.Time `json:"failures,omitempty"`
	// Revision is the key's mod revision, for compare-and-swap.
	Revision int64 `json:"-"`
}

// Summary is the decision's reason and message in one line, as `get
// groups` shows it ("FailedOver: node1 lease expired; ...").
func (d Decision) Summary() string {
	if d.Message == "" {
		return d.Reason
	}
	return d.Reason + ": " + d.Message
}

// Event is one thing that happened, for `sitekeeper events`.
type Event struct {
	Time time.Time `json:"time"`
	// Type is Normal or Warning.
	Type string `json:"type"`
	// Reason is a CamelCase word: FailedOver, SwitchedBack, Step, ...
	Reason string `json:"reason"`
	// Object is "Kind/name" or "group/<name>" or "node/<name>".
	Object  string `json:"object"`
	Node    string `json:"node,omitempty"`
	Message string `json:"message"`
}

// SimCommand is a fault injected into a simulated node.
type SimCommand struct {
	// Powered is false after fail-node, true after heal-node.
	Powered bool `json:"powered"`
	// StopSite names a site to stop behind Sitekeeper's back.
	StopSite string `json:"stopSite,omitempty"`
	// Seq makes repeated commands distinct.
	Seq int64 `json:"seq"`
}

// Source is a manifest folder applied as one change set (GitOps).
type Source struct {
	Name string `json:"name"`
	// Path is the folder as the applying node sees it.
	Path string `json:"path"`
	// Revision is the revision in force ("git:<commit>" or "sha256:<hash>").
	Revision  string    `json:"revision,omitempty"`
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	AppliedBy string    `json:"appliedBy,omitempty"`
	// Inventory lists the objects this source owns, with the outcome of the
	// last apply and the file each came from.
	Inventory []InventoryEntry `json:"inventory,omitempty"`
	// LastAttempt is the latest change set seen, applied or refused.
	LastAttempt Attempt `json:"lastAttempt"`
	Prune       bool    `json:"prune"`
}

// InventoryEntry is one object owned by a source.
type InventoryEntry struct {
	Ref     string `json:"ref"`
	File    string `json:"file,omitempty"`
	Outcome string `json:"outcome"`
}

// Attempt is one change set's outcome.
type Attempt struct {
	Revision string    `json:"revision"`
	Time     time.Time `json:"time"`
	// Error is empty when the change set was applied; otherwise every
	// problem, one per line (file:line: object: field: message).
	Error string `json:"error,omitempty"`
}

// SourceNode is the revision one node's checkout holds.
type SourceNode struct {
	Node     string    `json:"node"`
	Revision string    `json:"revision"`
	Seen     time.Time `json:"seen"`
}

// Phase summarises a node's view of a group.
type Phase string

// Phases.
const (
	PhaseConverged   Phase = "Converged"
	PhaseProgressing Phase = "Progressing"
	PhaseFailed      Phase = "Failed"  // a step failed; retried with backoff
	PhaseStalled     Phase = "Stalled" // a step failed in a way that needs a human
)

// Report is what a node says about one group after a reconcile.
type Report struct {
	Node   string `json:"node"`
	Group  string `json:"group"`
	Active bool   `json:"active"`
	Phase  Phase  `json:"phase"`
	// Healthy is false once the group's sites failed their checks after
	// local recovery: the signal for the placement controller to fail over.
	Healthy bool   `json:"healthy"`
	Message string `json:"message,omitempty"`
	// Generations maps "Kind/name" to the generation converged here.
	Generations map[string]int64 `json:"generations,omitempty"`
	// Released is true when the node holds nothing of the group in service
	// (sites stopped, addresses removed, volumes offline).
	Released bool `json:"released"`
}

