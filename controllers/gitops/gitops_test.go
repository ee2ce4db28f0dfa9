package gitops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/gitrev"
	"github.com/sitekeeper/sitekeeper/internal/gitrev/gittest"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore/etcdtest"
)

func stored(t *testing.T, st *etcdstore.Store) int {
	t.Helper()
	snap, err := st.ListSpecs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range snap.Objects {
		if o.Meta().DeletionTimestamp == nil {
			n++
		}
	}
	return n
}

// TestEmptyFolderAndPrune: a folder emptied by a bad checkout deletes
// nothing unless --allow-empty; with --prune=false a removed file's objects
// stay; with pruning they go.
func TestEmptyFolderAndPrune(t *testing.T) {
	ctx := context.Background()
	st := etcdtest.Start(t, true)
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		if err := os.WriteFile(filepath.Join(dir, "g"+string(rune('0'+i))+".yaml"), []byte(group(i, 8080)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "t", Dir: dir, Prune: true}}
	if err := r.Sync(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, st); n != 6 {
		t.Fatalf("%d objects stored, want 6", n)
	}

	// --prune=false: a removed file's objects stay.
	if err := os.Remove(filepath.Join(dir, "g1.yaml")); err != nil {
		t.Fatal(err)
	}
	r.Source.Prune = false
	if err := r.Sync(ctx, "change"); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, st); n != 6 {
		t.Errorf("with prune off: %d objects, want 6", n)
	}
	// Pruning on: they go, and only they.
	r.Source.Prune = true
	if err := r.Sync(ctx, "change"); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, st); n != 3 {
		t.Errorf("after pruning: %d objects, want 3", n)
	}

	// An empty folder is refused, whole.
	if err := os.Remove(filepath.Join(dir, "g0.yaml")); err != nil {
		t.Fatal(err)
	}
	err := r.Sync(ctx, "change")
	if err == nil || !strings.Contains(err.Error(), "refusing to delete them all") || !strings.Contains(err.Error(), "--allow-empty") {
		t.Fatalf("empty folder: %v", err)
	}
	if n := stored(t, st); n != 3 {
		t.Errorf("an empty folder deleted objects: %d left, want 3", n)
	}
	src, _ := r.source(ctx)
	if src.LastAttempt.Error == "" || src.Revision == src.LastAttempt.Revision {
		t.Errorf("the refusal is not recorded in the source: %+v", src)
	}
	r.Source.AllowEmpty = true
	if err := r.Sync(ctx, "change"); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, st); n != 0 {
		t.Errorf("with --allow-empty: %d objects left, want 0", n)
	}
}

