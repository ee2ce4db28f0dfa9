package windows

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

var _ backend.LeaseFollower = (*Backend)(nil)

// leaseHold makes the virtual addresses this agent holds follow its lease,
// as the Linux backend does with kernel lifetimes: each is added with a
// valid lifetime shorter than the lease and extended at every renewal, so
// the address of a frozen or killed agent expires by itself, with no agent
// to take it down, before the other node may take the group over.
type leaseHold struct {
	b        *Backend
	lifetime time.Duration // 0: addresses never expire (no lease to follow)

	mu    sync.Mutex
	held  map[string]bool
	until time.Time
	wake  chan struct{}
	once  sync.Once
}

// lifetimeSec is an added address's lifetime in whole seconds (0: none).
func (l *leaseHold) lifetimeSec() int {
	if l.lifetime <= 0 {
		return 0
	}
	return max(int(l.lifetime/time.Second), 1)
}

func (l *leaseHold) hold(ip string) {
	if l.lifetime <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[string]bool{}
	}
	l.held[ip] = true
}

func (l *leaseHold) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, ip)
}

// LeaseRenewed implements backend.LeaseFollower: every held address gets
// its lifetime again. It only asks: the extension runs beside the renewal
// loop, which a slow PowerShell call must never delay.
func (b *Backend) LeaseRenewed() {
	// Lifetimes count whole seconds: half a second of room, as on Linux.
	b.lease.extendTo(time.Now().Add(b.lease.lifetime + 500*time.Millisecond))
}

// HoldUntil implements backend.LeaseFollower: a late renewal keeps the
// addresses up to until, never past it.
func (b *Backend) HoldUntil(until time.Time) { b.lease.extendTo(until) }

func (l *leaseHold) extendTo(until time.Time) {
	if l.lifetime <= 0 {
		return
	}
	l.once.Do(func() {
		l.wake = make(chan struct{}, 1)
		go l.run()
	})
	l.mu.Lock()
	l.until = until
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // one is pending; it takes the latest until
	}
}

// run extends the held addresses each time it is woken, with the latest
// deadline asked for.
func (l *leaseHold) run() {
	for range l.wake {
		l.mu.Lock()
		until := l.until
		ips := make([]string, 0, len(l.held))
		for ip := range l.held {
			ips = append(ips, ip)
		}
		l.mu.Unlock()
		slices.Sort(ips)
		l.extend(until, ips)
	}
}

// extend gives ips a lifetime that ends by until; one that expired since
// is let go, for the agent to add again, through its checks, if its group
// is still active here.
func (l *leaseHold) extend(until time.Time, ips []string) {
	secs := int(time.Until(until) / time.Second)
	if secs < 1 || len(ips) == 0 {
		return // whole seconds: their current lifetime ends sooner anyway
	}
	ctx, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	var res struct {
		Missing list[string] `json:"missing"`
		Late    bool         `json:"late"`
	}
	if err := runScript(ctx, l.b.scripts, scriptIP, ipRequest{Op: "extend", IPs: ips, ValidLifetimeSec: secs, ValidUntilUnixMs: until.UnixMilli()}, &res); err != nil {
		l.b.log.Error(err, "Could not extend the lifetime of the held addresses", "addresses", ips)
		return
	}
	if res.Late {
		// Waited on the host until under a second of lease was left:
		// their current lifetimes end sooner, as they must.
		l.b.log.V(1).Info("Lifetime extension ran too late to extend anything", "addresses", ips)
	}
	for _, ip := range res.Missing {
		l.b.log.Info("Address expired between lease renewals; left for the agent to add again if its group is still active here", "address", ip)
		l.release(ip)
	}
}

// deadline is when the lease could run out, as the agent last said; zero
// before it said (or with no lease to follow).
func (l *leaseHold) deadline() time.Time {
	if l.lifetime <= 0 {
		return time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// heldAddresses lists the addresses held, for tests.
func (l *leaseHold) heldAddresses() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for ip := range l.held {
		out = append(out, ip)
	}
	slices.Sort(out)
	return out
}
