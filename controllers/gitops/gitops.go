// Package gitops applies a manifest folder (a git checkout kept fresh by any
// sync tool) as one change set: the whole folder is loaded and validated,
// applied in one transaction with pruning of the objects that folder owns,
// or refused whole with the reason in the source's status and events.
package gitops

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/gitrev"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/validation"
	"github.com/sitekeeper/sitekeeper/internal/watch"
)

// Source configures one watched folder.
type Source struct {
	// Name identifies the source; objects it applies carry it in the
	// sitekeeper.io/source annotation.
	Name string
	Dir  string
	// Prune deletes owned objects that left the folder (default on).
	Prune bool
	// AllowEmpty lets a change set with no manifest delete everything the
	// source owned.
	AllowEmpty bool
	// AllowRollback applies a checkout whose commit is older than (or
	// unrelated to) the one applied last; by default it is refused, so a
	// new leader with an old checkout never rolls the cluster back.
	AllowRollback bool
	// AdoptFrom lists earlier names of this source (the folder's own name,
	// before names came from the repository): what the folder applied
	// under them is taken over, not refused.
	AdoptFrom []string
	Resync    time.Duration
	Debounce  time.Duration
}

// Store is what a folder's reconciler reads and writes.
type Store interface {
	ListSpecs(ctx context.Context) (store.Snapshot, error)
	Apply(ctx context.Context, objs []v1alpha1.Object, opt store.ApplyOptions) ([]store.ApplyResult, error)
	Source(ctx context.Context, name string) (store.Source, bool, error)
	PutSource(ctx context.Context, src store.Source) error
	PutSourceNode(ctx context.Context, source string, sn store.SourceNode) error
	Event(ctx context.Context, e store.Event)
}

// Reconciler applies one source.
type Reconciler struct {
	Store  Store
	Source Source
	// Node is the node this checkout lives on (for "behind" reporting).
	Node string
	// IsLeader tells whether this process may apply; nil means always.
	// Only the leader applies, so two checkouts at different commits
	// never fight.
	IsLeader func() bool
	Log      logr.Logger
	// Trigger, when set, makes the folder be applied now (this process
	// just became the leader).
	Trigger <-chan struct{}
	// OnApplied, when set, hears each change set's outcome.
	OnApplied func(rev string, results []store.ApplyResult, err error)
	// Git, when set, is a git source's status, kept in the source's record
	// with each attempt in front of its history.
	Git *store.GitStatus
	// Recorder, when set, also hears each event the source writes (the
	// process's metrics count applied and refused change sets).
	Recorder record.Recorder

	// synced is the folder revision (and options) last applied whole, and the store's
	// revision then: a resync that finds both unchanged has nothing to
	// undo and skips the apply (with five thousand groups, validating and
	// comparing the whole folder every minute cost more than a failover).
	synced      string
	syncedStore int64
	// written is the source's record as the last successful apply wrote
	// it: the store revision it left is added to it without reading it
	// back.
	written store.Source
}

// ChangeCounter is a Store that can tell cheaply which objects changed
// since a revision (each with the revision of its last write).
type ChangeCounter interface {
	ObjectsChangedSince(ctx context.Context, rev int64) (changed map[v1alpha1.Ref]int64, now int64, err error)
}

// DefaultName is the name of the source a folder is, the same on every
// node whatever its checkout folder is called: the repository's remote
// name (the last element of its URL), with the folder's path inside the
// repository when it is not the root (sites-prod for prod/ of
// git@host:ops/sites.git); "local" for a folder of a repository without a
// remote, with its path likewise; the folder's own name outside git.
func DefaultName(dir string) string {
	root, url, ok := gitrev.Remote(dir)
	if root == "" {
		return FolderName(dir)
	}
	base := "local"
	if ok {
		u := strings.TrimSuffix(strings.TrimRight(url, "/"), ".git")
		if i := strings.LastIndexAny(u, "/:\\"); i >= 0 {
			u = u[i+1:]
		}
		base = u
	}
	if abs, err := filepath.Abs(dir); err == nil {
		if rel, err := filepath.Rel(root, abs); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			base += "-" + filepath.ToSlash(rel)
		}
	}
	return sanitize(base)
}

// FolderName is the name a folder's source had before names came from the
// repository: its base name. A source takes over what the same folder
// applied under it.
func FolderName(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return sanitize(filepath.Base(abs))
}

func sanitize(raw string) string {
	base := strings.ToLower(raw)
	var b strings.Builder
	for _, r := range base {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "manifests"
	}
	return name
}

