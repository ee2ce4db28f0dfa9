// Package agent is the node agent's reconciler: for one resource group at a
// time it observes the node, computes the plan, executes it and reports
// status once. The loop around it (loop.go) de-duplicates keys, retries with
// backoff and resyncs on a timer; health.go runs the site checks.
package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/clock"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/health"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/parallel"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Source gives the agent the cluster's desired state: objects, which node
// serves each group, deletions in progress, suspended groups.
type Source interface {
	Desired(ctx context.Context) (*plan.Desired, error)
}

// Reporter publishes what the node knows: its report on each group, what it
// observed on the node, and the deletions it took out of service.
type Reporter interface {
	Report(ctx context.Context, r store.Report) error
	PublishObserved(ctx context.Context, o plan.Observed) error
	AckDeleted(ctx context.Context, refs []v1alpha1.Ref) error
}

// BatchReporter is a Reporter that writes many reports at once.
type BatchReporter interface {
	ReportBatch(ctx context.Context, reps []store.Report) error
}

// Result tells the loop when to come back.
type Result struct {
	RequeueAfter time.Duration
}

// ErrFenced is what a fenced node's Reporter answers at once: a node that
// cannot renew its lease writes nothing, so that no write waiting on a
// store without quorum holds up its take-down.
var ErrFenced = errors.New("fenced: not written until the lease is renewed")

// StalledError is a failure that retrying will not fix.
type StalledError struct{ Err error }

func (e *StalledError) Error() string { return e.Err.Error() }
func (e *StalledError) Unwrap() error { return e.Err }

// DeletingGroup is the key under which every deleted object is taken out of
// service, sites before addresses before volumes.
const DeletingGroup = "deleting"

// Agent reconciles one node.
type Agent struct {
	Node     string
	Backend  backend.Node
	Source   Source
	Reporter Reporter
	Clock    clock.Clock
	Log      logr.Logger
	// Recorder hears the agent's events: steps, failed steps, local
	// restarts, failover timings and fences.
	Recorder record.Recorder
	// Fence, when set, says whether the node is fenced, with a context
	// cancelled when it fences itself: bring-up steps stop there (a
	// bring-up in flight included); take-down steps go on. Its epoch
	// changes at every fence and return: a plan computed from a desired
	// state of another epoch brings nothing up.
	Fence func() (ctx context.Context, epoch uint64, fenced bool)
	// Metrics counts steps, reconciles, probes and take-over times; nil
	// counts nothing.
	Metrics *metrics.Set

	mu           sync.Mutex
	observedOnce bool
	nextDue      time.Time // the next health check, zero when none is due
	applied      map[v1alpha1.Ref]plan.Applied
	last         map[string]store.Report
	trackers     map[string]*health.Tracker // by site name
	unhealth     map[string]string          // group -> why, after local recovery failed
	failing      map[string]failedStep      // steps failing again and again, by target
	preflightOK  map[bool]bool              // needFTP -> the backend's prerequisites passed
	preparedFor  *graph.Graph               // the desired state the backend was last prepared for
	needFTP      bool                       // an FTP site is placed on this node, in preparedFor
	timings      *timings
	takedowns    *takedowns
	unsafe       string // why the node may not be given groups ("" when safe)
	unsafeGroup  string // the group whose take-down hung

	// pubMu guards the background publication of what the node has.
	pubMu      sync.Mutex
	pubNext    *publication
	pubRunning bool
	pubDone    chan struct{} // closed when the running publisher ends
}

func (a *Agent) init() {
	if a.applied == nil {
		a.applied = map[v1alpha1.Ref]plan.Applied{}
		a.last = map[string]store.Report{}
		a.trackers = map[string]*health.Tracker{}
		a.unhealth = map[string]string{}
		a.preflightOK = map[bool]bool{}
	}
	// Fields are set once: the loop reads them without the lock after.
	if a.Clock == nil {
		a.Clock = clock.Real{}
	}
	if a.Recorder == nil {
		a.Recorder = record.Discard
	}
	if a.takedowns == nil {
		a.takedowns = newTakedowns(a.Backend, a.Clock.Now)
	}
	if a.timings == nil {
		a.timings = newTimings(a.Node, a.Recorder, a.takedowns)
		a.timings.metrics = a.Metrics
	}
}

