// Package fake is an in-memory backend for tests: it keeps the state a real
// node would have and records every call, so tests assert "which steps ran".
// It does not listen on sockets; the sim package does.
package fake

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// Node is a recording in-memory node.
type Node struct {
	mu    sync.Mutex
	Sites map[int64]*backend.Site
	Addrs map[string]backend.Address
	Vols  map[string]backend.Volume
	// Calls lists every mutating call as "Verb arg".
	Calls []string
	// Fail makes the call whose record starts with a key fail with the error.
	Fail map[string]error
	// ProbeErr is returned by Probe for a binding's endpoint.
	ProbeErr map[string]error
	// Delay makes the call (a take-down or AddAddress) whose record starts
	// with a key take that long (or until its context ends): a slow or hung
	// step.
	Delay map[string]time.Duration
	// Cost and Timeout are what StepCost and StepTimeout answer (1 ms and
	// 30 s when zero).
	Cost, Timeout time.Duration
	// Parallel is what Parallelism answers (one group at a time when
	// zero); InFlight and MaxInFlight count delayed calls running at once.
	Parallel              int
	inFlight, maxInFlight int
}

// Parallelism implements backend.Parallel.
func (n *Node) Parallelism() int { return n.Parallel }

// MaxInFlight is the most delayed calls that ran at once.
func (n *Node) MaxInFlight() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.maxInFlight
}

var _ backend.StepCoster = (*Node)(nil)

// StepCost implements backend.StepCoster.
func (n *Node) StepCost() time.Duration {
	if n.Cost > 0 {
		return n.Cost
	}
	return time.Millisecond
}

// StepTimeout implements backend.StepCoster.
func (n *Node) StepTimeout() time.Duration {
	if n.Timeout > 0 {
		return n.Timeout
	}
	return 30 * time.Second
}

// SetDelay makes calls starting with prefix take d (0: no delay); safe
// while an agent runs.
func (n *Node) SetDelay(prefix string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.Delay == nil {
		n.Delay = map[string]time.Duration{}
	}
	n.Delay[prefix] = d
}

// wait sleeps the delay of call, or until ctx ends.
func (n *Node) wait(ctx context.Context, call string) error {
	n.mu.Lock()
	var d time.Duration
	for k, v := range n.Delay {
		if strings.HasPrefix(call, k) {
			d = v
		}
	}
	if d == 0 {
		n.mu.Unlock()
		return nil
	}
	n.inFlight++
	n.maxInFlight = max(n.maxInFlight, n.inFlight)
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.inFlight--
		n.mu.Unlock()
	}()
	return backend.Sleep(ctx, d)
}

var _ backend.Node = (*Node)(nil)

// New returns an empty node.
func New() *Node {
	return &Node{Sites: map[int64]*backend.Site{}, Addrs: map[string]backend.Address{}, Vols: map[string]backend.Volume{}, Fail: map[string]error{}, ProbeErr: map[string]error{}}
}

func (n *Node) record(call string) error {
	n.Calls = append(n.Calls, call)
	for k, err := range n.Fail {
		if strings.HasPrefix(call, k) {
			return err
		}
	}
	return nil
}

// SetFail makes calls starting with prefix fail with err (nil: succeed
// again); safe while an agent runs.
func (n *Node) SetFail(prefix string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil {
		delete(n.Fail, prefix)
	} else {
		n.Fail[prefix] = err
	}
}

// TakeCalls returns and clears the recorded calls.
func (n *Node) TakeCalls() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.Calls
	n.Calls = nil
	return c
}