// Run watches the folder and applies each change set until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	if _, err := os.Stat(r.Source.Dir); err != nil {
		return fmt.Errorf("manifest folder %s: %w", r.Source.Dir, err)
	}
	var also []string
	if g, ok := gitrev.GitDir(r.Source.Dir); ok {
		also = append(also, g)
	}
	return watch.Folder(ctx, r.Source.Dir, watch.Options{Debounce: r.Source.Debounce, Resync: r.Source.Resync, Also: also, Trigger: r.Trigger, Log: r.Log}, func(reason string) error {
		err := r.Sync(ctx, reason)
		if err != nil && ctx.Err() == nil {
			r.Log.Error(err, "Manifest folder not applied; retrying", "source", r.Source.Name, "dir", r.Source.Dir, "reason", reason)
		}
		return err
	})
}

// readFolder loads every manifest file's bytes once: not those git
// ignores (they are in no commit) nor those the folder's .sitekeeperignore
// names (a pipeline's own YAML), and never through a symlink that leads
// out of the folder (a checkout must not apply what lies elsewhere).
func readFolder(dir string) (map[string][]byte, func(rel string) bool, error) {
	files, err := manifest.ListFiles(dir, true)
	if err != nil {
		return nil, nil, err
	}
	ignored := gitrev.Ignored(dir)
	notManifest, err := gitrev.SitekeeperIgnore(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", gitrev.IgnoreFile, err)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, nil, err
	}
	out := map[string][]byte{}
	for _, f := range files {
		if ignored != nil && ignored(f, false) {
			continue
		}
		if rel, err := filepath.Rel(dir, f); err == nil && notManifest != nil && notManifest(rel) {
			continue
		}
		if fi, err := os.Lstat(f); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(f)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: a symlink that leads nowhere: %w", f, err)
			}
			if rel, err := filepath.Rel(realDir, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return nil, nil, fmt.Errorf("%s is a symlink to %s, outside the folder: refused; copy the file into the folder, or point the link inside it", f, target)
			}
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		out[f] = b
	}
	return out, notManifest, nil
}

// Sync applies the folder once: validate whole, apply, prune.
func (r *Reconciler) Sync(ctx context.Context, reason string) error {
	files, notManifest, err := readFolder(r.Source.Dir)
	if err != nil {
		return r.unreadable(ctx, fmt.Errorf("manifest folder %s cannot be read: %w", r.Source.Dir, err))
	}
	revision := gitrev.Of(r.Source.Dir, files, notManifest)
	rev := revision.ID
	if r.Node != "" {
		if err := r.Store.PutSourceNode(ctx, r.Source.Name, store.SourceNode{Node: r.Node, Revision: rev, Seen: time.Now().UTC().Truncate(time.Second)}); err != nil {
			return err
		}
	}
	if r.IsLeader != nil && !r.IsLeader() {
		return nil
	}
	prev, err := r.source(ctx)
	if err != nil {
		return err
	}
	if prev.Revision == rev && prev.LastAttempt.Error == "" && r.UpToDate(ctx, prev, rev) {
		return nil // neither the folder nor any object changed: no drift
	}
	results, applyErr := r.applyTracked(ctx, files, prev, revision, func(applied string) error { return r.forward(applied, revision) })
	if r.OnApplied != nil {
		r.OnApplied(rev, results, applyErr)
	}
	return applyErr
}

// applyTracked applies a change set and remembers, when it worked, the
// store's revision it left, for UpToDate.
func (r *Reconciler) applyTracked(ctx context.Context, files map[string][]byte, prev store.Source, revision gitrev.Revision, forward func(applied string) error) ([]store.ApplyResult, error) {
	cc, counting := r.Store.(ChangeCounter)
	var before int64
	if counting {
		if _, now, err := cc.ObjectsChangedSince(ctx, math.MaxInt64-1); err == nil {
			before = now
		}
	}
	// Applying an unchanged folder writes nothing: Apply reports every
	// object unchanged; the resync is how drift in the store is undone.
	results, applyErr := r.apply(ctx, files, prev, revision, forward)
	r.synced, r.syncedStore = "", 0
	if applyErr == nil && counting && before > 0 {
		r.synced, r.syncedStore = r.syncKey(revision.ID), before
		// When the only writes since are this apply's own (one
		// transaction: one revision, and only objects it reported
		// written), the store matches the folder as of now.
		if changed, now, err := cc.ObjectsChangedSince(ctx, before); err == nil && onlyOwnWrites(changed, results) {
			r.syncedStore = now
		}
		// Kept in the record too, for the next leader (a failover is
		// exactly when leadership moves: re-applying thousands of
		// unchanged objects then took a fifth of the CPU).
		if src := r.written; src.Synced != r.synced || src.SyncedStore != r.syncedStore {
			src.Synced, src.SyncedStore = r.synced, r.syncedStore
			if err := r.Store.PutSource(ctx, src); err != nil {
				r.Log.Info("Cannot record the applied change set's store revision", "source", r.Source.Name, "error", err.Error())
			}
		}
	}
	return results, applyErr
}

