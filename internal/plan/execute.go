package plan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// Execute runs one step on a node's backend.
func Execute(ctx context.Context, n backend.Node, s Step) error {
	var err error
	switch s.Action {
	case VolumeOnline:
		err = n.BringOnline(ctx, s.Volume.ID, s.Volume.Root)
	case VolumeOffline:
		err = n.TakeOffline(ctx, s.Volume.ID)
	case AddAddress:
		err = n.AddAddress(ctx, *s.Address)
	case RemoveAddress:
		err = n.RemoveAddress(ctx, *s.Address)
	case CreateSite:
		err = n.CreateSite(ctx, *s.Site)
	case RenameSite:
		err = n.RenameSite(ctx, s.SiteName, s.NewName)
	case UpdateBindings:
		err = n.UpdateBindings(ctx, s.SiteName, s.Add, s.Remove)
	case SetPhysicalPath:
		err = n.SetPhysicalPath(ctx, s.SiteName, s.Value)
	case SetAppPool:
		err = n.SetAppPool(ctx, s.SiteName, s.Value)
	case SetAutoStart:
		err = n.SetAutoStart(ctx, s.SiteName, s.AutoStart)
	case StartSite:
		err = n.StartSite(ctx, s.SiteName)
	case StopSite:
		err = n.StopSite(ctx, s.SiteName)
	case DeleteSite:
		err = n.DeleteSite(ctx, s.SiteName)
	default:
		return fmt.Errorf("unknown action %q", s.Action)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.String(), err)
	}
	return nil
}

// Observe reads a node's state through its backend.
func Observe(ctx context.Context, node string, n backend.Node) (Observed, error) {
	// The three reads are independent: on a backend where each call is
	// slow (a Windows step), a look costs one call's time, not three.
	o := Observed{Node: node}
	var siteErr, addrErr, volErr error
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); o.Sites, siteErr = n.ListSites(ctx) }()
	go func() { defer wg.Done(); o.Addresses, addrErr = n.ListAddresses(ctx) }()
	go func() { defer wg.Done(); o.Volumes, volErr = n.ListVolumes(ctx) }()
	wg.Wait()
	switch {
	case siteErr != nil:
		return o, fmt.Errorf("list sites on %s: %w", node, siteErr)
	case addrErr != nil:
		return o, fmt.Errorf("list addresses on %s: %w", node, addrErr)
	case volErr != nil:
		return o, fmt.Errorf("list volumes on %s: %w", node, volErr)
	}
	return o, nil
}

// configActions change a site's configuration and can be committed together.
var configActions = map[Action]bool{UpdateBindings: true, SetPhysicalPath: true, SetAppPool: true, SetAutoStart: true}

