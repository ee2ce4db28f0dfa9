package gitops

// Git sources: the repositories GitSource objects declare, fetched and
// applied at the commit each one's ref resolves to. Only the placement
// leader does it, and it resolves the ref itself, so a new leader applies
// the commit the old one would have: the cluster never follows one node's
// stale checkout back in time.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/gitrev"
	"github.com/sitekeeper/sitekeeper/internal/notify"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// GitStore is what the git sources' controller reads and writes.
type GitStore interface {
	Store
	GitSources(ctx context.Context) (map[string]v1alpha1.GitSource, error)
	Statuses(ctx context.Context) (map[v1alpha1.Ref]v1alpha1.Status, error)
}

// GitSources keeps every GitSource applied.
type GitSources struct {
	Store GitStore
	// Node is this node's name, recorded as the applier.
	Node string
	// IsLeader tells whether this process may fetch and apply; nil means
	// always.
	IsLeader func() bool
	Log      logr.Logger
	// Tick is how often Run looks for a due fetch or, with a store that
	// does not tell of changes, reads the specs for a reconcile request
	// (default 100 ms: a source fetched every second is fetched within a
	// tenth of a second of being due).
	Tick time.Duration
	// HTTP sends the webhooks (default: a client with a 10 s timeout).
	HTTP *http.Client
	// Recorder, when set, also hears each event the sources write.
	Recorder record.Recorder

	mu      sync.Mutex
	sources map[string]*tracked
	// owners is, for each object name a git source applied, the source's
	// spec, as of the last pass: a failover of a group is told to the
	// webhooks of the source that applied it.
	owners map[string]v1alpha1.GitSource
	wg     sync.WaitGroup
}

// tracked is what the controller keeps of one source between passes.
type tracked struct {
	repo *repository
	rec  *Reconciler
	next time.Time
	// checked is when the applied revision's health was last read;
	// degradedFor the revision already reported Degraded.
	checked     time.Time
	degradedFor string
	// seen is when a pass last looked at the source; suspended whether
	// it was suspended then (its fetches are not due).
	seen      time.Time
	suspended bool
}

// healthEvery is how often a source's applied revision is checked for
// objects still not Ready after the source's timeout.
const healthEvery = 5 * time.Second

// specWatcher is a GitStore that tells when the GitSource specs change
// (the channel closes when it stops telling; store.Follow watches again).
type specWatcher interface {
	Changes(ctx context.Context, families ...store.Family) <-chan struct{}
}

// rereadEvery bounds how long the specs go unread when the store tells of
// their changes: a signal lost with a broken watch costs at most this.
const rereadEvery = 10 * time.Second

// Run keeps the sources applied until ctx ends. It looks every Tick for
// something to do, and reads the store only when there is: a change to
// the specs (when the store tells of them), a fetch or a health check
// that is due, a leadership just taken, a failed pass, or rereadEvery
// gone by. Reading the specs at every Tick was a tenth of a node's idle
// CPU with nothing declared.
func (c *GitSources) Run(ctx context.Context) error {
	tick := c.Tick
	if tick <= 0 {
		tick = 100 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	defer c.wg.Wait()
	// Watched before the first read, so that no later change is missed.
	var changed <-chan struct{}
	if w, ok := c.Store.(specWatcher); ok {
		changed = store.Signals(ctx,
			func() <-chan struct{} { return w.Changes(ctx, store.FamilyGitSources) },
			func() <-chan time.Time { return time.After(time.Second) })
	}
	read := true // a read is owed: the specs are not known yet
	var lastRead time.Time
	for {
		if c.IsLeader == nil || c.IsLeader() {
			if read || changed == nil || c.due(time.Now()) || time.Since(lastRead) >= rereadEvery {
				lastRead = time.Now()
				err := c.Pass(ctx)
				read = err != nil
				if err != nil && ctx.Err() == nil {
					c.Log.Error(err, "Git sources not read")
				}
			}
		} else {
			c.forget()
			read = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-changed:
			read = true
		}
	}
}

// due tells whether a source's fetch or health check is due at now.
func (c *GitSources) due(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tr := range c.sources {
		if (!tr.suspended && !now.Before(tr.next)) || now.Sub(tr.seen) >= healthEvery {
			return true
		}
	}
	return false
}

// forget drops the fetched repositories when this process stops leading:
// a later leadership fetches afresh, from what the remote holds then.
func (c *GitSources) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources = nil
}

// Pass fetches and applies every source that is due or asked for.
func (c *GitSources) Pass(ctx context.Context) error {
	specs, err := c.Store.GitSources(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(specs))
	for name := range specs {
		names = append(names, name)
	}
	sort.Strings(names)
	c.mu.Lock()
	if c.sources == nil {
		c.sources = map[string]*tracked{}
	}
	for name := range c.sources {
		if _, ok := specs[name]; !ok {
			delete(c.sources, name)
		}
	}
	c.mu.Unlock()
	var errs []error
	owners := map[string]v1alpha1.GitSource{}
	for _, name := range names {
		gs := specs[name]
		gs.Default()
		if err := c.syncIfDue(ctx, gs, owners); err != nil {
			errs = append(errs, fmt.Errorf("GitSource %s: %w", name, err))
		}
	}
	c.mu.Lock()
	c.owners = owners
	c.mu.Unlock()
	return errors.Join(errs...)
}