func (r *Reconciler) syncKey(rev string) string {
	return fmt.Sprintf("%s prune=%t allowEmpty=%t", rev, r.Source.Prune, r.Source.AllowEmpty)
}

// UpToDate reports whether revision rev was applied whole (by this
// reconciler, or as prev, the source's record, says) and no object changed
// in the store since: applying it again would change nothing.
func (r *Reconciler) UpToDate(ctx context.Context, prev store.Source, rev string) bool {
	cc, counting := r.Store.(ChangeCounter)
	if !counting {
		return false
	}
	if key := r.syncKey(rev); r.synced != key {
		if prev.Synced != key || prev.SyncedStore == 0 {
			return false
		}
		// Applied whole by an earlier leader.
		r.synced, r.syncedStore = prev.Synced, prev.SyncedStore
	}
	changed, _, err := cc.ObjectsChangedSince(ctx, r.syncedStore)
	return err == nil && len(changed) == 0
}

// forward refuses a checkout that would take the cluster back: its commit
// is an ancestor of the applied one, unrelated to it, or the applied
// commit is not in this checkout at all (a node that never fetched it). A
// checkout whose history cannot be read is applied, as before.
func (r *Reconciler) forward(applied string, rev gitrev.Revision) error {
	a := gitrev.CommitOf(applied)
	if a == "" || rev.Commit == "" || a == rev.Commit || r.Source.AllowRollback {
		return nil
	}
	rel, err := gitrev.Relate(r.Source.Dir, a, rev.Commit)
	if err != nil {
		r.Log.Info("Cannot read the commit graph; applying without the rollback check", "source", r.Source.Name, "error", err.Error())
		return nil
	}
	why := ""
	switch rel {
	case gitrev.Forward, gitrev.Rewritten:
		return nil
	case gitrev.Backward:
		why = fmt.Sprintf("commit %s is older than the applied %s (an ancestor of it)", short(rev.Commit), short(a))
	case gitrev.Unrelated:
		why = fmt.Sprintf("commit %s and the applied %s share no history (another repository, an orphan branch)", short(rev.Commit), short(a))
	case gitrev.Missing:
		why = fmt.Sprintf("the applied commit %s is not in this checkout (at %s): it is behind, or another repository", short(a), short(rev.Commit))
	}
	return fmt.Errorf("%s: refusing to go back; pull the checkout forward, or start with --allow-rollback to go back on purpose", why)
}

func short(commit string) string { return commit[:min(12, len(commit))] }

// unreadable records that the folder cannot be read (it disappeared, a
// mount failed, permissions): the source is not Ready, with the error,
// and the last applied revision stays in force.
func (r *Reconciler) unreadable(ctx context.Context, err error) error {
	if r.Node != "" {
		if perr := r.Store.PutSourceNode(ctx, r.Source.Name, store.SourceNode{Node: r.Node, Revision: "unreadable", Seen: time.Now().UTC().Truncate(time.Second)}); perr != nil {
			return errors.Join(err, perr)
		}
	}
	if r.IsLeader != nil && !r.IsLeader() {
		return err
	}
	prev, perr := r.source(ctx)
	if perr != nil {
		return errors.Join(err, perr)
	}
	r.synced = ""
	return r.refuse(ctx, prev, "unreadable", err, fmt.Sprintf("%s; %s stays in force", err, orNone(prev.Revision)))
}

// refuse records in the source that revision rev was not applied, and
// why (err), with a Warning event saying message when that is news; the
// same refusal again writes nothing new. It returns err.
func (r *Reconciler) refuse(ctx context.Context, prev store.Source, rev string, err error, message string) error {
	src := prev
	src.LastAttempt = store.Attempt{Revision: rev, Time: time.Now().UTC().Truncate(time.Millisecond), Error: err.Error()}
	again := prev.LastAttempt.Revision == rev && prev.LastAttempt.Error == src.LastAttempt.Error
	if again {
		src.LastAttempt.Time = prev.LastAttempt.Time
	}
	r.record(&src)
	if perr := r.Store.PutSource(ctx, src); perr != nil {
		return errors.Join(err, perr)
	}
	if !again {
		r.event(ctx, store.Event{Type: store.Warning, Reason: v1alpha1.EventSourceRefused, Object: "source/" + r.Source.Name, Node: r.Node, Message: message})
	}
	return err
}

