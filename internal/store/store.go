// Package store holds what the cluster shares: desired objects, their
// status, node leases, the agents' reports, placement decisions, events and
// maintenance flags. The only implementation is store/etcdstore: leases,
// transactions and watches are etcd's.
//
// The key layout is package etcdstore's business (its file of keys):
// no other package builds a key.
package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/diag"
)

// EventRetention is how long events are kept.
const EventRetention = time.Hour

// Sentinel errors.
var (
	// ErrNotFound: no such object.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the object changed since it was read.
	ErrConflict = errors.New("conflict: the object was changed by someone else; read it again and retry")
	// ErrLeaseExpired: a node's lease is gone (it expired or was revoked);
	// the node must register again.
	ErrLeaseExpired = errors.New("lease expired")
	// ErrDamaged: the stored value does not decode.
	ErrDamaged = errors.New("damaged")
	// ErrForbidden: the client's role may not make this change (an
	// operator changing an object).
	ErrForbidden = errors.New("forbidden")
)

// Family is one kind of stored record, for Changes.
type Family string

// Families.
const (
	FamilyObjects   Family = "objects/"
	FamilyStatus    Family = "status/"
	FamilyNodes     Family = "nodes/"
	FamilyReports   Family = "reports/"
	FamilyDecisions Family = "placement/"
	FamilyDeleted   Family = "deleted/"
	FamilySuspended Family = "suspend/"
	FamilySim       Family = "sim/"
	FamilySources   Family = "sources/"
	// FamilyGitSources holds GitSource specs; their status is in the
	// source's record under FamilySources.
	FamilyGitSources Family = "gitsources/"
	FamilyObserved   Family = "observed/"
	// FamilyDrains holds the nodes being drained: their groups move off,
	// at most so many at a time, and nothing new is placed there.
	FamilyDrains Family = "drain/"
	// FamilyRequests holds what an operator asks of the placement leader
	// (a switchover), which changes the objects on their behalf.
	FamilyRequests Family = "requests/"
)

// SwitchoverRequest is an operator's switchover, carried out by the
// placement leader: operators may not change objects themselves.
type SwitchoverRequest struct {
	Group string `json:"group"`
	// Member is the object the operator named ("IISSite/web1").
	Member string    `json:"member"`
	To     string    `json:"to"`
	Force  bool      `json:"force,omitempty"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at"`
}

var (
	// AgentInputs are what a node agent's desired state is made of.
	AgentInputs = []Family{FamilyObjects, FamilyDecisions, FamilySuspended}
	// LeaderInputs are what the placement leader decides from.
	LeaderInputs = []Family{FamilyObjects, FamilyDecisions, FamilySuspended, FamilyNodes, FamilyReports, FamilyDeleted, FamilyDrains}
)

// LeaseID names a node's lease.
type LeaseID int64

// LeaderGuard identifies one term of the placement leader: a write guarded
// by it succeeds only while that term lasts, so a deposed leader cannot
// write a decision.
type LeaderGuard struct {
	Key string
	Rev int64
}

// Leadership is a won election.
type Leadership interface {
	// Guard identifies this term, for guarded writes.
	Guard() LeaderGuard
	// Done is closed when the term ends (session lost).
	Done() <-chan struct{}
	// Close ends the term and hands leadership over at once.
	Close()
}

// Suspensions are the maintenance flags, keyed "Kind/name" (Kind "Node"
// for a whole node).
type Suspensions map[string]bool

// Object reports whether ref is suspended.
func (s Suspensions) Object(ref v1alpha1.Ref) bool { return s[ref.Kind+"/"+ref.Name] }

// Node reports whether a whole node is suspended.
func (s Suspensions) Node(name string) bool { return s["Node/"+name] }

// SuspendedNodes lists the suspended nodes.
func (s Suspensions) SuspendedNodes() map[string]bool {
	out := map[string]bool{}
	for k, on := range s {
		if n, ok := strings.CutPrefix(k, "Node/"); ok && on {
			out[n] = true
		}
	}
	return out
}

// Snapshot is every object (with or without status) at one revision.
type Snapshot struct {
	Objects  []v1alpha1.Object
	Revision int64
	// Damaged are the keys that did not decode: skipped, so that one bad
	// value (written by a bug, an old version or by hand) never stops the
	// others. `sitekeeper doctor` lists and removes them.
	Damaged []DamagedKey
}