// Record hears the placement leader's events: a failover of a group that
// a git source applied is told to that source's webhooks.
func (c *GitSources) Record(e store.Event) {
	group, ok := strings.CutPrefix(e.Object, "group/")
	if e.Reason != v1alpha1.ReasonFailedOver || !ok {
		return
	}
	c.mu.Lock()
	gs, owned := c.owners[group]
	c.mu.Unlock()
	if owned {
		c.tell(gs, v1alpha1.NotifyFailover, "", e.Object, e.Message)
	}
}

// checkHealth reports, once per revision, an applied revision whose
// objects are not all Ready after the source's timeout: a Warning event
// and the degraded webhooks.
func (c *GitSources) checkHealth(ctx context.Context, gs v1alpha1.GitSource, prev store.Source, tr *tracked) {
	if prev.Revision == "" || tr.degradedFor == prev.Revision || time.Since(tr.checked) < healthEvery {
		return
	}
	tr.checked = time.Now()
	statuses, err := c.Store.Statuses(ctx)
	if err != nil {
		c.Log.Info("Cannot read the status of a git source's objects", "source", gs.Metadata.Name, "error", err.Error())
		return
	}
	state, notReady := prev.Health(statuses, time.Now(), gs.Spec.Timeout.Duration)
	if state != store.SourceDegraded {
		return
	}
	tr.degradedFor = prev.Revision
	msg := fmt.Sprintf("revision %s was applied %s ago and is not served: not Ready: %s", prev.Revision, time.Since(prev.AppliedAt).Round(time.Second), strings.Join(notReady, ", "))
	c.event(ctx, store.Event{Type: store.Warning, Reason: v1alpha1.EventSourceDegraded, Object: "source/" + gs.Metadata.Name, Node: c.Node, Message: msg})
	c.tell(gs, v1alpha1.NotifyDegraded, prev.Revision, "", msg)
}

func (c *GitSources) syncIfDue(ctx context.Context, gs v1alpha1.GitSource, owners map[string]v1alpha1.GitSource) error {
	name := gs.Metadata.Name
	prev, _, err := c.Store.Source(ctx, name)
	if err != nil {
		return err
	}
	for _, e := range prev.Inventory {
		_, obj, _ := strings.Cut(e.Ref, "/")
		owners[obj] = gs
	}
	token := gs.Metadata.Annotations[v1alpha1.AnnotationReconcile]
	requested := token != "" && (prev.Git == nil || prev.Git.HandledReconcile != token)
	c.mu.Lock()
	tr := c.sources[name]
	if tr == nil {
		tr = &tracked{}
		c.sources[name] = tr
	}
	due := time.Now().After(tr.next)
	tr.seen, tr.suspended = time.Now(), gs.Spec.Suspend
	c.mu.Unlock()
	c.checkHealth(ctx, gs, prev, tr)
	if gs.Spec.Suspend || (!due && !requested) {
		return nil
	}
	tr.next = time.Now().Add(gs.Spec.Interval.Duration)
	return c.sync(ctx, gs, prev, tr, token)
}

// sync fetches gs, resolves its ref and applies that commit's manifests
// when they are not what is applied already.
func (c *GitSources) sync(ctx context.Context, gs v1alpha1.GitSource, prev store.Source, tr *tracked, token string) error {
	name := gs.Metadata.Name
	status := store.GitStatus{URL: gs.Spec.URL, Ref: gs.Spec.Ref.String(), HandledReconcile: token}
	if prev.Git != nil {
		status.History, status.ResolvedAt, status.Resolved = prev.Git.History, prev.Git.ResolvedAt, prev.Git.Resolved
	}
	if tr.repo == nil || tr.repo.url != gs.Spec.URL {
		repo, err := newRepository(gs.Spec.URL)
		if err != nil {
			return c.fetchFailed(ctx, gs, prev, status, err)
		}
		tr.repo = repo
	}
	if err := tr.repo.fetch(ctx, gs.Spec.Credentials); err != nil {
		return c.fetchFailed(ctx, gs, prev, status, err)
	}
	commit, err := tr.repo.resolve(gs.Spec.Ref)
	if err != nil {
		return c.fetchFailed(ctx, gs, prev, status, err)
	}
	if commit != status.Resolved {
		status.Resolved, status.ResolvedAt = commit, time.Now().UTC().Truncate(time.Second)
	}
	rev := "git:" + commit
	if tr.rec == nil {
		tr.rec = &Reconciler{Store: c.Store, Node: c.Node, Log: c.Log, Recorder: c.Recorder}
	}
	tr.rec.Source = Source{Name: name, Dir: display(gs), Prune: *gs.Spec.Prune}
	tr.rec.Git = &status
	if prev.Revision == rev && prev.LastAttempt.Error == "" && !strings.HasSuffix(token, ";allow-rollback") && tr.rec.UpToDate(ctx, prev, rev) {
		// Nothing new in the repository and nothing changed in the store:
		// only the status, when it moved.
		return c.putStatus(ctx, name, prev, status)
	}
	files, err := tr.repo.manifests(commit, gs.Spec.Path)
	if err != nil {
		return c.fetchFailed(ctx, gs, prev, status, err)
	}
	rollback := gs.Spec.AllowRollback || strings.HasSuffix(token, ";allow-rollback")
	forward := func(applied string) error {
		return c.forward(name, tr.repo, applied, commit, rollback)
	}
	_, applyErr := tr.rec.ApplyChangeSet(ctx, files, gitrev.Revision{ID: rev, Commit: commit}, forward)
	switch {
	case applyErr != nil && (prev.LastAttempt.Revision != rev || prev.LastAttempt.Error == ""):
		c.tell(gs, v1alpha1.NotifyRefused, rev, "", applyErr.Error())
	case applyErr == nil && prev.Revision != rev:
		c.tell(gs, v1alpha1.NotifyApplied, rev, "", fmt.Sprintf("revision %s of %s applied", rev, display(gs)))
	}
	return applyErr
}