// TestResyncRevertingASwitchoverWarns: a switchover --force set
// placement.activeNode outside the folder; the folder's next sync puts the
// committed value back and says so in a Warning event.
func TestResyncRevertingASwitchoverWarns(t *testing.T) {
	ctx := context.Background()
	st := etcdtest.Start(t, true)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "g0.yaml"), []byte(group(0, 8080)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "t", Dir: dir, Prune: true}}
	if err := r.Sync(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	site := v1alpha1.Ref{Kind: v1alpha1.KindIISSite, Name: "site-0"}
	o, err := st.Get(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	o.PlacementSpec().ActiveNode = "node2" // what switchover --force writes
	if err := st.UpdateSpecs(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx, "resync"); err != nil {
		t.Fatal(err)
	}
	events, _, err := st.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	for _, e := range events {
		if e.Reason == v1alpha1.EventSwitchoverReverted {
			warned = append(warned, e.Type+" "+e.Object+": "+e.Message)
		}
	}
	if len(warned) != 1 || !strings.HasPrefix(warned[0], "Warning IISSite/site-0") || !strings.Contains(warned[0], "it was node2") {
		t.Fatalf("SwitchoverReverted events: %v", warned)
	}
	if after, _ := st.Get(ctx, site); after.PlacementSpec().ActiveNode != "" {
		t.Errorf("activeNode after the resync: %q, want the folder's (none)", after.PlacementSpec().ActiveNode)
	}

}

// TestResyncRestsUntilSomethingChanges: a resync that finds neither the
// folder nor any object changed since the last whole apply applies
// nothing; once an object is changed outside the folder, the next resync
// applies and puts the folder's value back.
func TestResyncRestsUntilSomethingChanges(t *testing.T) {
	ctx := context.Background()
	st := etcdtest.Start(t, true)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "g0.yaml"), []byte(group(0, 8080)), 0o644); err != nil {
		t.Fatal(err)
	}
	applied := 0
	r := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "t", Dir: dir, Prune: true},
		OnApplied: func(string, []store.ApplyResult, error) { applied++ }}
	for _, reason := range []string{"start", "resync", "resync", "resync"} {
		if err := r.Sync(ctx, reason); err != nil {
			t.Fatal(err)
		}
	}
	// The start's own writes are recognised as its own: it rests at once.
	if applied != 1 {
		t.Errorf("the folder was applied %d times in a start and three idle resyncs, want once", applied)
	}
	site := v1alpha1.Ref{Kind: v1alpha1.KindIISSite, Name: "site-0"}
	o, err := st.Get(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	o.PlacementSpec().ActiveNode = "node2"
	if err := st.UpdateSpecs(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx, "resync"); err != nil {
		t.Fatal(err)
	}
	if applied != 2 {
		t.Errorf("a resync after a change outside the folder did not apply (%d applies)", applied)
	}
	if after, _ := st.Get(ctx, site); after.PlacementSpec().ActiveNode != "" {
		t.Errorf("activeNode after the resync: %q, want the folder's (none)", after.PlacementSpec().ActiveNode)
	}

	// A new leader with the same checkout finds it applied whole, from the
	// source's record: nothing to apply, until an object changes.
	next := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "t", Dir: dir, Prune: true},
		OnApplied: func(string, []store.ApplyResult, error) { applied++ }}
	if err := next.Sync(ctx, "lead"); err != nil {
		t.Fatal(err)
	}
	if applied != 2 {
		t.Errorf("a new leader applied the folder the old one had applied whole (%d applies)", applied)
	}
	o, _ = st.Get(ctx, site)
	o.PlacementSpec().ActiveNode = "node2"
	if err := st.UpdateSpecs(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := next.Sync(ctx, "resync"); err != nil {
		t.Fatal(err)
	}
	if applied != 3 {
		t.Errorf("a new leader did not undo a change outside the folder (%d applies)", applied)
	}
}

// TestDirtyOnlySaysWhatChanged: a refused revision that is the applied
// commit plus uncommitted changes names the files; any other does not.
func TestDirtyOnlySaysWhatChanged(t *testing.T) {
	refused := gitrev.Revision{ID: "git:abc-dirty", Commit: "abc", Dirty: true, Uncommitted: []string{"sites/a.yaml", "sites/b.yaml"}}
	if got := dirtyOnly("git:abc", refused); got != " (the same commit; uncommitted changes in sites/a.yaml, sites/b.yaml)" {
		t.Errorf("same commit: %q", got)
	}
	if got := dirtyOnly("git:def", refused); got != "" {
		t.Errorf("another commit: %q, want nothing", got)
	}
	many := refused
	many.Uncommitted = []string{"1", "2", "3", "4", "5", "6", "7"}
	if got := dirtyOnly("git:abc-dirty", many); !strings.HasSuffix(got, "1, 2, 3, 4, 5 and 2 more)") {
		t.Errorf("many files: %q", got)
	}
}

