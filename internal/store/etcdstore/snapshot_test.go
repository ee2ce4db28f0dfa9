package etcdstore

import (
	"bytes"
	"context"
	"encoding/binary"
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

// TestDamagedFilesAreNamedNotPanicked: a database with a damaged page, or
// a write-ahead log with a damaged record, is refused before etcd opens
// it, with the file and what to do; a log whose last record was torn (the
// power went mid-write) is not damage, and the store starts with what was
// committed before it.
func TestDamagedFilesAreNamedNotPanicked(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage changes the data folder and returns the path the error
		// must name ("" when the store must start).
		damage func(t *testing.T, dir string) string
	}{
		{"database page", func(t *testing.T, dir string) string {
			db := filepath.Join(dir, "member", "snap", "db")
			// The pages after the two meta pages become garbage.
			rewrite(t, db, func(b []byte) {
				for i := 2 * 4096; i < len(b); i++ {
					b[i] = 0xA5
				}
			})
			return db
		}},
		{"write-ahead log record", func(t *testing.T, dir string) string {
			walDir := filepath.Join(dir, "member", "wal")
			rewrite(t, firstWAL(t, walDir), func(b []byte) {
				// One byte in the middle of the largest record (the
				// apply's transaction: text, no zeroed sector), so that
				// its CRC no longer matches. Flipping bytes at random also
				// hit length fields and zero-filled records, and damage
				// that reaches a zeroed sector reads as a torn last write,
				// which etcd (and so the check) cuts: 2 runs in 30.
				end := len(bytes.TrimRight(b, "\x00"))
				best, bestLen := 0, 0
				for off := 0; off+8 <= end; {
					n := walFrameLen(b[off:])
					if n <= 0 || off+8+n > len(b) {
						break
					}
					if n > bestLen {
						best, bestLen = off, n
					}
					off += 8 + n
				}
				if bestLen < 64 {
					t.Fatalf("no record large enough to damage in %d bytes of log", end)
				}
				b[best+8+bestLen/2] ^= 0xFF
			})
			return walDir
		}},
		{"torn last log record", func(t *testing.T, dir string) string {
			rewrite(t, firstWAL(t, filepath.Join(dir, "member", "wal")), func(b []byte) {
				// The last sector the log wrote never reached the disk.
				end := len(bytes.TrimRight(b, "\x00"))
				clear(b[end&^511 : end])
			})
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
			named := tc.damage(t, dir)
			srv, err = StartServer(context.Background(), ServerOptions{DataDir: dir, Fast: true, Log: logr.Discard()})
			if named == "" {
				if err != nil {
					t.Fatalf("start after a torn last record: %v", err)
				}
				srv.Close()
				return
			}
			if err == nil {
				srv.Close()
			}
			if err == nil || !strings.Contains(err.Error(), named) || !strings.Contains(err.Error(), "snapshot restore") {
				t.Fatalf("start on a damaged %s: %v, want an error naming %s and the fix", tc.name, err, named)
			}
		})
	}
}

// walFrameLen is the size of the data (with its padding) of the log record
// whose frame starts b: a little-endian length, its top byte holding the
// padding in its low three bits.
func walFrameLen(b []byte) int {
	v := binary.LittleEndian.Uint64(b)
	return int(v&0x00FFFFFFFFFFFFFF) + int((v>>56)&0x7)
}

func rewrite(t *testing.T, path string, change func([]byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	change(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func firstWAL(t *testing.T, dir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no write-ahead log in %s: %v", dir, err)
	}
	return names[0]
}