// Reconcile converges the node on the desired state of one group. It is
// level-triggered: it re-reads everything and never asks why it was called.
func (a *Agent) Reconcile(ctx context.Context, group string) (Result, error) {
	out := a.ReconcileBatch(ctx, []string{group})[group]
	return out.Result, out.Err
}

// Outcome is one group's result in a batch.
type Outcome struct {
	Result Result
	Err    error
}

// ReconcileBatch converges the node on the desired state of several groups
// with node-level work done once: one read of the desired state, one look
// at the node, one plan, one publication of what the node has, the
// reports written together. The groups' steps run in parallel as far as
// the backend allows (backend.Parallel), each group's in order: a node
// that must take down or bring up hundreds of groups does it in a
// fraction of the time, and no group waits behind another's slow step
// longer than it must.
func (a *Agent) ReconcileBatch(ctx context.Context, groups []string) map[string]Outcome {
	a.mu.Lock()
	a.init()
	a.mu.Unlock()
	out := make(map[string]Outcome, len(groups))
	began := a.Clock.Now()
	defer func() { a.Metrics.Reconciled(a.Node, a.Clock.Now().Sub(began)) }()
	fail := func(err error) map[string]Outcome {
		for _, g := range groups {
			out[g] = Outcome{Err: err}
		}
		return out
	}
	shared, err := a.Source.Desired(ctx)
	if err != nil {
		return fail(fmt.Errorf("read desired state: %w", err))
	}
	dd := *shared // the source's value is shared; only Applied is ours
	d := &dd
	a.mu.Lock()
	d.Applied = map[string]map[v1alpha1.Ref]plan.Applied{a.Node: maps.Clone(a.applied)}
	a.mu.Unlock()
	if err := a.prepare(ctx, d); err != nil {
		var reps []store.Report
		for _, g := range groups {
			reps = append(reps, store.Report{Node: a.Node, Group: g, Phase: store.PhaseStalled, Message: err.Error()})
		}
		if rerr := a.reportAll(ctx, reps); rerr != nil {
			return fail(rerr)
		}
		return fail(&StalledError{err})
	}
	looked := a.Clock.Now()
	read := looked.Sub(began)
	obs, err := plan.Observe(ctx, a.Node, a.Backend)
	if err != nil {
		return fail(err)
	}
	observed := a.Clock.Now()
	a.takedowns.observeTook(observed.Sub(looked))
	a.takedowns.observe(obs, d, a.Node)
	only := make(map[string]bool, len(groups))
	for _, g := range groups {
		only[g] = true
	}
	steps := map[string][]plan.Step{}
	for _, s := range plan.ComputeGroups(d, obs, only) {
		steps[s.Group] = append(steps[s.Group], s)
	}
	budget := a.takedowns.budget()
	var gate plan.Gate
	if a.Fence != nil {
		gate = func(s plan.Step) (context.Context, error) {
			if s.Action.TakesDown() {
				return nil, nil
			}
			// A plan read before a fence ended, or before one began, is
			// from a view the placement may have moved on from: the
			// group is looked at again with a fresh read.
			fctx, epoch, fenced := a.Fence()
			if fenced || epoch != d.Epoch {
				return nil, ErrFenced
			}
			return fctx, nil
		}
	}
	executing := a.Clock.Now()
	type run struct {
		down downTime
		err  error
	}
	runs := make(map[string]*run, len(groups))
	var wg sync.WaitGroup
	slots := make(chan struct{}, backend.ParallelismOf(a.Backend))
	// Take-downs first: a batch that frees one group and fills another
	// frees before it fills, as one plan would.
	order := slices.Clone(groups)
	slices.SortStableFunc(order, func(x, y string) int {
		return boolOrder(!takesDownFirst(steps[x])) - boolOrder(!takesDownFirst(steps[y]))
	})
	for _, g := range order {
		r := &run{}
		runs[g] = r
		if len(steps[g]) == 0 {
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		drift := a.drifted(d, g)
		go func() {
			defer func() { <-slots; wg.Done() }()
			r.err = a.execute(ctx, d, g, steps[g], gate, &r.down, drift)
		}()
	}
	wg.Wait()
	executed := a.Clock.Now()
	changed := false
	for _, st := range steps {
		changed = changed || len(st) > 0
	}
	a.publishSoon(ctx, d, obs, changed)
	reps := make([]store.Report, 0, len(groups))
	for _, group := range groups {
		r := runs[group]
		a.checkTakedown(group, r.down, budget, r.err)
		rep, runErr := a.outcome(d, group, r.err)
		if group == DeletingGroup && runErr == nil && a.Reporter != nil && len(d.Deleting) > 0 {
			var refs []v1alpha1.Ref
			for _, del := range d.Deleting {
				refs = append(refs, v1alpha1.RefOf(del.Object))
			}
			if err := a.Reporter.AckDeleted(ctx, refs); err != nil {
				runErr = fmt.Errorf("confirm deletions: %w", err)
			}
		}
		out[group] = Outcome{Err: runErr}
		reps = append(reps, rep)
	}
	a.proveStandbys(ctx, d, reps, func(group string) bool { return runs[group].err == nil })
	proved := a.Clock.Now()
	if err := a.reportAll(ctx, reps); err != nil {
		for _, g := range groups {
			if out[g].Err == nil {
				out[g] = Outcome{Err: err}
			}
		}
	}
	if changed {
		a.Log.V(1).Info("Reconciled batch", "node", a.Node, "groups", len(groups), "read", read.String(), "observe", observed.Sub(looked).String(),
			"plan", executing.Sub(observed).String(), "execute", executed.Sub(executing).String(), "outcome", proved.Sub(executed).String(), "report", a.Clock.Now().Sub(proved).String())
	}
	return out
}

func takesDownFirst(steps []plan.Step) bool {
	return len(steps) > 0 && steps[0].Action.TakesDown()
}

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

// execute runs one group's steps, recording each.
// drift says the group's steps repair drift: the group was converged here
// and neither its objects nor its placement changed since.
func (a *Agent) drifted(d *plan.Desired, group string) bool {
	a.mu.Lock()
	prev, ok := a.last[group]
	a.mu.Unlock()
	if !ok || prev.Phase != store.PhaseConverged || !prev.Decided.Equal(d.Decided[group].At) || strings.EqualFold(d.Active[group], a.Node) != prev.Active {
		return false
	}
	g, known := d.Graph.Group(group)
	if !known {
		return false
	}
	for _, m := range g.Members {
		if gen, ok := prev.Generations[m.String()]; !ok || gen != d.Graph.Object(m).Meta().Generation {
			return false
		}
	}
	return true
}

// execute runs one group's steps, recording each; drift says they repair
// drift (for the metrics).
func (a *Agent) execute(ctx context.Context, d *plan.Desired, group string, steps []plan.Step, gate plan.Gate, down *downTime, drift bool) error {
	stepStart := a.Clock.Now()
	return plan.ExecuteGated(ctx, a.Backend, steps, func(s plan.Step, err error) {
		now := a.Clock.Now()
		took := now.Sub(stepStart)
		stepStart = now
		if s.Action.TakesDown() && err == nil {
			a.takedowns.step(s.Action, took)
			down.add(s, took)
		}
		a.timings.step(d, s, err, now)
		a.Metrics.Step(a.Node, string(s.Action), err, drift)
		if err != nil {
			a.stepFailed(s, err, now)
		} else {
			a.mu.Lock()
			delete(a.failing, s.Target)
			a.mu.Unlock()
			record.Eventf(a.Recorder, store.Normal, v1alpha1.EventStep, s.Target, a.Node, "%s", s.String())
			a.Log.V(1).Info("Executed step", "node", a.Node, "group", group, "action", s.Action, "target", s.Target, "reason", s.Reason)
		}
	}, gate)
}

// outcome is the report on group after its steps ran (runErr), and the
// error the loop sees.
func (a *Agent) outcome(d *plan.Desired, group string, runErr error) (store.Report, error) {
	active := strings.EqualFold(d.Active[group], a.Node)
	rep := store.Report{Node: a.Node, Group: group, Active: active, Phase: store.PhaseConverged, Healthy: true, Decided: d.Decided[group].At}
	g, known := d.Graph.Group(group)
	switch {
	case runErr != nil && backend.NeedsHuman(runErr):
		rep.Phase, rep.Message = store.PhaseStalled, runErr.Error()
		runErr = &StalledError{runErr}
	case runErr != nil:
		rep.Phase, rep.Message = store.PhaseFailed, runErr.Error()
	case known && !d.Suspended[group]:
		a.mu.Lock()
		for _, m := range g.Members {
			a.applied[m] = plan.Applied{Generation: d.Graph.Object(m).Meta().Generation, Active: active}
		}
		a.mu.Unlock()
	}
	if known {
		rep.Generations = map[string]int64{}
		a.mu.Lock()
		for _, m := range g.Members {
			if ap, ok := a.applied[m]; ok {
				rep.Generations[m.String()] = ap.Generation
			}
		}
		if why, bad := a.unhealth[group]; bad && active {
			rep.Healthy, rep.Message = false, why
		}
		if !active {
			delete(a.unhealth, group)
		}
		a.mu.Unlock()
		rep.Released = !active && runErr == nil
	}
	return rep, runErr
}

// downTime sums the take-down steps of one reconcile.
type downTime struct {
	total, slowest time.Duration
	slow           plan.Step
}

func (d *downTime) add(s plan.Step, took time.Duration) {
	d.total += took
	if took > d.slowest {
		d.slowest, d.slow = took, s
	}
}

// checkTakedown makes overruns loud and self-correcting: a take-down past
// the node's budget raises the budget at once and is a Warning event; a
// take-down step that hung makes the node unsafe until a take-down of that
// group completes.
func (a *Agent) checkTakedown(group string, down downTime, budget time.Duration, runErr error) {
	if down.total > budget {
		a.takedowns.overrun(down.total)
		raised := a.takedowns.budget()
		a.Log.Info("Take-down ran past its budget; budget raised", "node", a.Node, "group", group, "took", down.total.String(), "budget", budget.String(), "slowestStep", down.slow.String(), "slowestTook", down.slowest.String(), "raisedTo", raised.String())
		record.Eventf(a.Recorder, store.Warning, v1alpha1.EventTakedownOverrun, "group/"+group, a.Node,
			"take-down of %s took %s, past the budget of %s; slowest step %s took %s; budget raised to %s", group, ms(down.total), budget, down.slow, ms(down.slowest), raised)
	}
	var hung *plan.HungError
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case errors.As(runErr, &hung) && hung.Step.Action.TakesDown():
		if a.unsafe == "" {
			record.Eventf(a.Recorder, store.Warning, v1alpha1.EventUnsafe, "node/"+a.Node, a.Node, "%s: no group is placed here until a take-down completes", hung.Error())
		}
		a.unsafe, a.unsafeGroup = hung.Error(), group
	case runErr == nil && a.unsafe != "" && group == a.unsafeGroup:
		a.unsafe, a.unsafeGroup = "", ""
		record.Eventf(a.Recorder, store.Normal, v1alpha1.EventSafe, "node/"+a.Node, a.Node, "the take-down of group %s completed: the node may serve groups again", group)
	}
}