// ExecuteGroups runs steps group by group, up to parallel groups at once,
// each group's steps in order (ExecuteAll); a group that fails stops only
// itself. done may be called from several goroutines at once. A node that
// must take down hundreds of groups (at boot, or fenced) does it in a
// fraction of the time one after the other took.
func ExecuteGroups(ctx context.Context, n backend.Node, steps []Step, parallel int, done func(Step, error)) error {
	var order []string
	byGroup := map[string][]Step{}
	for _, s := range steps {
		if _, ok := byGroup[s.Group]; !ok {
			order = append(order, s.Group)
		}
		byGroup[s.Group] = append(byGroup[s.Group], s)
	}
	slots := make(chan struct{}, max(parallel, 1))
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, g := range order {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := ExecuteAll(ctx, n, byGroup[g], done); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ExecuteAll runs steps in order and stops at the first failure. On a
// backend.SiteUpdater, consecutive configuration steps of one site are one
// change, committed together. done is called for every step that ran (with
// the error of its batch).
func ExecuteAll(ctx context.Context, n backend.Node, steps []Step, done func(Step, error)) error {
	return ExecuteGated(ctx, n, steps, done, nil)
}

// Gate is asked before each step (or batch of config steps) of a plan: a
// non-nil error stops the plan there; a non-nil context also bounds the
// step (cancelled, the step is cut off). A fenced node gates its bring-up
// steps, so that a bring-up in flight stops when the node fences itself.
type Gate func(s Step) (context.Context, error)

// groupActions are a group's take-down and bring-up steps, which a
// backend.GroupRunner runs as one call.
var groupActions = map[Action]bool{StopSite: true, RemoveAddress: true, VolumeOffline: true, VolumeOnline: true, AddAddress: true, StartSite: true}

// ExecuteGated is ExecuteAll with a gate before each step (or batch).
func ExecuteGated(ctx context.Context, n backend.Node, steps []Step, done func(Step, error), gate Gate) error {
	su, batching := n.(backend.SiteUpdater)
	gr, grouping := n.(backend.GroupRunner)
	timeout := DefaultStepTimeout
	if c, ok := n.(backend.StepCoster); ok {
		timeout = c.StepTimeout()
	}
	for i := 0; i < len(steps); {
		j := i + 1
		switch {
		case batching && configActions[steps[i].Action]:
			for j < len(steps) && configActions[steps[j].Action] && steps[j].SiteName == steps[i].SiteName && steps[j].Node == steps[i].Node {
				j++
			}
		case grouping && groupActions[steps[i].Action]:
			for j < len(steps) && groupActions[steps[j].Action] && steps[j].Group == steps[i].Group && steps[j].Node == steps[i].Node {
				j++
			}
		}
		var err error
		stepParent, release := ctx, func() {}
		if gate != nil {
			gctx, gerr := gate(steps[i])
			if gerr != nil {
				for _, s := range steps[i:j] {
					if done != nil {
						done(s, gerr)
					}
				}
				return fmt.Errorf("%s: %w", steps[i].String(), gerr)
			}
			if gctx != nil {
				stepParent, release = mergeCancel(ctx, gctx)
			}
		}
		// Each call has its own deadline: a hung step is cut off, never
		// waited on for ever. A group's steps in one call have a step's
		// deadline each.
		// ran counts a group call's steps that completed: all on success,
		// those before the failing one otherwise (0 for other calls).
		ran := 0
		grouped := j-i > 1 && !configActions[steps[i].Action]
		var sctx context.Context
		var cancel context.CancelFunc
		switch {
		case j-i > 1 && !grouped:
			sctx, cancel = context.WithTimeout(stepParent, timeout)
			err = su.UpdateSite(sctx, steps[i].SiteName, merge(steps[i:j]))
			if err != nil {
				err = fmt.Errorf("%s: %w", steps[i].String(), err)
			}
		case grouped:
			sctx, cancel = context.WithTimeout(stepParent, time.Duration(j-i)*timeout)
			ran, err = gr.RunGroup(sctx, groupOps(steps[i:j]))
			if err != nil {
				ran = min(max(ran, 0), j-i-1)
				err = fmt.Errorf("%s: %w", steps[i+ran].String(), err)
			}
		default:
			sctx, cancel = context.WithTimeout(stepParent, timeout)
			err = Execute(sctx, n, steps[i])
		}
		if err != nil && sctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = &HungError{Step: steps[i+ran], After: timeout, Err: err}
		}
		cancel()
		release()
		// Every step of the call is reported with its outcome; a group
		// call's steps after the failing one did not run and are not.
		for k, s := range steps[i:j] {
			if done == nil {
				break
			}
			if k < ran {
				done(s, nil)
				continue
			}
			done(s, err)
			if err != nil && grouped {
				break
			}
		}
		if err != nil {
			return err
		}
		i = j
	}
	return nil
}

// groupOps are steps as a backend.GroupRunner takes them.
func groupOps(steps []Step) []backend.GroupOp {
	ops := make([]backend.GroupOp, len(steps))
	for k, s := range steps {
		ops[k] = backend.GroupOp{Action: string(s.Action), Site: s.SiteName, Address: s.Address, Volume: s.Volume}
	}
	return ops
}

// mergeCancel is ctx, also cancelled when other is; release frees it.
func mergeCancel(ctx, other context.Context) (context.Context, func()) {
	merged, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(other, func() { cancel(context.Cause(other)) })
	return merged, func() { stop(); cancel(nil) }
}

// DefaultStepTimeout is the deadline of a step of a backend that does not
// set one (backend.StepCoster).
const DefaultStepTimeout = 30 * time.Second

// HungError is a step cut off at its deadline.
type HungError struct {
	Step  Step
	After time.Duration
	Err   error
}

func (e *HungError) Error() string {
	return fmt.Sprintf("%s: hung, cut off after %s", e.Step, e.After)
}

func (e *HungError) Unwrap() error { return e.Err }

func merge(steps []Step) backend.SiteChange {
	var c backend.SiteChange
	for _, s := range steps {
		switch s.Action {
		case UpdateBindings:
			c.Add, c.Remove = append(c.Add, s.Add...), append(c.Remove, s.Remove...)
		case SetPhysicalPath:
			v := s.Value
			c.PhysicalPath = &v
		case SetAppPool:
			v := s.Value
			c.AppPool = &v
		case SetAutoStart:
			v := s.AutoStart
			c.AutoStart = &v
		}
	}
	return c
}