func (n *Node) site(name string) (*backend.Site, error) {
	for _, s := range n.Sites {
		if strings.EqualFold(s.Name, name) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("site %q: %w", name, backend.ErrNotFound)
}

// ListSites returns the sites.
func (n *Node) ListSites(context.Context) ([]backend.Site, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []backend.Site
	for _, s := range n.Sites {
		c := *s
		c.Bindings = slices.Clone(s.Bindings)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// CreateSite creates a stopped site.
func (n *Node) CreateSite(_ context.Context, cfg backend.SiteConfig) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.record("CreateSite " + cfg.Name); err != nil {
		return err
	}
	if _, ok := n.Sites[cfg.ID]; ok {
		return backend.ErrExists
	}
	cfg.Bindings = slices.Clone(cfg.Bindings)
	n.Sites[cfg.ID] = &backend.Site{SiteConfig: cfg, State: backend.SiteStopped}
	return nil
}

// UpdateBindings applies a binding set difference.
func (n *Node) UpdateBindings(_ context.Context, name string, add, remove []backend.Binding) error {
	return n.edit("UpdateBindings "+name, name, func(s *backend.Site) {
		drop := map[string]bool{}
		for _, b := range remove {
			drop[b.Key()] = true
		}
		var next []backend.Binding
		for _, b := range s.Bindings {
			if !drop[b.Key()] {
				next = append(next, b)
			}
		}
		s.Bindings = append(next, add...)
		backend.SortBindings(s.Bindings)
	})
}

// SetPhysicalPath sets the path.
func (n *Node) SetPhysicalPath(_ context.Context, name, p string) error {
	return n.edit("SetPhysicalPath "+name, name, func(s *backend.Site) { s.PhysicalPath = p })
}

// SetAppPool sets the pool.
func (n *Node) SetAppPool(_ context.Context, name, p string) error {
	return n.edit("SetAppPool "+name, name, func(s *backend.Site) { s.AppPool = p })
}

// RenameSite renames.
func (n *Node) RenameSite(_ context.Context, from, to string) error {
	return n.edit("RenameSite "+from, from, func(s *backend.Site) { s.Name = to })
}

// SetAutoStart sets serverAutoStart.
func (n *Node) SetAutoStart(_ context.Context, name string, on bool) error {
	return n.edit("SetAutoStart "+name, name, func(s *backend.Site) { s.AutoStart = on })
}

// StartSite starts.
func (n *Node) StartSite(_ context.Context, name string) error {
	return n.edit("StartSite "+name, name, func(s *backend.Site) { s.State = backend.SiteStarted })
}

// StopSite stops.
func (n *Node) StopSite(ctx context.Context, name string) error {
	if err := n.wait(ctx, "StopSite "+name); err != nil {
		return err
	}
	return n.edit("StopSite "+name, name, func(s *backend.Site) { s.State = backend.SiteStopped })
}

// DeleteSite deletes.
func (n *Node) DeleteSite(_ context.Context, name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.record("DeleteSite " + name); err != nil {
		return err
	}
	s, err := n.site(name)
	if err != nil {
		return err
	}
	delete(n.Sites, s.ID)
	return nil
}

func (n *Node) edit(call, name string, f func(*backend.Site)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.record(call); err != nil {
		return err
	}
	s, err := n.site(name)
	if err != nil {
		return err
	}
	f(s)
	return nil
}

// ListAddresses returns the addresses.
func (n *Node) ListAddresses(context.Context) ([]backend.Address, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []backend.Address
	for _, a := range n.Addrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CIDR < out[j].CIDR })
	return out, nil
}

// AddAddress adds.
func (n *Node) AddAddress(ctx context.Context, a backend.Address) error {
	if err := n.wait(ctx, "AddAddress "+a.CIDR); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.record("AddAddress " + a.CIDR); err != nil {
		return err
	}
	n.Addrs[a.IP()] = a
	return nil
}

// RemoveAddress removes.
func (n *Node) RemoveAddress(ctx context.Context, a backend.Address) error {
	if err := n.wait(ctx, "RemoveAddress "+a.CIDR); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.record("RemoveAddress " + a.CIDR); err != nil {
		return err
	}
	delete(n.Addrs, a.IP())
	return nil
}

// ListVolumes returns the volumes.
func (n *Node) ListVolumes(context.Context) ([]backend.Volume, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []backend.Volume
	for _, v := range n.Vols {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out, nil
}

// BringOnline brings a volume online.
func (n *Node) BringOnline(_ context.Context, id backend.VolumeID, root string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.record("BringOnline " + id.String()); err != nil {
		return err
	}
	n.Vols[id.String()] = backend.Volume{ID: id, Root: root, Online: true}
	return nil
}

// TakeOffline takes a volume offline.
func (n *Node) TakeOffline(ctx context.Context, id backend.VolumeID) error {
	if err := n.wait(ctx, "TakeOffline "+id.String()); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.record("TakeOffline " + id.String()); err != nil {
		return err
	}
	v := n.Vols[id.String()]
	v.ID, v.Online = id, false
	n.Vols[id.String()] = v
	return nil
}

// Probe answers from ProbeErr.
func (n *Node) Probe(_ context.Context, b backend.Binding, _ string, _ time.Duration) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ProbeErr[b.Endpoint()]
}