// Safety is what the node publishes with its lease: its take-down budget,
// and why it is unsafe ("" when it is not).
func (a *Agent) Safety() (time.Duration, string) {
	a.mu.Lock()
	a.init()
	unsafe := a.unsafe
	a.mu.Unlock()
	return a.takedowns.budget(), unsafe
}

// publication is a publishObserved waiting to run.
type publication struct {
	d       *plan.Desired
	before  plan.Observed
	changed bool
}

// publishSoon publishes what the node has in the background, the latest
// batch's view winning over one still waiting. What a node has is for
// people (`get nodes`, `plan`), and looking at the node again and writing
// thousands of sites' state held up the reports and the next batch by a
// third of a second at thousands of groups: in a failover, the groups the
// next batch would bring up.
func (a *Agent) publishSoon(ctx context.Context, d *plan.Desired, before plan.Observed, changed bool) {
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	if a.pubNext != nil {
		changed = changed || a.pubNext.changed
	}
	a.pubNext = &publication{d: d, before: before, changed: changed}
	if a.pubRunning {
		return
	}
	a.pubRunning = true
	a.pubDone = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		for {
			a.pubMu.Lock()
			p := a.pubNext
			a.pubNext = nil
			if p == nil {
				a.pubRunning = false
				a.pubMu.Unlock()
				return
			}
			a.pubMu.Unlock()
			if err := a.publishObserved(ctx, p.d, p.before, p.changed); err != nil {
				a.Log.V(1).Info("Publish observed state", "node", a.Node, "error", err.Error())
			}
		}
	}(a.pubDone)
}