// TestFolderBehindASymlinkAndAFolderThatGoes: a folder given as a symlink
// (git-sync --link) is read where it points; when it disappears the source
// is not Ready, says why, and keeps what was applied; when it comes back
// (the link pointing at a new revision) it applies again.
func TestFolderBehindASymlinkAndAFolderThatGoes(t *testing.T) {
	ctx := context.Background()
	st := etcdtest.Start(t, true)
	base := t.TempDir()
	rev1 := filepath.Join(base, "rev-1")
	if err := os.Mkdir(rev1, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rev1, "g0.yaml"), []byte(group(0, 8080)), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "current")
	if err := os.Symlink("rev-1", link); err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "t", Dir: link, Prune: true}}
	if err := r.Sync(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, st); n != 3 {
		t.Fatalf("through the symlink: %d objects stored, want 3", n)
	}
	src, _ := r.source(ctx)
	if len(src.Inventory) != 3 || src.Inventory[0].File != "g0.yaml" {
		t.Errorf("inventory %+v, want files named under the folder given", src.Inventory)
	}

	if err := os.Remove(link); err != nil { // the checkout goes away
		t.Fatal(err)
	}
	if err := r.Sync(ctx, "change"); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Fatalf("a missing folder: %v", err)
	}
	src, _ = r.source(ctx)
	if !strings.Contains(src.LastAttempt.Error, "cannot be read") || src.Revision == "" {
		t.Errorf("the source does not say the folder is gone (or lost its revision): %+v", src)
	}
	if n := stored(t, st); n != 3 {
		t.Errorf("a missing folder deleted objects: %d left", n)
	}

	rev2 := filepath.Join(base, "rev-2")
	if err := os.Mkdir(rev2, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rev2, "g0.yaml"), []byte(group(0, 9090)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("rev-2", link); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx, "change"); err != nil {
		t.Fatal(err)
	}
	src, _ = r.source(ctx)
	if src.LastAttempt.Error != "" {
		t.Errorf("back: %+v", src.LastAttempt)
	}
}

// TestDefaultNameIsTheSameOnEveryNode: two checkouts of one repository in
// differently named folders get one source name, from the remote; a
// subfolder adds its path; no remote is "local"; outside git the folder's
// own name stays.
func TestDefaultNameIsTheSameOnEveryNode(t *testing.T) {
	// A repository made by git, whose config gets the lines given.
	checkout := func(folder, config string) string {
		dir := filepath.Join(t.TempDir(), folder)
		if err := os.MkdirAll(filepath.Join(dir, "prod"), 0o755); err != nil {
			t.Fatal(err)
		}
		gittest.Run(t, dir, "init", "-q", "-b", "main")
		f, err := os.OpenFile(filepath.Join(dir, ".git", "config"), os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(config); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	origin := "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = git@git.example.com:ops/Sites.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
	a, b := checkout("node1-checkout", origin), checkout("sites-clone", origin)
	for _, tc := range []struct{ dir, want string }{
		{a, "sites"},
		{b, "sites"},
		{filepath.Join(a, "prod"), "sites-prod"},
		{checkout("x", "[remote \"upstream\"]\n\turl = https://example.com/ops/web-farm\n"), "web-farm"},
		{checkout("y", "[core]\n\tbare = false\n"), "local"},
		{t.TempDir() + "/Plain_Folder", "plain-folder"},
	} {
		if got := DefaultName(tc.dir); got != tc.want {
			t.Errorf("DefaultName(%s) = %q, want %q", tc.dir, got, tc.want)
		}
	}
	if FolderName(a) != "node1-checkout" {
		t.Errorf("FolderName(%s) = %q", a, FolderName(a))
	}
}

// TestRenamedSourceTakesOverItsFolder: objects the folder applied under
// its old name (its base name) are taken over by its new one; another
// source's objects are still refused.
func TestRenamedSourceTakesOverItsFolder(t *testing.T) {
	ctx := context.Background()
	st := etcdtest.Start(t, true)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "g0.yaml"), []byte(group(0, 8080)), 0o644); err != nil {
		t.Fatal(err)
	}
	old := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "checkout", Dir: dir, Prune: true}}
	if err := old.Sync(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	stranger := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "sites", Dir: dir, Prune: true}}
	if err := stranger.Sync(ctx, "start"); err == nil || !strings.Contains(err.Error(), "managed by source") {
		t.Fatalf("another source's objects: %v", err)
	}
	renamed := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "sites", Dir: dir, Prune: true, AdoptFrom: []string{"checkout"}}}
	if err := renamed.Sync(ctx, "start"); err != nil {
		t.Fatalf("renamed source: %v", err)
	}
	snap, _ := st.ListSpecs(ctx)
	for _, o := range snap.Objects {
		if got := o.Meta().Annotations[v1alpha1.AnnotationSource]; got != "sites" {
			t.Errorf("%s owned by %q, want sites", v1alpha1.RefOf(o), got)
		}
	}
}

