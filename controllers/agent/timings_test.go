package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

func TestFailoverTimingsEvent(t *testing.T) {
	var got []store.Event
	tm := newTimings("node2", record.Func(func(e store.Event) { got = append(got, e) }), nil)
	t0 := time.Date(2026, 11, 25, 15, 0, 0, 0, time.Local)
	d := &plan.Desired{Decided: map[string]plan.Decided{
		"web":   {Reason: "FailedOver", Message: "node1 lease expired; node2 serves the group now", At: t0},
		"fresh": {Reason: "Placed", Message: "node2 serves the group", At: t0},
	}}
	start := func(group string, at time.Duration) {
		tm.step(d, plan.Step{Action: plan.StartSite, Group: group}, nil, t0.Add(at))
	}
	start("fresh", 10*time.Millisecond)
	tm.probe("fresh", nil, t0.Add(time.Second))
	start("web", 30*time.Millisecond)
	tm.probe("web", errors.New("connection refused"), t0.Add(500*time.Millisecond))
	tm.probe("web", nil, t0.Add(1040*time.Millisecond))
	tm.probe("web", nil, t0.Add(2*time.Second)) // reported once
	start("web", 3*time.Second)                 // a restart later is no new failover
	tm.probe("web", nil, t0.Add(4*time.Second))
	if len(got) != 1 {
		t.Fatalf("events: %+v, want one", got)
	}
	e := got[0]
	for _, want := range []string{"detected and decided 15:00:00.000", "node1 lease expired", "brought up on node2 15:00:00.030 (+30ms)", "first healthy probe 15:00:01.040 (+1.04s)"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("message %q lacks %q", e.Message, want)
		}
	}
	if e.Reason != "FailedOverTimings" || e.Object != "group/web" {
		t.Errorf("event %+v", e)
	}
}

func TestFenceEvent(t *testing.T) {
	var got []store.Event
	tm := newTimings("node1", record.Func(func(e store.Event) { got = append(got, e) }), nil)
	last := time.Date(2026, 11, 25, 15, 0, 0, 0, time.Local)
	tm.fenced(true, last, last.Add(1500*time.Millisecond))
	tm.step(nil, plan.Step{Action: plan.StopSite}, nil, last.Add(1510*time.Millisecond))
	tm.step(nil, plan.Step{Action: plan.RemoveAddress}, nil, last.Add(1520*time.Millisecond))
	if len(got) != 0 {
		t.Fatal("an event while fenced (the store is unreachable)")
	}
	tm.fenced(false, last.Add(9*time.Second), last.Add(9*time.Second))
	if len(got) != 1 || got[0].Reason != "Fenced" {
		t.Fatalf("events: %+v", got)
	}
	for _, want := range []string{"fenced itself 15:00:01.500 (+1.5s)", "took 2 step(s) down by 15:00:01.520 (+1.52s)", "back at 15:00:09.000 as standby"} {
		if !strings.Contains(got[0].Message, want) {
			t.Errorf("message %q lacks %q", got[0].Message, want)
		}
	}
}