// published waits until nothing waits to be published.
func (a *Agent) published() {
	a.pubMu.Lock()
	done := a.pubDone
	a.pubMu.Unlock()
	if done != nil {
		<-done
	}
}

// publishObserved publishes what the node has: after steps changed it, and
// once at start (or until a publication succeeded).
func (a *Agent) publishObserved(ctx context.Context, d *plan.Desired, before plan.Observed, changed bool) error {
	if a.Reporter == nil {
		return nil
	}
	a.mu.Lock()
	once := a.observedOnce
	a.mu.Unlock()
	if !changed && once {
		return nil
	}
	obs := before
	if changed {
		after, err := plan.Observe(ctx, a.Node, a.Backend)
		if err != nil {
			return err
		}
		obs = after
		a.takedowns.observe(after, d, a.Node)
	}
	if err := a.Reporter.PublishObserved(ctx, obs); errors.Is(err, ErrFenced) {
		return nil
	} else if err != nil {
		return err
	}
	a.mu.Lock()
	a.observedOnce = true
	a.mu.Unlock()
	return nil
}

// reportAll writes the reports that changed, together when the Reporter
// takes a batch (one store transaction for a batch of groups, not one per
// group).
func (a *Agent) reportAll(ctx context.Context, reps []store.Report) error {
	if a.Reporter == nil {
		return nil
	}
	var changed []store.Report
	a.mu.Lock()
	for _, r := range reps {
		if prev, ok := a.last[r.Group]; !ok || !sameReport(prev, r) {
			changed = append(changed, r)
		}
	}
	a.mu.Unlock()
	if len(changed) == 0 {
		return nil
	}
	var err error
	if br, ok := a.Reporter.(BatchReporter); ok {
		err = br.ReportBatch(ctx, changed)
	} else {
		for _, r := range changed {
			if err = a.Reporter.Report(ctx, r); err != nil {
				break
			}
		}
	}
	if errors.Is(err, ErrFenced) {
		return nil // written once the node is back; the take-down goes on
	} else if err != nil {
		return fmt.Errorf("report status of %d group(s): %w", len(changed), err)
	}
	a.mu.Lock()
	for _, r := range changed {
		a.last[r.Group] = r
	}
	a.mu.Unlock()
	return nil
}

