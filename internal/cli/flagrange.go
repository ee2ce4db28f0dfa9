package cli

import (
	"time"
)

// Ranges of the duration flags: a value outside is a usage error that
// names the flag, the range and why, never a panic or a cluster that
// cannot hold a lease.
var (
	// The store counts leases in whole seconds; under a second no renewal
	// can arrive in time, and past ten minutes a dead node keeps its
	// groups down that long.
	leaseTTLRange = durationRange{min: time.Second, max: 10 * time.Minute, whole: time.Second,
		why: "the node lease: a node that misses it for this long is failed over"}
	electionRange = durationRange{min: 50 * time.Millisecond, max: 10 * time.Second,
		why: "raft's election timeout"}
	stepLatencyRange = durationRange{min: 0, max: time.Minute,
		why: "the simulated step latency"}
	requestTimeoutRange = durationRange{min: 100 * time.Millisecond, max: time.Hour,
		why: "how long one store call may take"}
	waitTimeoutRange = durationRange{min: time.Second, max: 24 * time.Hour,
		why: "how long --wait waits"}
	resyncRange = durationRange{min: time.Second, max: 24 * time.Hour,
		why: "how often the folder is read again without events"}
	syncPeriodRange = durationRange{min: time.Second, max: 24 * time.Hour,
		why: "how often the agent looks at every group without a change"}
	// A join token is a password: short-lived, a week at most.
	tokenTTLRange = durationRange{min: time.Minute, max: 7 * 24 * time.Hour,
		why: "how long a join token is valid"}
)

type durationRange struct {
	min, max time.Duration
	// whole, when set, is the unit the value must be a multiple of.
	whole time.Duration
	why   string
}

func (r durationRange) check(flag string, v time.Duration) error {
	if v < r.min || v > r.max {
		return usagef("%s %s is out of range: use a value between %s and %s (%s)", flag, v, r.min, r.max, r.why)
	}
	if r.whole > 0 && v%r.whole != 0 {
		return usagef("%s %s: it is counted in whole units of %s (%s); use %s or %s", flag, v, r.whole, r.why, v.Truncate(r.whole), v.Truncate(r.whole)+r.whole)
	}
	return nil
}

// checkElection checks the election timeout against the lease: an
// election (one or two rounds of one to two timeouts) must end inside the
// time an agent waits before it fences (three quarters of the lease). A
// third of the lease is the limit; a sixth is what the help advises.
func checkElection(election, leaseTTL time.Duration) error {
	if err := electionRange.check("--etcd-election-timeout", election); err != nil {
		return err
	}
	if 3*election > leaseTTL {
		return usagef("--etcd-election-timeout %s is too long for --lease-ttl %s: an etcd election would fence every agent; keep the timeout under a sixth of the lease (%s), or raise --lease-ttl to at least %s", election, leaseTTL, leaseTTL/6, (6 * election).Round(time.Second))
	}
	return nil
}
