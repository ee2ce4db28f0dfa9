// Package watch turns a folder's file-system events into change sets: it
// watches the folder and its subfolders (fsnotify is not recursive, so new
// subfolders are added as they appear), waits for a quiet moment so that a
// git checkout of many files is one change set, and fires on a timer too
// (events are hints; a missed one costs at most one resync interval).
package watch

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"github.com/sitekeeper/sitekeeper/internal/clock"
)

// Options tune a Folder watch.
type Options struct {
	// Debounce is the quiet time after the last event (default 150 ms).
	Debounce time.Duration
	// MaxDelay bounds the wait during a long burst (default 2 s).
	MaxDelay time.Duration
	// Resync fires even without events (default 60 s).
	Resync time.Duration
	// Also lists extra folders watched without recursion, whose events all
	// count (the .git folder of the work tree, so that a commit that
	// changes no file still changes the revision).
	Also []string
	// Trigger fires a change set on demand (leadership gained).
	Trigger <-chan struct{}
	Log     logr.Logger
	// Clock times the debounce, the burst deadline and the resync.
	Clock clock.Clock
}

// Folder calls onChange once at start, then after each burst of changes
// under dir and on every resync, until ctx ends. Calls never overlap. A
// call that fails is made again after a backoff (1 s, doubling up to the
// resync interval), not only at the next resync: a change set refused
// because a tool was still writing it succeeds a second later. dir may be
// a symlink that a sync tool swaps (git-sync --link): the swap is a change
// set, and the new target is watched.
func Folder(ctx context.Context, dir string, o Options, onChange func(reason string) error) error {
	if o.Debounce <= 0 {
		o.Debounce = 150 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 2 * time.Second
	}
	if o.Resync <= 0 {
		o.Resync = 60 * time.Second
	}
	clk := clock.Or(o.Clock)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	dir = filepath.Clean(dir)
	root := resolve(dir)
	addTree(w, root, o.Log)
	also := map[string]bool{}
	addAlso := func() {
		for _, a := range o.Also {
			if err := w.Add(a); err == nil {
				also[filepath.Clean(a)] = true
			}
		}
	}
	addAlso()
	// The folder's own parent, when the folder is a symlink: its swap is
	// an event there.
	if root != dir {
		if err := w.Add(filepath.Dir(dir)); err != nil {
			o.Log.V(1).Info("Cannot watch the folder's parent", "dir", filepath.Dir(dir), "error", err.Error())
		}
	}
	resync := clk.NewTimer(o.Resync)
	defer resync.Stop()
	var quiet, deadline, retry <-chan time.Time
	var quietT, deadlineT, retryT clock.Timer
	var backoff time.Duration
	pending := false
	fire := func(reason string) {
		pending, quiet, deadline, retry = false, nil, nil, nil
		for _, t := range []clock.Timer{quietT, deadlineT, retryT} {
			if t != nil {
				t.Stop()
			}
		}
		resync.Reset(o.Resync) // a change set is a resync too
		// Watches can be lost (a folder replaced, a symlink swapped, a
		// .git folder replaced): re-adding them each time is cheap and
		// idempotent.
		root = resolve(dir)
		addTree(w, root, o.Log)
		addAlso()
		if err := onChange(reason); err != nil {
			backoff = min(max(2*backoff, time.Second), o.Resync)
			retryT = clk.NewTimer(backoff)
			retry = retryT.C()
			return
		}
		backoff = 0
	}
	fire("start")
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if !also[filepath.Dir(ev.Name)] && filepath.Clean(ev.Name) != dir && !relevant(root, ev) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				addTree(w, ev.Name, o.Log) // a new subfolder: watch it too
			}
			if quietT != nil {
				quietT.Stop()
			}
			quietT = clk.NewTimer(o.Debounce)
			quiet = quietT.C()
			if !pending {
				pending = true
				deadlineT = clk.NewTimer(o.MaxDelay)
				deadline = deadlineT.C()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			o.Log.Error(err, "Folder watch error; resyncing", "dir", dir)
			fire("watch error")
		case <-quiet:
			fire("change")
		case <-deadline:
			fire("change")
		case <-resync.C():
			fire("resync")
		case <-retry:
			fire("retry")
		case <-o.Trigger:
			fire("trigger")
		}
	}
}

// resolve is where dir points when it is a symlink, else dir.
func resolve(dir string) string {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		return real
	}
	return dir
}

// relevant skips events inside hidden folders (.git), except the
// Kubernetes ConfigMap "..data" swap at the top of the folder.
func relevant(dir string, ev fsnotify.Event) bool {
	rel, err := filepath.Rel(dir, ev.Name)
	if err != nil {
		return true
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "..") && i == 0 {
			return true
		}
		if strings.HasPrefix(p, ".") && p != "." {
			return false
		}
	}
	return true
}

// addTree watches root and every non-hidden folder below it.
func addTree(w *fsnotify.Watcher, root string, log logr.Logger) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil {
			log.V(1).Info("Cannot watch folder", "dir", p, "error", err.Error())
		}
		return nil
	})
}
