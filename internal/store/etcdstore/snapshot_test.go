package etcdstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/store"
)

// TestSnapshotSaveAndRestore: a snapshot of a store with objects, restored
// into a new data folder, starts a store that holds them; a restore never
// overwrites a folder.
func TestSnapshotSaveAndRestore(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.db")
	info, err := st.SaveSnapshot(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	if info.Keys == 0 || info.Revision == 0 {
		t.Errorf("snapshot info %+v", info)
	}
	dir := filepath.Join(t.TempDir(), "etcd")
	if err := RestoreSnapshot(RestoreOptions{Snapshot: file, DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	if err := RestoreSnapshot(RestoreOptions{Snapshot: file, DataDir: dir}); err == nil || !strings.Contains(err.Error(), "move it aside") {
		t.Errorf("a second restore into the same folder: %v", err)
	}
	srv, err := StartServer(ctx, ServerOptions{DataDir: dir, Fast: true, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	back, err := Connect([]string{srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	snap, err := back.List(ctx)
	if err != nil || len(snap.Objects) != 3 {
		t.Fatalf("restored store: %d objects, %v; want 3", len(snap.Objects), err)
	}
	if snap.Revision < restoreRevisionBump {
		t.Errorf("restored revision %d: not bumped past every revision a client saw", snap.Revision)
	}
}

// TestDamagedDatabaseIsNamedNotPanicked: a database with a damaged page
// is refused before etcd opens it, with the file and what to do.
func TestDamagedDatabaseIsNamedNotPanicked(t *testing.T) {
	dir := t.TempDir()
	srv, err := StartServer(context.Background(), ServerOptions{DataDir: dir, Fast: true, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := Connect([]string{srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(context.Background(), objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	srv.Close()
	db := filepath.Join(dir, "member", "snap", "db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// Overwrite the pages after the two meta pages with garbage.
	page := 4096
	for i := 2 * page; i < len(b); i++ {
		b[i] = 0xA5
	}
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = StartServer(context.Background(), ServerOptions{DataDir: dir, Fast: true, Log: logr.Discard()})
	if err == nil || !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "snapshot restore") {
		t.Fatalf("start on a damaged database: %v, want an error naming %s and the fix", err, db)
	}
}