func sameReport(a, b store.Report) bool {
	return a.Node == b.Node && a.Group == b.Group && a.Decided.Equal(b.Decided) && a.Active == b.Active && a.Phase == b.Phase &&
		a.Healthy == b.Healthy && a.Message == b.Message && a.Released == b.Released && maps.Equal(a.Generations, b.Generations) &&
		a.StandbyChecked == b.StandbyChecked && slices.Equal(a.StandbyProblems, b.StandbyProblems)
}

// proveStandbys proves, for every group of the pass this node stands by
// for, that it could take the group over, side by side (a backend's checks
// wait on the network or on PowerShell; one after another they would grow
// with the groups).
// ran says a group's steps all succeeded in this pass.
func (a *Agent) proveStandbys(ctx context.Context, d *plan.Desired, reps []store.Report, ran func(group string) bool) {
	parallel.Each(len(reps), standbyProofs, func(i int) {
		if rep := &reps[i]; !rep.Active && ran(rep.Group) {
			rep.StandbyChecked, rep.StandbyProblems = a.proveStandby(ctx, d, rep.Group)
		}
	})
}

// standbyProofs bounds the standby proofs running at once.
const standbyProofs = 16

// proveStandby asks the backend whether this node could take group over
// now (when the node is in its placement and the backend can tell): at
// every reconcile of the group here, which is every change and resync, no
// polling of its own.
func (a *Agent) proveStandby(ctx context.Context, d *plan.Desired, group string) (bool, []string) {
	sc, ok := a.Backend.(backend.StandbyChecker)
	g, known := d.Graph.Group(group)
	if !ok || !known || !slices.ContainsFunc(g.Placement.Nodes, func(n string) bool { return strings.EqualFold(n, a.Node) }) {
		return false, nil
	}
	need := backend.StandbyNeeds{Volumes: map[string]backend.Volume{}, Features: []string{"Web-Server"}, ServedBy: d.Active[group]}
	ftp := false
	for _, m := range g.Members {
		switch o := d.Graph.Object(m).(type) {
		case *v1alpha1.IISSite:
			for _, b := range plan.RenderSite(o, d.Graph, a.Node).Bindings {
				if b.CertHash != "" {
					need.Certificates = append(need.Certificates, b)
				}
				ftp = ftp || b.Protocol == string(v1alpha1.ProtocolFTP)
			}
		case *v1alpha1.VolumeResource:
			need.Volumes[o.Metadata.Name] = plan.RenderVolume(o)
		case *v1alpha1.IPResource:
			if addr, ok := plan.RenderAddress(o, a.Node); ok {
				need.Addresses = append(need.Addresses, addr)
			}
		}
	}
	if ftp {
		need.Features = append(need.Features, "Web-Ftp-Server")
	}
	return true, sc.CheckStandby(ctx, need)
}