// dirtyOnly says which files differ when the refused revision is the
// applied one's commit plus uncommitted changes (the two ids differ only
// by the "-dirty" mark, which alone tells nothing of what changed).
func dirtyOnly(applied string, refused gitrev.Revision) string {
	if !refused.Dirty || gitrev.CommitOf(applied) != refused.Commit || len(refused.Uncommitted) == 0 {
		return ""
	}
	files := refused.Uncommitted
	more := ""
	if len(files) > 5 {
		files, more = files[:5], fmt.Sprintf(" and %d more", len(refused.Uncommitted)-5)
	}
	return fmt.Sprintf(" (the same commit; uncommitted changes in %s%s)", strings.Join(files, ", "), more)
}

// onlyOwnWrites reports whether changed holds exactly the objects results
// says an apply wrote, all at one revision.
func onlyOwnWrites(changed map[v1alpha1.Ref]int64, results []store.ApplyResult) bool {
	wrote := map[v1alpha1.Ref]bool{}
	for _, r := range results {
		if r.Outcome != store.Unchanged {
			wrote[r.Ref] = true
		}
	}
	if len(wrote) != len(changed) {
		return false
	}
	var at int64
	for ref, rev := range changed {
		if !wrote[ref] || (at != 0 && rev != at) {
			return false
		}
		at = rev
	}
	return true
}

func (r *Reconciler) source(ctx context.Context) (store.Source, error) {
	src, _, err := r.Store.Source(ctx, r.Source.Name)
	return src, err
}

// ApplyChangeSet applies files (paths to contents) as one change set of
// revision, as Sync does with a folder's: forward, when set, refuses a
// revision that would take the cluster back from the one applied. A git
// source's controller calls it with the files of a fetched commit.
func (r *Reconciler) ApplyChangeSet(ctx context.Context, files map[string][]byte, revision gitrev.Revision, forward func(applied string) error) ([]store.ApplyResult, error) {
	prev, err := r.source(ctx)
	if err != nil {
		return nil, err
	}
	return r.applyTracked(ctx, files, prev, revision, forward)
}

// record fills in what every write of the source's record carries.
func (r *Reconciler) record(src *store.Source) {
	src.Name, src.Path, src.Prune = r.Source.Name, r.Source.Dir, r.Source.Prune
	if r.Git != nil {
		g := *r.Git
		g.History = append([]store.Attempt(nil), g.History...)
		g.Remember(src.LastAttempt)
		src.Git = &g
	}
}

