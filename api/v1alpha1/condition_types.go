package v1alpha1

import "time"

// ConditionStatus is True, False or Unknown.
type ConditionStatus string

// The values of ConditionStatus.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// Condition is one aspect of an object's state, in the metav1.Condition shape.
type Condition struct {
	// Type is the aspect: Ready, Progressing or Degraded.
	Type string `json:"type"`
	// Status is True, False or Unknown.
	Status ConditionStatus `json:"status"`
	// ObservedGeneration is the generation this condition was computed for.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// LastTransitionTime is when Status last changed.
	LastTransitionTime time.Time `json:"lastTransitionTime"`
	// Reason is a CamelCase word saying why.
	Reason string `json:"reason"`
	// Message says why in a sentence.
	Message string `json:"message,omitempty"`
}

// Equal is whether c and o say the same (the same instant, in any zone).
func (c Condition) Equal(o Condition) bool {
	return c.Type == o.Type && c.Status == o.Status && c.ObservedGeneration == o.ObservedGeneration &&
		c.LastTransitionTime.Equal(o.LastTransitionTime) && c.Reason == o.Reason && c.Message == o.Message
}

// Condition types.
const (
	// ConditionReady summarises: the group is served on its active node.
	ConditionReady = "Ready"
	// ConditionProgressing is True while nodes are converging.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True while the group runs off its first node or a
	// standby node is unreachable.
	ConditionDegraded = "Degraded"
	// ConditionStandbyReady: at least one standby proved it could take
	// the group over now (its message has each standby's reason).
	ConditionStandbyReady = "StandbyReady"
	// ReasonStandbyReady and ReasonNoReadyStandby are its reasons.
	ReasonStandbyReady   = "StandbyReady"
	ReasonNoReadyStandby = "NoReadyStandby"
)

// Condition reasons.
const (
	// ReasonConverged: every node matches the desired state.
	ReasonConverged = "Converged"
	// ReasonApplying: a node is executing steps.
	ReasonApplying = "Applying"
	// ReasonStepFailed: a step failed and will be retried.
	ReasonStepFailed = "StepFailed"
	// ReasonStalled: a step failed in a way that needs a human.
	ReasonStalled = "Stalled"
	// ReasonFailedOver: the group serves from a node other than its first.
	ReasonFailedOver = "FailedOver"
	// ReasonSwitchedBack: the group returned to its first node.
	ReasonSwitchedBack = "SwitchedBack"
	// ReasonDrained: the group moved off a node being drained.
	ReasonDrained = "Drained"
	// ReasonDrainBlocked: the group's node is being drained, but no other
	// node can serve it: it stays.
	ReasonDrainBlocked = "DrainBlocked"
	// ReasonNoHealthyNode: no node of the placement can serve the group.
	ReasonNoHealthyNode = "NoHealthyNode"
	// ReasonUnhealthy: the site fails its health checks.
	ReasonUnhealthy = "Unhealthy"
	// ReasonAsExpected: nothing to report.
	ReasonAsExpected = "AsExpected"
	// ReasonSuspended: Sitekeeper does not act on the object.
	ReasonSuspended = "Suspended"
	// ReasonPlaced: the leader placed a group for the first time.
	ReasonPlaced = "Placed"
	// ReasonSwitchedOver: the group moved to the node placement.activeNode
	// asks for (a manual switchover or switchback).
	ReasonSwitchedOver = "SwitchedOver"
	// ReasonNodeUnreachable: a node of the placement has no live lease, so
	// the group has no standby there.
	ReasonNodeUnreachable = "NodeUnreachable"
)

// SetCondition sets or updates the condition of c.Type in conds. The
// transition time moves only when the status flips. It reports whether
// anything changed.
func SetCondition(conds *[]Condition, c Condition, now time.Time) bool {
	for i := range *conds {
		old := &(*conds)[i]
		if old.Type != c.Type {
			continue
		}
		if old.Status != c.Status {
			c.LastTransitionTime = now
		} else {
			c.LastTransitionTime = old.LastTransitionTime
		}
		if *old == c {
			return false
		}
		*old = c
		return true
	}
	c.LastTransitionTime = now
	*conds = append(*conds, c)
	return true
}

