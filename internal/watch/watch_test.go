package watch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/clock"
)

func TestRelevant(t *testing.T) {
	dir := filepath.FromSlash("/srv/manifests")
	tests := map[string]bool{
		"/srv/manifests/web.yaml":          true,
		"/srv/manifests/sub/web.yaml":      true,
		"/srv/manifests/.git/index":        false,
		"/srv/manifests/sub/.hidden/x.yml": false,
		"/srv/manifests/..data":            true, // a ConfigMap's atomic swap
		"/srv/manifests/..2026_11_30/a":    true,
	}
	for name, want := range tests {
		if got := relevant(dir, fsnotify.Event{Name: filepath.FromSlash(name)}); got != want {
			t.Errorf("relevant(%s) = %t, want %t", name, got, want)
		}
	}
}

// run starts a Folder watch on a fake clock and collects its reasons.
type run struct {
	t       *testing.T
	dir     string
	clk     *clock.Fake
	trigger chan struct{}
	mu      sync.Mutex
	reasons []string
	fails   int // the next calls that fail
}

func start(t *testing.T) *run { return startAt(t, t.TempDir(), 0) }

// startAt watches dir; the first fails calls of onChange fail.
func startAt(t *testing.T, dir string, fails int) *run {
	r := &run{t: t, dir: dir, clk: clock.NewFake(time.Unix(1000, 0)), trigger: make(chan struct{}, 1), fails: fails}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := Folder(ctx, r.dir, Options{Debounce: 100 * time.Millisecond, MaxDelay: time.Second, Resync: time.Minute, Trigger: r.trigger, Clock: r.clk, Log: logr.Discard()},
			func(reason string) error {
				r.mu.Lock()
				defer r.mu.Unlock()
				r.reasons = append(r.reasons, reason)
				if r.fails > 0 {
					r.fails--
					return errors.New("refused")
				}
				return nil
			})
		if err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	r.wait(func() bool { return len(r.got()) == 1 && r.clk.Waiters() == min(fails, 1)+1 }) // "start", resync (and retry) armed
	return r
}

func (r *run) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reasons...)
}

// wait polls what the watch goroutine makes true after a file-system event;
// the watch's own timers run on the fake clock.
func (r *run) wait(cond func() bool) {
	r.t.Helper()
	for range 3000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	r.t.Fatalf("condition not met; reasons so far %v, timers %d", r.got(), r.clk.Waiters())
}

// write puts a file in place with one rename, so it is one event, and
// waits until the watch reacted to it (armed its quiet timer).
func (r *run) write(name string) {
	r.t.Helper()
	tmp := filepath.Join(r.t.TempDir(), "f")
	if err := os.WriteFile(tmp, []byte("kind: IISSite\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.move(tmp, name)
}

func (r *run) move(from, name string) {
	r.t.Helper()
	armed := r.clk.Armed()
	if err := os.Rename(from, filepath.Join(r.dir, name)); err != nil {
		r.t.Fatal(err)
	}
	r.wait(func() bool { return r.clk.Armed() > armed })
}

// mkdir puts a new folder in place with one rename.
func (r *run) mkdir(name string) {
	r.t.Helper()
	tmp := filepath.Join(r.t.TempDir(), "d")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		r.t.Fatal(err)
	}
	r.move(tmp, name)
}

func TestABurstIsOneChangeSet(t *testing.T) {
	r := start(t)
	r.write("a.yaml")
	r.write("b.yaml")
	r.clk.Advance(50 * time.Millisecond)
	r.write("c.yaml")                    // re-arms the quiet timer
	r.clk.Advance(60 * time.Millisecond) // 110 ms after the first write, 60 after the last
	if got := r.got(); len(got) != 1 {
		t.Fatalf("fired during the burst: %v", got)
	}
	r.clk.Advance(40 * time.Millisecond)
	r.wait(func() bool { return len(r.got()) == 2 })
	if diff := cmp.Diff([]string{"start", "change"}, r.got()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestANewSubfolderIsWatched(t *testing.T) {
	r := start(t)
	r.mkdir("sub")
	r.clk.Advance(100 * time.Millisecond)
	r.wait(func() bool { return len(r.got()) == 2 })
	r.write("sub/web.yaml")
	r.clk.Advance(100 * time.Millisecond)
	r.wait(func() bool { return len(r.got()) == 3 })
}

func TestHiddenFoldersAreIgnored(t *testing.T) {
	r := start(t)
	hidden := filepath.Join(r.dir, ".git")
	if err := os.Mkdir(hidden, 0o755); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(100 * time.Millisecond) // the folder's creation is ignored
	if err := os.WriteFile(filepath.Join(hidden, "index"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.write("web.yaml") // a visible change after the hidden ones
	r.clk.Advance(100 * time.Millisecond)
	r.wait(func() bool { return len(r.got()) == 2 })
	r.clk.Advance(time.Second) // the deadline timer was stopped; nothing else pending
	if diff := cmp.Diff([]string{"start", "change"}, r.got()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestResyncAndTrigger(t *testing.T) {
	r := start(t)
	r.clk.Advance(time.Minute)
	r.wait(func() bool { return len(r.got()) == 2 })
	r.trigger <- struct{}{}
	r.wait(func() bool { return len(r.got()) == 3 })
	if diff := cmp.Diff([]string{"start", "resync", "trigger"}, r.got()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestAFailedChangeSetIsRetriedWithBackoff: a refused change set is tried
// again after 1 s, then 2 s, not only at the next resync; a success stops
// the retries.
func TestAFailedChangeSetIsRetriedWithBackoff(t *testing.T) {
	r := startAt(t, t.TempDir(), 2)
	r.clk.Advance(999 * time.Millisecond)
	if got := r.got(); len(got) != 1 {
		t.Fatalf("retried before a second: %v", got)
	}
	r.clk.Advance(time.Millisecond)
	r.wait(func() bool { return len(r.got()) == 2 })
	r.wait(func() bool { return r.clk.Waiters() == 2 })
	r.clk.Advance(2 * time.Second)
	r.wait(func() bool { return len(r.got()) == 3 })
	r.clk.Advance(30 * time.Second) // succeeded: no retry before the resync
	if diff := cmp.Diff([]string{"start", "retry", "retry"}, r.got()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestASwappedSymlinkIsAChangeSet: the watched path is a symlink that a
// sync tool swaps (git-sync --link): the swap is a change set, and the new
// target's files are watched.
func TestASwappedSymlinkIsAChangeSet(t *testing.T) {
	base := t.TempDir()
	for _, rev := range []string{"rev-1", "rev-2"} {
		if err := os.Mkdir(filepath.Join(base, rev), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(base, "current")
	if err := os.Symlink("rev-1", link); err != nil {
		t.Fatal(err)
	}
	r := startAt(t, link, 0)
	armed := r.clk.Armed()
	tmp := filepath.Join(base, "tmp-link")
	if err := os.Symlink("rev-2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil { // git-sync's atomic swap
		t.Fatal(err)
	}
	r.wait(func() bool { return r.clk.Armed() > armed })
	r.clk.Advance(100 * time.Millisecond)
	r.wait(func() bool { return len(r.got()) == 2 })
	r.write("web.yaml") // lands in rev-2, through the link
	r.clk.Advance(100 * time.Millisecond)
	r.wait(func() bool { return len(r.got()) == 3 })
}
