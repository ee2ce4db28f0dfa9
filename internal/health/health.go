// Package health decides, from a site's check results, when to restart it
// in place (local recovery) and when to declare it failed so that its group
// fails over. It is a pure state machine; the agent runs the probes.
package health

import "time"

// Policy is a site's health settings.
type Policy struct {
	Interval         time.Duration
	FailureThreshold int
	// LocalRestarts is how many in-place restarts are tried before the site
	// counts as failed; negative means none.
	LocalRestarts int
}

// Decision is what the agent must do after a check.
type Decision int

// Decisions.
const (
	// None: nothing to do.
	None Decision = iota
	// Restart: restart the site in place.
	Restart
	// Failed: local recovery is exhausted; report the group unhealthy.
	Failed
)

// recoverAfter is the number of passing checks in a row after which the
// local-restart budget is given back.
const recoverAfter = 10

// Tracker follows one site's checks.
type Tracker struct {
	Policy   Policy
	Failures int // consecutive failed checks
	Passes   int // consecutive passed checks
	Restarts int // restarts used from the budget
	Failed   bool
	Last     time.Time
	LastErr  string
}

// Due reports whether a check is due at now.
func (t *Tracker) Due(now time.Time) bool {
	return t.Last.IsZero() || now.Sub(t.Last) >= t.Policy.Interval
}

// Record takes one check result at now and returns the decision.
func (t *Tracker) Record(now time.Time, err error) Decision {
	t.Last = now
	if err == nil {
		t.Failures, t.LastErr = 0, ""
		t.Passes++
		if t.Passes >= recoverAfter {
			t.Restarts = 0
		}
		if t.Failed && t.Passes > 0 {
			t.Failed = false
		}
		return None
	}
	t.Passes, t.LastErr = 0, err.Error()
	t.Failures++
	if t.Failures < t.Policy.FailureThreshold || t.Failed {
		return None
	}
	t.Failures = 0
	if t.Restarts < t.Policy.LocalRestarts {
		t.Restarts++
		return Restart
	}
	t.Failed = true
	return Failed
}

// Reset forgets the history, for a site that moved away or was reconfigured.
func (t *Tracker) Reset() {
	p := t.Policy
	*t = Tracker{Policy: p}
}
