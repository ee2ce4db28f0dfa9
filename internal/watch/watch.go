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
// under dir and on every resync, until ctx ends. Calls never overlap.
func Folder(ctx context.Context, dir string, o Options, onChange func(reason string)) error {
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
	addTree(w, dir, o.Log)
	also := map[string]bool{}
	for _, a := range o.Also {
		if err := w.Add(a); err == nil {
			also[filepath.Clean(a)] = true
		}
	}
	onChange("start")
	resync := clk.NewTimer(o.Resync)
	defer resync.Stop()
	var quiet, deadline <-chan time.Time
	var quietT, deadlineT clock.Timer
	pending := false
	fire := func(reason string) {
		pending, quiet, deadline = false, nil, nil
		if quietT != nil {
			quietT.Stop()
		}
		if deadlineT != nil {
			deadlineT.Stop()
		}
		resync.Reset(o.Resync) // a change set is a resync too
		// Watches can be lost (a folder replaced, a symlink swapped):
		// re-adding the whole tree each time is cheap and idempotent.
		addTree(w, dir, o.Log)
		onChange(reason)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if !also[filepath.Dir(ev.Name)] && !relevant(dir, ev) {
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
		case <-o.Trigger:
			fire("trigger")
		}
	}
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