// FindCondition returns the condition of type t, or nil.
func FindCondition(conds []Condition, t string) *Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// Reasons of events that are not placement decisions (those use the
// condition reasons above: Placed, FailedOver, SwitchedBack, SwitchedOver,
// NoHealthyNode).
const (
	// EventStep: a node executed one step of its plan.
	EventStep = "Step"
	// EventStepFailed: a step failed; the group is retried (or stalled).
	EventStepFailed = "StepFailed"
	// EventSwitchoverReverted: a folder's change set put back the
	// activeNode that a switchover outside the folder had set.
	EventSwitchoverReverted = "SwitchoverReverted"
	// EventSwitchoverRequested says who asked for a switchover, and to where.
	EventSwitchoverRequested = "SwitchoverRequested"
	// EventSwitchoverRefused: the placement leader did not make an
	// operator's switchover (it no longer held when carried out).
	EventSwitchoverRefused = "SwitchoverRefused"
	// EventSourceConfigured and EventSourceDeleted: a GitSource's spec was
	// written (added, suspended, resumed, asked to reconcile) or deleted.
	EventSourceConfigured = "SourceConfigured"
	EventSourceDeleted    = "SourceDeleted"
	// EventMemberAdded and EventMemberRemoved: the store's membership
	// changed.
	EventMemberAdded   = "MemberAdded"
	EventMemberRemoved = "MemberRemoved"
	// EventStandbyNotReady: no standby of a group could take it over any
	// more (a Warning; StandbyReady when one can again).
	EventStandbyNotReady = "StandbyNotReady"
	// EventDraining and EventUncordoned: a node's drain began, and it takes
	// groups again.
	EventDraining   = "Draining"
	EventUncordoned = "Uncordoned"
	// EventDamagedKeyRemoved: doctor --fix removed a key that did not decode.
	EventDamagedKeyRemoved = "DamagedKeyRemoved"
	// EventLocalRestart: a failing site was restarted in place.
	EventLocalRestart = "LocalRestart"
	// EventFenced: a node could not renew its lease, took its groups down
	// and came back as standby.
	EventFenced = "Fenced"
	// EventTimingsSuffix ends the reason of a move's timings event
	// (FailedOverTimings, SwitchedBackTimings, SwitchedOverTimings).
	EventTimingsSuffix = "Timings"
	// EventCreated, EventConfigured, EventPruned: what an apply did.
	EventCreated    = "Created"
	EventConfigured = "Configured"
	EventPruned     = "Pruned"
	EventAdopted    = "Adopted"
	// EventDeleting: an object is being taken out of service on every node.
	EventDeleting = "Deleting"
	// EventDeleted: every node took the object out of service; it is gone.
	EventDeleted = "Deleted"
	// EventSourceApplied, EventSourceRefused: a manifest folder's change
	// set was applied, or refused whole.
	EventSourceApplied = "SourceApplied"
	EventSourceRefused = "SourceRefused"
	// EventSourceFetchFailed: a git source could not be fetched or read;
	// what was applied stays in force.
	EventSourceFetchFailed = "SourceFetchFailed"
	// EventSourceDegraded: a source's applied revision is still not served
	// (some object not Ready) after the source's timeout.
	EventSourceDegraded = "SourceDegraded"
	// EventSuspended, EventResumed: maintenance mode set or lifted.
	EventSuspended = "Suspended"
	EventResumed   = "Resumed"
	// EventFailuresCleared: a group's failure history was forgotten.
	EventFailuresCleared = "FailuresCleared"
	// EventSimulated: a fault was injected into a simulated node.
	EventSimulated = "Simulated"
	// EventTakedownOverrun: a take-down ran past the node's published
	// budget; the budget was raised at once.
	EventTakedownOverrun = "TakedownOverrun"
	// EventUnsafe: a take-down step hung and was cut off: no group is
	// placed on the node until a take-down completes (EventSafe).
	EventUnsafe = "Unsafe"
	EventSafe   = "Safe"
	// EventBootAdopted: a restarted agent found its previous lease alive and
	// kept serving what it held, without a blip.
	EventBootAdopted = "BootAdopted"
	// EventBootTakedown: a restarted agent without its previous lease took
	// down what it held before it registered.
	EventBootTakedown = "BootTakedown"
)
