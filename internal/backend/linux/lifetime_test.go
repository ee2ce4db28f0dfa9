//go:build linux

package linux

import (
	"testing"
	"time"
)

// TestAnAddedAddressEndsBeforeTheLeaseCould: the lifetime of an added
// address is the backend's own, cut to what is left of the lease in whole
// seconds, and refused when not one second is left.
func TestAnAddedAddressEndsBeforeTheLeaseCould(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name     string
		left     time.Duration // until the lease could run out; 0: not following one
		lifetime time.Duration
		secs     int
		ok       bool
	}{
		{"no lease followed yet", 0, time.Second, 1, true},
		{"fresh renewal", 1900 * time.Millisecond, time.Second, 1, true},
		{"the backend's lifetime is the longest", 5 * time.Second, 2 * time.Second, 2, true},
		{"cut to the lease", 1500 * time.Millisecond, 3 * time.Second, 1, true},
		{"renewal late: under a second left", 900 * time.Millisecond, time.Second, 0, false},
		{"lease run out", -time.Second, time.Second, -1, false},
	} {
		var until time.Time
		if c.left != 0 {
			until = now.Add(c.left)
		}
		secs, ok := addLifetime(now, until, c.lifetime)
		if ok != c.ok || (ok && secs != c.secs) {
			t.Errorf("%s: %d s, ok=%v; want %d s, ok=%v", c.name, secs, ok, c.secs, c.ok)
		}
		if ok && !until.IsZero() && now.Add(time.Duration(secs)*time.Second).After(until) {
			t.Errorf("%s: a lifetime of %d s outlives the lease", c.name, secs)
		}
	}
}

// TestAWriteThatTookTooLongIsTakenBack: a write is late when it took
// longer than writeStall (the process was stopped or starved between the
// check and the kernel running it) or ended after the lease could run out.
func TestAWriteThatTookTooLongIsTakenBack(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	until := t0.Add(1500 * time.Millisecond)
	for _, c := range []struct {
		name  string
		took  time.Duration
		until time.Time
		late  bool
	}{
		{"a normal write", 3 * time.Millisecond, until, false},
		{"slow but in time", writeStall, until, false},
		{"frozen mid-write (SIGSTOP)", 3 * time.Second, until, true},
		{"starved past the stall bound", writeStall + time.Millisecond, until, true},
		{"ended after the lease could run out", 50 * time.Millisecond, t0.Add(20 * time.Millisecond), true},
		{"no lease followed, quick", time.Millisecond, time.Time{}, false},
		{"no lease followed, frozen", 2 * time.Second, time.Time{}, true},
	} {
		if got := wroteLate(t0, t0.Add(c.took), c.until); got != c.late {
			t.Errorf("%s: late=%v, want %v", c.name, got, c.late)
		}
	}
}