// DamagedKey is a stored value that does not decode.
type DamagedKey struct {
	Key string `json:"key"`
	// Error is why it does not decode.
	Error string `json:"error"`
	// Revision is the key's mod revision: a write that replaces the value
	// compares on it.
	Revision int64 `json:"revision"`
}

// DamagedWarning is the Warning event's reason for a damaged key.
const DamagedWarning = "DamagedKey"

// DamagedMessage says what is wrong with k and what to do.
func DamagedMessage(k DamagedKey) string {
	return fmt.Sprintf("%s does not decode (%s): skipped; `sitekeeper doctor --fix` removes it", k.Key, k.Error)
}

// Outcome is what apply did to one object, in kubectl's words.
type Outcome string

// Outcomes.
const (
	Created    Outcome = "created"
	Configured Outcome = "configured"
	Unchanged  Outcome = "unchanged"
	Pruned     Outcome = "pruned"
	// Adopted: a source took over an object applied without one (from
	// the CLI); it owns, and prunes, it from now on.
	Adopted Outcome = "adopted"
)

// ApplyResult is the outcome for one object.
type ApplyResult struct {
	Ref        v1alpha1.Ref
	Outcome    Outcome
	Generation int64
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	DryRun bool
	// Owner names the source applying (a manifest folder); every object
	// gets the sitekeeper.io/source annotation. Objects owned by another
	// source are refused.
	Owner string
	// AdoptFrom lists other sources whose objects Owner takes over without
	// a conflict: the names the same folder had before (see
	// gitops.FolderName).
	AdoptFrom []string
	// Prune lists objects to delete in the same transaction (a folder's
	// objects that left it); they are left out of the validated set.
	Prune []v1alpha1.Ref
	// ForceConflicts lets a CLI apply change an object a folder owns,
	// overwrite a field another writer changed since BaseRevision, and take
	// over fields another manager set.
	ForceConflicts bool
	// Manager names the applier (a person's --field-manager); each field
	// remembers the manager that last set it, and an apply that changes a
	// field another manager set is a conflict. Unset: "source OWNER" for a
	// folder, else the store's default.
	Manager string
	// BaseRevision, when set, is the store revision the manifests were
	// written against: only the fields they change relative to the
	// objects at that revision are written, over what the store holds
	// now, and a field another writer changed since to another value is a
	// conflict. Unset, the apply's own first read is the base.
	BaseRevision int64
}

// PlacementWrite is what the placement leader writes for one group in a
// pass: its decision when it changed (a compare-and-swap on
// Decision.Revision) and its members' status when it changed.
type PlacementWrite struct {
	Group    string
	Decision *Decision
	Statuses map[v1alpha1.Ref]v1alpha1.Status
}

// OwnedError is an apply that would change an object a source owns.
type OwnedError struct {
	Ref    v1alpha1.Ref
	Source string
}

func (e *OwnedError) Error() string {
	return fmt.Sprintf("%s is managed by source %q: the next change of that folder will undo this apply; commit the change there instead, or pass --force-conflicts", e.Ref, e.Source)
}

// ValidationError carries every problem of a refused set.
type ValidationError struct{ Errors diag.List }

func (e *ValidationError) Error() string { return e.Errors.Error() }

// NodeInfo is what an agent publishes under its lease.
type NodeInfo struct {
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Version string    `json:"version,omitempty"`
	// TakedownBudget is how long this node may need, once it fenced itself,
	// to take everything it holds out of service: measured, with a margin,
	// never below its backend's floor. A group moves off the node only
	// after its lease expired and this much more time passed.
	TakedownBudget Duration `json:"takedownBudget,omitzero"`
	// Unsafe says why the node may not be given groups: a take-down step
	// hung and was cut off, so what it holds is not known to be released.
	Unsafe string `json:"unsafe,omitempty"`
	// BringUp is how long the node's last take-over took from the
	// leader's decision to the first healthy probe (what-if planning
	// estimates outages from it); zero before one was measured.
	BringUp Duration `json:"bringUp,omitzero"`
}