func (r *Reconciler) apply(ctx context.Context, files map[string][]byte, prev store.Source, revision gitrev.Revision, forward func(applied string) error) ([]store.ApplyResult, error) {
	rev := revision.ID
	src := prev
	attempt := store.Attempt{Revision: rev, Time: time.Now().UTC().Truncate(time.Millisecond)}
	fail := func(err error) ([]store.ApplyResult, error) {
		return nil, r.refuse(ctx, prev, rev, err,
			fmt.Sprintf("revision %s not applied; %s stays in force%s: %s", rev, orNone(prev.Revision), dirtyOnly(prev.Revision, revision), firstLine(err.Error())))
	}
	if forward != nil {
		if err := forward(prev.Revision); err != nil {
			return fail(err)
		}
	}
	var docs []manifest.Document
	var loadErrs []string
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		d, errs := manifest.Decode(f, files[f])
		docs = append(docs, d...)
		for _, e := range errs {
			loadErrs = append(loadErrs, e.Error())
		}
	}
	if len(loadErrs) > 0 {
		return fail(errors.New(strings.Join(loadErrs, "\n")))
	}
	res := validation.Validate(manifest.Objects(docs))
	if len(res.Errors) > 0 {
		manifest.Locate(res.Errors, docs)
		return fail(res.Errors)
	}
	if len(docs) == 0 && len(prev.Inventory) > 0 && !r.Source.AllowEmpty {
		return fail(fmt.Errorf("the folder holds no manifest, but source %s owns %d object(s): refusing to delete them all (a bad checkout?); restore the files, or run with --allow-empty to really delete everything", r.Source.Name, len(prev.Inventory)))
	}
	present := map[v1alpha1.Ref]string{}
	for _, d := range docs {
		present[v1alpha1.RefOf(d.Object)] = d.File
	}
	var prune []v1alpha1.Ref
	snap, err := r.Store.ListSpecs(ctx)
	if err != nil {
		return nil, err
	}
	// A placement.activeNode the store holds and the folder does not (a
	// `switchover --force` of a folder-owned group): the apply puts the
	// committed value back, which moves the group; say so when it does.
	reverted := map[v1alpha1.Ref][2]string{}
	stored := map[v1alpha1.Ref]v1alpha1.Object{}
	for _, o := range snap.Objects {
		stored[v1alpha1.RefOf(o)] = o
	}
	for _, d := range docs {
		ref := v1alpha1.RefOf(d.Object)
		if o, ok := stored[ref]; ok {
			if was, want := o.PlacementSpec().ActiveNode, d.Object.PlacementSpec().ActiveNode; was != "" && !strings.EqualFold(was, want) {
				reverted[ref] = [2]string{was, want}
			}
		}
	}
	if r.Source.Prune {
		for _, o := range snap.Objects {
			ref := v1alpha1.RefOf(o)
			if o.Meta().Annotations[v1alpha1.AnnotationSource] == r.Source.Name && present[ref] == "" && o.Meta().DeletionTimestamp == nil {
				prune = append(prune, ref)
			}
		}
	}
	results, err := r.Store.Apply(ctx, manifest.Objects(docs), store.ApplyOptions{Owner: r.Source.Name, AdoptFrom: r.Source.AdoptFrom, Prune: prune})
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		manifest.Locate(ve.Errors, docs)
		return fail(ve.Errors)
	}
	if err != nil {
		return fail(err)
	}
	counts := map[store.Outcome]int{}
	for _, res := range results {
		counts[res.Outcome]++
		if rv, ok := reverted[res.Ref]; ok && res.Outcome == store.Configured {
			r.event(ctx, store.Event{Type: store.Warning, Reason: v1alpha1.EventSwitchoverReverted, Object: res.Ref.String(), Node: r.Node,
				Message: fmt.Sprintf("source %s put placement.activeNode back to %q (it was %s, set outside the folder, e.g. by switchover --force): the group moves; commit the change to the folder to keep it", r.Source.Name, rv[1], rv[0])})
		}
	}
	changed := counts[store.Created]+counts[store.Configured]+counts[store.Pruned]+counts[store.Adopted] > 0
	if !changed && prev.Revision == rev && prev.LastAttempt.Error == "" {
		attempt.Time = prev.LastAttempt.Time // nothing new: no new write
	}
	src.Revision, src.AppliedBy, src.LastAttempt = rev, r.Node, attempt
	r.record(&src)
	if changed || prev.Revision != rev {
		src.AppliedAt = attempt.Time
	}
	src.Inventory = nil
	for _, res := range results {
		if res.Outcome == store.Pruned {
			continue
		}
		file := present[res.Ref]
		if rel, err := filepath.Rel(r.Source.Dir, file); err == nil && r.Git == nil {
			file = rel
		}
		src.Inventory = append(src.Inventory, store.InventoryEntry{Ref: res.Ref.String(), File: filepath.ToSlash(file), Outcome: string(res.Outcome)})
	}
	if err := r.Store.PutSource(ctx, src); err != nil {
		return results, err
	}
	r.written = src
	if prev.Revision != rev || changed || prev.LastAttempt.Error != "" {
		r.event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventSourceApplied, Object: "source/" + r.Source.Name, Node: r.Node,
			Message: fmt.Sprintf("revision %s applied: %d created, %d configured, %d adopted, %d unchanged, %d pruned", rev, counts[store.Created], counts[store.Configured], counts[store.Adopted], counts[store.Unchanged], counts[store.Pruned])})
		r.Log.Info("Applied manifest folder", "source", r.Source.Name, "revision", rev, "created", counts[store.Created], "configured", counts[store.Configured], "pruned", counts[store.Pruned])
	}
	return results, nil
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func firstLine(s string) string {
	line, rest, _ := strings.Cut(s, "\n")
	if rest != "" {
		return fmt.Sprintf("%s (and %d more)", line, strings.Count(rest, "\n")+1)
	}
	return line
}

// event writes e and tells the Recorder.
func (r *Reconciler) event(ctx context.Context, e store.Event) {
	r.Store.Event(ctx, e)
	if r.Recorder != nil {
		r.Recorder.Record(e)
	}
}
