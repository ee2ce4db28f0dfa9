package v1alpha1

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestStatusEqualIsJSONEquality: the placement leader skips a status write
// when Equal says nothing changed, so Equal must agree with what the
// stored JSON would say for every field.
func TestStatusEqualIsJSONEquality(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC)
	base := func() Status {
		return Status{
			ObservedGeneration: 3,
			ActiveNode:         "node1",
			Nodes:              []NodeStatus{{Node: "node1", State: NodeActive, Message: "serving"}, {Node: "node2", State: NodeStandby}},
			Conditions: []Condition{
				{Type: ConditionReady, Status: ConditionTrue, ObservedGeneration: 3, LastTransitionTime: at, Reason: "Serving", Message: "m"},
				{Type: ConditionProgressing, Status: ConditionFalse, LastTransitionTime: at, Reason: "Done"},
			},
		}
	}
	tests := []struct {
		name   string
		change func(*Status)
	}{
		{"same", func(*Status) {}},
		{"generation", func(s *Status) { s.ObservedGeneration++ }},
		{"active node", func(s *Status) { s.ActiveNode = "node2" }},
		{"a node's state", func(s *Status) { s.Nodes[1].State = NodeUnreachable }},
		{"a node's message", func(s *Status) { s.Nodes[0].Message = "" }},
		{"a node less", func(s *Status) { s.Nodes = s.Nodes[:1] }},
		{"condition status", func(s *Status) { s.Conditions[0].Status = ConditionFalse }},
		{"condition time", func(s *Status) { s.Conditions[1].LastTransitionTime = at.Add(time.Nanosecond) }},
		{"condition time in another zone", func(s *Status) {
			s.Conditions[1].LastTransitionTime = at.In(time.FixedZone("CET", 3600))
		}},
		{"condition reason", func(s *Status) { s.Conditions[0].Reason = "Other" }},
		{"condition message", func(s *Status) { s.Conditions[0].Message = "" }},
		{"condition generation", func(s *Status) { s.Conditions[0].ObservedGeneration = 2 }},
		{"condition type", func(s *Status) { s.Conditions[1].Type = ConditionDegraded }},
		{"conditions swapped", func(s *Status) { s.Conditions[0], s.Conditions[1] = s.Conditions[1], s.Conditions[0] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := base(), base()
			tt.change(&b)
			// JSON after a round trip, as the store holds it: the zone of a
			// time is not what the status says.
			ja, jb := roundTrip(t, a), roundTrip(t, b)
			want := ja == jb
			if got := a.Equal(b); got != want {
				t.Errorf("Equal = %v, JSON equal = %v\n%s\n%s", got, want, ja, jb)
			}
		})
	}
}

// TestStatusEqualTakesEmptyAsNone: the JSON omits both.
func TestStatusEqualTakesEmptyAsNone(t *testing.T) {
	if !(Status{Nodes: []NodeStatus{}, Conditions: []Condition{}}).Equal(Status{}) {
		t.Error("a status with empty lists differs from one with none")
	}
}

func roundTrip(t *testing.T, s Status) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for i := range back.Conditions {
		back.Conditions[i].LastTransitionTime = back.Conditions[i].LastTransitionTime.UTC()
	}
	b, err = json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStatusEqualKnowsEveryField fails when a field is added to a status
// type: Equal must then compare it too.
func TestStatusEqualKnowsEveryField(t *testing.T) {
	for typ, n := range map[reflect.Type]int{
		reflect.TypeFor[Status]():     4,
		reflect.TypeFor[Condition]():  6,
		reflect.TypeFor[NodeStatus](): 3,
	} {
		if got := typ.NumField(); got != n {
			t.Errorf("%s has %d fields, Equal compares %d: compare the new ones in Equal, then change this test", typ, got, n)
		}
	}
}