// IsStalled reports whether err needs a human.
func IsStalled(err error) bool {
	var s *StalledError
	return errors.As(err, &s)
}

// failedStep is a step that keeps failing with one error.
type failedStep struct {
	message string
	count   int
	since   time.Time
}

// stepFailed records a failed step. The same step failing again with the
// same error is counted, not recorded each time: an event at the 1st,
// 2nd, 4th, 8th... failure, with the count, so a step retried for an hour
// leaves a dozen events, not thousands.
func (a *Agent) stepFailed(s plan.Step, err error, now time.Time) {
	msg := err.Error()
	a.mu.Lock()
	if a.failing == nil {
		a.failing = map[string]failedStep{}
	}
	f := a.failing[s.Target]
	if f.message != msg {
		f = failedStep{message: msg, since: now}
	}
	f.count++
	a.failing[s.Target] = f
	a.mu.Unlock()
	if f.count&(f.count-1) != 0 {
		return // not a power of two
	}
	e := store.Event{Type: store.Warning, Reason: v1alpha1.EventStepFailed, Object: s.Target, Node: a.Node, Message: msg}
	if f.count > 1 {
		e.Count = f.count
		e.Message = fmt.Sprintf("%s (failed %d times since %s)", msg, f.count, f.since.Format("15:04:05"))
	}
	a.Recorder.Record(e)
}