// TestACheckoutNeverGoesBackward: a checkout reset to an older commit (a
// new leader's stale checkout, a force-push) is refused naming both
// commits, and the applied revision stays; --allow-rollback applies it.
func TestACheckoutNeverGoesBackward(t *testing.T) {
	ctx := context.Background()
	st := etcdtest.Start(t, true)
	dir := t.TempDir()
	run := func(args ...string) string { return gittest.Run(t, dir, args...) }
	commit := func(port int) string {
		if err := os.WriteFile(filepath.Join(dir, "g0.yaml"), []byte(group(0, port)), 0o644); err != nil {
			t.Fatal(err)
		}
		run("add", ".")
		run("commit", "-q", "-m", fmt.Sprint(port))
		return run("rev-parse", "HEAD")
	}
	run("init", "-q", "-b", "main")
	old := commit(8080)
	r := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "t", Dir: dir, Prune: true}}
	if err := r.Sync(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	newer := commit(9090)
	if err := r.Sync(ctx, "change"); err != nil {
		t.Fatal(err)
	}
	run("checkout", "-q", old) // the stale checkout
	err := r.Sync(ctx, "change")
	if err == nil || !strings.Contains(err.Error(), old[:12]) || !strings.Contains(err.Error(), newer[:12]) || !strings.Contains(err.Error(), "--allow-rollback") {
		t.Fatalf("an older checkout: %v, want a refusal naming %.12s and %.12s", err, old, newer)
	}
	src, _ := r.source(ctx)
	if src.Revision != "git:"+newer {
		t.Errorf("applied revision %s, want git:%s to stay", src.Revision, newer)
	}
	if p := port(t, st); p != 9090 {
		t.Errorf("port %d after the refused rollback, want 9090", p)
	}
	r.Source.AllowRollback = true
	if err := r.Sync(ctx, "change"); err != nil {
		t.Fatal(err)
	}
	if p := port(t, st); p != 8080 {
		t.Errorf("port %d after an allowed rollback, want 8080", p)
	}
}

func port(t *testing.T, st *etcdstore.Store) int32 {
	t.Helper()
	o, err := st.Get(context.Background(), v1alpha1.Ref{Kind: "IISSite", Name: "site-0"})
	if err != nil {
		t.Fatal(err)
	}
	return o.(*v1alpha1.IISSite).Spec.Bindings[0].Port
}

// TestIgnoredFilesAndOutsideLinks: a manifest git ignores is not applied
// and does not make the revision dirty; a manifest that is a symlink out
// of the folder is refused by name.
func TestIgnoredFilesAndOutsideLinks(t *testing.T) {
	ctx := context.Background()
	st := etcdtest.Start(t, true)
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("g0.yaml", group(0, 8080))
	write(".gitignore", "local-*.yaml\n")
	gittest.Run(t, dir, "init", "-q", "-b", "main")
	gittest.Run(t, dir, "add", ".")
	gittest.Run(t, dir, "commit", "-q", "-m", "one")
	head := gittest.Run(t, dir, "rev-parse", "HEAD")
	write("local-test.yaml", group(1, 8081)) // ignored: in no commit
	r := &Reconciler{Store: st, Log: logr.Discard(), Source: Source{Name: "t", Dir: dir, Prune: true}}
	if err := r.Sync(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, st); n != 3 {
		t.Errorf("%d objects stored, want the 3 of g0.yaml (local-test.yaml is ignored)", n)
	}
	if src, _ := r.source(ctx); src.Revision != "git:"+head {
		t.Errorf("revision %s, want the clean git:%s", src.Revision, head)
	}

	outside := filepath.Join(t.TempDir(), "elsewhere.yaml")
	if err := os.WriteFile(outside, []byte(group(2, 8082)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "linked.yaml")); err != nil {
		t.Fatal(err)
	}
	err := r.Sync(ctx, "change")
	if err == nil || !strings.Contains(err.Error(), "linked.yaml is a symlink to") || !strings.Contains(err.Error(), "outside the folder") {
		t.Fatalf("a link out of the folder: %v", err)
	}
	if n := stored(t, st); n != 3 {
		t.Errorf("%d objects after the refused change, want 3", n)
	}
}
