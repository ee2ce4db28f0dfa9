package gitops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"

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