// Duration is a time.Duration that reads and writes as "1.5s" in JSON.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads "1.5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	d.Duration = v
	return nil
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
	// ReleaseAfter, set once Releasing's lease expired, is when the group
	// may be brought up on Target without a confirmation: the expiry as
	// the leader saw it plus Releasing's published take-down budget.
	ReleaseAfter time.Time `json:"releaseAfter,omitzero"`
	// Reason is why the group is where it is: one of the CamelCase
	// Reason constants of api/v1alpha1 (FailedOver, SwitchedBack, ...).
	Reason string `json:"reason"`
	// Message says it for a person ("node1 lease expired; node2 serves the
	// group now").
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
	// Requested is the placement.activeNode already honoured, with the
	// switchover request that asked for it (see GroupView.SwitchoverToken).
	Requested      string `json:"requested,omitempty"`
	RequestedToken string `json:"requestedToken,omitempty"`
	// RequestedGeneration is no longer written (a generation is not a
	// request); kept so that older decisions decode.
	RequestedGeneration int64 `json:"requestedGeneration,omitempty"`
	// Failures lists, per node, when the group failed there (unhealthy
	// after local recovery), for the anti-flapping threshold. A node's
	// lease loss is not the group's failure: it counts once, against the
	// node (see the placement leader's node losses).
	Failures map[string][]time.Time `json:"failures,omitempty"`
	// RetryAt, set while every live node has spent its failure budget, is
	// when the group is placed again all the same: a hold-off that grows
	// with HoldOffs (the times it was placed again this way), so that a
	// group is never parked forever while a node could serve it.
	RetryAt  time.Time `json:"retryAt,omitzero"`
	HoldOffs int       `json:"holdOffs,omitempty"`
	// SwitchbackAt is when the group may switch back automatically to its
	// first node (placement.switchbackAfter after that node came up); zero
	// when none is pending.
	SwitchbackAt time.Time `json:"switchbackAt,omitzero"`
	// WakeAt, never stored, is when the leader must look at the group
	// again without anything having been written: the end of a dead
	// node's take-down budget the leader waits out before it moves the
	// group in one write.
	WakeAt time.Time `json:"-"`
	// Revision is the key's mod revision, for compare-and-swap.
	Revision int64 `json:"-"`
	// Damaged, when set, says the stored value did not decode (and why):
	// the decision holds only the group's name and revision, so that the
	// placement leader can replace it. Agents treat the group as not
	// placed (touch nothing).
	Damaged string `json:"-"`
}

// Summary is the decision's reason and message in one line, as `get
// groups` shows it ("FailedOver: node1 lease expired; ...").
func (d Decision) Summary() string {
	s := d.Reason
	if d.Message != "" {
		s += ": " + d.Message
	}
	if !d.SwitchbackAt.IsZero() {
		s += fmt.Sprintf(" (switchback to the first node at %s, in %s)", d.SwitchbackAt.Local().Format("15:04:05"), max(0, time.Until(d.SwitchbackAt)).Round(time.Second))
	}
	return s
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
	// Component is who recorded it: placement, agent, gitops, cli.
	Component string `json:"component,omitempty"`
	// By is the person or pipeline whose command made the change: the
	// name in the CLI's client certificate, else user@host.
	By string `json:"by,omitempty"`
	// Count is how many times the same thing happened in a row, when
	// more than once (a step failing again and again with one error).
	Count int `json:"count,omitempty"`
}

// Event types.
const (
	Normal  = "Normal"
	Warning = "Warning"
)

// SimCommand is a fault injected into a simulated node.
type SimCommand struct {
	// Powered is false after fail-node, true after heal-node.
	Powered bool `json:"powered"`
	// StopSite names a site to stop behind Sitekeeper's back.
	StopSite string `json:"stopSite,omitempty"`
	// Partitioned cuts the node off from the store while it keeps running
	// and serving (heal-node ends it).
	Partitioned bool `json:"partitioned,omitempty"`
	// Faults are the node's standing faults, each "volume:NAME",
	// "cert:THUMBPRINT", "feature:NAME" or "site:NAME" (sim hide-volume,
	// remove-cert, remove-feature, fail-site); carried over by every later
	// command.
	Faults []string `json:"faults,omitempty"`
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
	// Synced and SyncedStore say that the change set Synced (revision and
	// options) was applied whole and the objects matched it as of store
	// revision SyncedStore: a new leader whose checkout is the same, with
	// no object changed since, has nothing to apply.
	Synced      string `json:"synced,omitempty"`
	SyncedStore int64  `json:"syncedStore,omitempty"`
	// Git is the status of a git source (a GitSource the leader fetches);
	// nil for a folder.
	Git *GitStatus `json:"git,omitempty"`
}

// GitStatus is what the leader last did with a git source.
type GitStatus struct {
	URL string `json:"url"`
	Ref string `json:"ref"`
	// Resolved is the commit the ref named at the last fetch.
	Resolved string `json:"resolvedCommit,omitempty"`
	// ResolvedAt is when the ref last moved to a new commit.
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	// FetchError is the last fetch's error; empty when it worked.
	FetchError string `json:"fetchError,omitempty"`
	// HandledReconcile echoes the sitekeeper.io/reconcile token last acted on.
	HandledReconcile string `json:"handledReconcile,omitempty"`
	// History is the last 10 revisions tried, newest first, with their
	// outcome.
	History []Attempt `json:"history,omitempty"`
}

