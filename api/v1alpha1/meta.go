// Package v1alpha1 holds the sitekeeper.io/v1alpha1 API: the objects users
// declare in manifests, their defaults and their status. It does no I/O.
//
// The doc comment of every exported field is the manifest reference:
// `sitekeeper explain` prints it, so write it for the user.
package v1alpha1

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Group is the API group of every Sitekeeper object.
const Group = "sitekeeper.io"

// Version is the API version of this package.
const Version = "v1alpha1"

// APIVersion is the apiVersion every manifest of this package carries.
const APIVersion = Group + "/" + Version

// The kinds of this API.
const (
	KindIISSite        = "IISSite"
	KindIPResource     = "IPResource"
	KindVolumeResource = "VolumeResource"
)

// TypeMeta names the schema of an object.
type TypeMeta struct {
	// APIVersion is the schema version of the object; always "sitekeeper.io/v1alpha1".
	APIVersion string `json:"apiVersion"`
	// Kind is the type of the object: IISSite, IPResource or VolumeResource.
	Kind string `json:"kind"`
}

// ObjectMeta is the metadata every object carries, shaped like Kubernetes'.
type ObjectMeta struct {
	// Name identifies the object within its kind. For an IISSite it is also
	// the IIS site name (letters, digits and hyphens; case is kept).
	Name string `json:"name"`
	// Labels are free key/value pairs for selecting and grouping objects.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are free key/value pairs for tools; Sitekeeper records
	// the source that owns an object under sitekeeper.io/source.
	Annotations map[string]string `json:"annotations,omitempty"`
	// UID is set by the store when the object is created; read-only.
	UID string `json:"uid,omitempty"`
	// Generation counts changes to spec; set by the store; read-only.
	Generation int64 `json:"generation,omitempty"`
	// ResourceVersion is the store's revision of the object; a write that
	// carries a stale one is refused as a conflict; read-only.
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// CreationTimestamp is when the store first saw the object; read-only.
	CreationTimestamp *time.Time `json:"creationTimestamp,omitempty"`
	// DeletionTimestamp is set when a delete was asked for: the object is
	// being taken out of service on every node and is then removed; read-only.
	DeletionTimestamp *time.Time `json:"deletionTimestamp,omitempty"`
	// ManagedFields says which applier last set each field (manager ->
	// field paths such as spec.activeNode), so that an apply that would
	// change a field another applier set is a conflict naming both;
	// set by the store; read-only.
	ManagedFields map[string][]string `json:"managedFields,omitempty"`
}

// Duration is a time span written as a Go duration string ("5s", "1m30s").
type Duration struct {
	time.Duration
}

// MarshalJSON writes the duration as a string such as "5s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string such as "5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"5s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration string such as \"5s\", got %q", s)
	}
	d.Duration = v
	return nil
}

// SwitchbackPolicy says what happens when a group's first node is healthy
// again after a failover.
type SwitchbackPolicy string

const (
	// SwitchbackManual leaves the group where it is until the desired
	// placement changes (`sitekeeper switchover`, or a commit of activeNode).
	SwitchbackManual SwitchbackPolicy = "Manual"
	// SwitchbackAutomatic moves the group back to its first node as soon as
	// that node is healthy.
	SwitchbackAutomatic SwitchbackPolicy = "Automatic"
)

// Placement says which nodes may serve an object's resource group, in
// priority order. Every member of a resource group shares one placement.
type Placement struct {
	// Nodes lists the nodes that may serve the group, highest priority
	// first; the first is the primary node (where the primary instance lives).
	Nodes []string `json:"nodes,omitempty"`
	// Switchback is Manual (default) or Automatic: whether the group returns
	// to the first node by itself once that node is healthy again.
	Switchback SwitchbackPolicy `json:"switchback,omitempty"`
	// ActiveNode requests the node that should serve the group now; changing
	// it is a manual switchover. Empty means the first healthy node.
	ActiveNode string `json:"activeNode,omitempty"`
	// MaxFailures is how many failures on one node within failureWindow make
	// that node ineligible for automatic moves (default 3).
	MaxFailures int32 `json:"maxFailures,omitempty"`
	// FailureWindow is the period over which failures are counted (default 1h).
	FailureWindow *Duration `json:"failureWindow,omitempty"`
	// SwitchbackAfter, with switchback: Automatic, is how long the first
	// node must have been up (holding its lease) with the group configured
	// before the group moves back (default 0: at once), so that a node that
	// flaps after a reboot does not pull its groups back and forth.
	SwitchbackAfter *Duration `json:"switchbackAfter,omitempty"`
}

// IsZero reports whether no placement was declared.
func (p Placement) IsZero() bool {
	return len(p.Nodes) == 0 && p.Switchback == "" && p.ActiveNode == "" && p.MaxFailures == 0 && p.FailureWindow == nil && p.SwitchbackAfter == nil
}

// NodePhase is the state of one node's instance of an object.
type NodePhase string

const (
	// NodeActive means the node serves the object now.
	NodeActive NodePhase = "Active"
	// NodeStandby means the node holds a stopped, configured instance.
	NodeStandby NodePhase = "Standby"
	// NodeUnreachable means the node's lease has expired.
	NodeUnreachable NodePhase = "Unreachable"
)

// NodeStatus is what one node reports about its instance of an object.
type NodeStatus struct {
	// Node is the node's name.
	Node string `json:"node"`
	// State is Active, Standby or Unreachable.
	State NodePhase `json:"state"`
	// Message says what the node saw last, in a sentence.
	Message string `json:"message,omitempty"`
}

// Status is the observed state of any Sitekeeper object; it is written by
// Sitekeeper, never by users.
type Status struct {
	// ObservedGeneration is the generation the status describes.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// ActiveNode is the node that serves the object's group now.
	ActiveNode string `json:"activeNode,omitempty"`
	// Nodes lists every placement node's view of the object.
	Nodes []NodeStatus `json:"nodes,omitempty"`
	// Conditions are Ready, Progressing and Degraded, in the Kubernetes shape.
	Conditions []Condition `json:"conditions,omitempty"`
}

// Equal is whether s and o say the same: what their JSON would compare,
// without encoding them (the placement leader compares thousands of
// statuses a pass to write only those that changed).
func (s Status) Equal(o Status) bool {
	return s.ObservedGeneration == o.ObservedGeneration && s.ActiveNode == o.ActiveNode &&
		slices.Equal(s.Nodes, o.Nodes) && slices.EqualFunc(s.Conditions, o.Conditions, Condition.Equal)
}
