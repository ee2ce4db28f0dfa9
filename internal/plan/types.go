// Package plan computes, as a value, the ordered steps that take one node
// (or every node) from what it has to what is desired. Compute is pure: the
// same plan is printed by `sitekeeper plan` and executed by the agent.
package plan

import (
	"fmt"
	"strings"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// Action is one kind of step; the set is closed.
type Action string

// The actions, in the vocabulary of the node.
const (
	VolumeOnline    Action = "VolumeOnline"
	AddAddress      Action = "AddAddress"
	CreateSite      Action = "CreateSite"
	RenameSite      Action = "RenameSite"
	UpdateBindings  Action = "UpdateBindings"
	SetPhysicalPath Action = "SetPhysicalPath"
	SetAppPool      Action = "SetAppPool"
	SetAutoStart    Action = "SetAutoStart"
	StartSite       Action = "StartSite"
	StopSite        Action = "StopSite"
	DeleteSite      Action = "DeleteSite"
	RemoveAddress   Action = "RemoveAddress"
	VolumeOffline   Action = "VolumeOffline"
)

var verbs = map[Action]string{
	VolumeOnline: "bring online", AddAddress: "add address of", CreateSite: "create (stopped)",
	RenameSite: "rename", UpdateBindings: "update bindings of", SetPhysicalPath: "set physical path of",
	SetAppPool: "set app pool of", SetAutoStart: "set serverAutoStart of", StartSite: "start",
	StopSite: "stop", DeleteSite: "delete", RemoveAddress: "remove address of", VolumeOffline: "take offline",
}

// TakesDown reports whether a takes something out of service.
func (a Action) TakesDown() bool {
	switch a {
	case StopSite, DeleteSite, RemoveAddress, VolumeOffline:
		return true
	}
	return false
}

// Step is one change on one node, with its reason.
type Step struct {
	Node   string `json:"node"`
	Action Action `json:"action"`
	// Target is the object the step serves: "IISSite/WebSite1".
	Target string `json:"target"`
	// Group is the resource group of the target.
	Group string `json:"group"`
	// Reason says why, in words a user reads.
	Reason string `json:"reason"`

	// What the step needs to run, by action.
	SiteName  string              `json:"siteName,omitempty"` // the site's current name in IIS
	Site      *backend.SiteConfig `json:"site,omitempty"`     // CreateSite
	NewName   string              `json:"newName,omitempty"`  // RenameSite
	Add       []backend.Binding   `json:"add,omitempty"`      // UpdateBindings
	Remove    []backend.Binding   `json:"remove,omitempty"`   // UpdateBindings
	Value     string              `json:"value,omitempty"`    // SetPhysicalPath, SetAppPool
	AutoStart bool                `json:"autoStart,omitempty"`
	Address   *backend.Address    `json:"address,omitempty"` // AddAddress, RemoveAddress
	Volume    *backend.Volume     `json:"volume,omitempty"`  // VolumeOnline, VolumeOffline
}

// String reads as a sentence: "node1: start IISSite/WebSite1 (group
// WebSite1 is active here)".
func (s Step) String() string {
	detail := s.Detail()
	if detail != "" {
		detail = " " + detail
	}
	return fmt.Sprintf("%s: %s %s%s (%s)", s.Node, verbs[s.Action], s.Target, detail, s.Reason)
}

// Detail is what the step sets, beyond its target: "from OldName",
// "to D:\www", "10.0.0.50/24", "at E:\"; "" when the action says it all.
func (s Step) Detail() string {
	switch s.Action {
	case RenameSite:
		return "from " + s.SiteName
	case SetPhysicalPath, SetAppPool:
		return "to " + s.Value
	case SetAutoStart:
		return fmt.Sprintf("to %t", s.AutoStart)
	case AddAddress, RemoveAddress:
		return s.Address.CIDR
	case VolumeOnline:
		return "at " + s.Volume.Root
	}
	return ""
}

// Plan is an ordered list of steps.
type Plan []Step

// String prints one step per line; an empty plan says so.
func (p Plan) String() string {
	if len(p) == 0 {
		return "nothing to do: converged\n"
	}
	var b strings.Builder
	for _, s := range p {
		b.WriteString(s.String())
		b.WriteByte('\n')
	}
	return b.String()
}