// MaxHistory is how many revisions a git source's history keeps.
const MaxHistory = 10

// Remember puts a in front of the history, once: an attempt of the
// revision already in front replaces it.
func (g *GitStatus) Remember(a Attempt) {
	if len(g.History) > 0 && g.History[0].Revision == a.Revision && g.History[0].Error == a.Error {
		return
	}
	g.History = append([]Attempt{a}, g.History...)
	if len(g.History) > MaxHistory {
		g.History = g.History[:MaxHistory]
	}
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
	// Decided is the time of the placement decision the node acted on
	// (Decision.Since): a release counts only for the decision it answers,
	// never a report left from before the group came to the node.
	Decided time.Time `json:"decided,omitzero"`
	// StandbyChecked says a standby proved (or failed to prove) that it
	// could take the group over now; StandbyProblems says what is missing
	// (none: ready). Not checked: the backend cannot tell.
	StandbyChecked  bool     `json:"standbyChecked,omitempty"`
	StandbyProblems []string `json:"standbyProblems,omitempty"`
}

// StandbyReady says whether the report's node proved it could take the
// group over; a backend that cannot check counts as ready.
func (r Report) StandbyReady() bool { return len(r.StandbyProblems) == 0 }

// StandbyState is what decides whether a node could take a group over now.
type StandbyState struct {
	Live, Suspended, Draining bool
	Unsafe                    string
	Report                    Report
	Reported                  bool
}

// Readiness is the one rule for a standby: ready, or why not (no lease,
// suspended, being drained, unsafe, a step failing there, not configured
// yet, or what its own proof found missing). The placement leader's
// condition and decisions and the dashboard's view all use it.
func (s StandbyState) Readiness() (bool, string) {
	switch {
	case !s.Live:
		return false, "no lease (down or cut off)"
	case s.Suspended:
		return false, "node suspended"
	case s.Draining:
		return false, "node being drained"
	case s.Unsafe != "":
		return false, "unsafe: " + s.Unsafe
	case !s.Reported:
		return false, "has not reported on the group yet"
	case s.Report.Phase == PhaseFailed || s.Report.Phase == PhaseStalled:
		return false, "a step failed: " + s.Report.Message
	case !s.Report.StandbyReady():
		return false, strings.Join(s.Report.StandbyProblems, "; ")
	}
	return true, "configured, standing by"
}

// The serving states of a source's applied revision.
const (
	// SourceRefused: the last change set was not applied.
	SourceRefused = "Refused"
	// SourceApplied: its objects report no readiness yet.
	SourceApplied = "Applied"
	// SourceProgressing: not all Ready yet, within the timeout of the apply.
	SourceProgressing = "Progressing"
	// SourceHealthy: every object Ready; the only Ready state.
	SourceHealthy = "Healthy"
	// SourceDegraded: some still not Ready after the timeout.
	SourceDegraded = "Degraded"
)

// DefaultSourceTimeout is how long a source's applied objects have to
// become Ready before the source is Degraded, unless its spec says.
const DefaultSourceTimeout = 5 * time.Minute

// Health is what src's applied revision does on the nodes, read from its
// inventory's Ready conditions (success means serving, not only applied),
// and the objects that are not Ready.
func (src Source) Health(statuses map[v1alpha1.Ref]v1alpha1.Status, now time.Time, timeout time.Duration) (state string, notReady []string) {
	if src.LastAttempt.Error != "" {
		return SourceRefused, nil
	}
	known := 0
	for _, e := range src.Inventory {
		kind, name, _ := strings.Cut(e.Ref, "/")
		st, ok := statuses[v1alpha1.Ref{Kind: kind, Name: name}]
		c := v1alpha1.FindCondition(st.Conditions, v1alpha1.ConditionReady)
		if !ok || c == nil {
			continue
		}
		known++
		if c.Status != v1alpha1.ConditionTrue {
			notReady = append(notReady, e.Ref)
		}
	}
	switch {
	case known == 0:
		return SourceApplied, nil
	case len(notReady) == 0:
		return SourceHealthy, nil
	case now.Sub(src.AppliedAt) < timeout:
		return SourceProgressing, notReady
	}
	return SourceDegraded, notReady
}