// forward refuses a commit that would take the cluster back from the
// applied one: an ancestor of it, or history unrelated to it.
func (c *GitSources) forward(name string, repo *repository, applied, commit string, rollback bool) error {
	a := gitrev.CommitOf(applied)
	if a == "" || a == commit || rollback {
		return nil
	}
	rel, err := gitrev.RelateIn(repo.repo, a, commit)
	if err != nil {
		return fmt.Errorf("cannot tell how commit %s stands to the applied %s: %w", short(commit), short(a), err)
	}
	switch rel {
	case gitrev.Forward, gitrev.Rewritten:
		return nil
	case gitrev.Backward:
		return fmt.Errorf("commit %s is older than the applied %s (an ancestor of it: a force-push or a reset of the ref?): refusing to go back; run `sitekeeper source reconcile %s --allow-rollback` to go back on purpose, or set spec.allowRollback", short(commit), short(a), name)
	case gitrev.Missing:
		return fmt.Errorf("the applied commit %s is no longer in the repository, so commit %s cannot be shown to be newer: refusing; run `sitekeeper source reconcile %s --allow-rollback` to apply it on purpose", short(a), short(commit), name)
	}
	return fmt.Errorf("commit %s and the applied %s share no history (another repository, an orphan branch): refusing; run `sitekeeper source reconcile %s --allow-rollback` to apply it on purpose", short(commit), short(a), name)
}

// fetchFailed records a fetch or read that failed: the source is not
// Ready with the error, and what was applied stays in force.
func (c *GitSources) fetchFailed(ctx context.Context, gs v1alpha1.GitSource, prev store.Source, status store.GitStatus, err error) error {
	status.FetchError = err.Error()
	news := prev.Git == nil || prev.Git.FetchError != status.FetchError
	if perr := c.putStatus(ctx, gs.Metadata.Name, prev, status); perr != nil {
		return errors.Join(err, perr)
	}
	if news {
		c.event(ctx, store.Event{Type: store.Warning, Reason: v1alpha1.EventSourceFetchFailed, Object: "source/" + gs.Metadata.Name, Node: c.Node,
			Message: fmt.Sprintf("%s: %v; %s stays in force", display(gs), err, orNone(prev.Revision))})
		c.tell(gs, v1alpha1.NotifyRefused, "", "", err.Error())
	}
	return err
}

// putStatus writes the git status into the source's record, keeping the
// rest of it.
func (c *GitSources) putStatus(ctx context.Context, name string, prev store.Source, status store.GitStatus) error {
	src := prev
	src.Name = name
	if src.Path == "" {
		src.Path = status.URL
	}
	src.Git = &status
	return c.Store.PutSource(ctx, src)
}

// tell sends event to the source's webhooks, in the background: a slow
// receiver never holds the loop.
func (c *GitSources) tell(gs v1alpha1.GitSource, event, rev, object, message string) {
	if len(gs.Spec.Notify) == 0 {
		return
	}
	n := notify.Notice{Source: gs.Metadata.Name, Event: event, Revision: rev, Object: object, Message: message, Node: c.Node, Time: time.Now().UTC()}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, w := range gs.Spec.Notify {
			if !w.Wants(event) {
				continue
			}
			if err := notify.Send(ctx, c.HTTP, w, n); err != nil {
				c.Log.Info("Webhook not delivered", "source", gs.Metadata.Name, "url", w.URL, "event", event, "error", err.Error())
			}
		}
	}()
}

// display is the source as a person reads it: URL, and the path inside.
func display(gs v1alpha1.GitSource) string {
	if gs.Spec.Path == "" {
		return gs.Spec.URL
	}
	return gs.Spec.URL + "//" + gs.Spec.Path
}

// event writes e and tells the Recorder.
func (c *GitSources) event(ctx context.Context, e store.Event) {
	c.Store.Event(ctx, e)
	if c.Recorder != nil {
		c.Recorder.Record(e)
	}
}
