package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.uber.org/zap"
)

// SnapshotInfo describes a snapshot file.
type SnapshotInfo struct {
	Revision  int64
	Keys      int
	SizeBytes int64
	Hash      uint32
}

// SaveSnapshot writes the member's database, at one revision, to path: a
// partial file first, renamed into place once whole and synced, then read
// back to check it.
func (s *Store) SaveSnapshot(ctx context.Context, path string) (SnapshotInfo, error) {
	rc, err := s.client.Snapshot(ctx)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	defer rc.Close()
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	_, err = io.Copy(f, rc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, path)
	}
	if err != nil {
		os.Remove(part)
		return SnapshotInfo{}, fmt.Errorf("snapshot to %s: %w", path, err)
	}
	return SnapshotStatus(path)
}

// SnapshotStatus reads a snapshot file and checks its integrity hash.
func SnapshotStatus(path string) (SnapshotInfo, error) {
	st, err := snapshot.NewV3(zap.NewNop()).Status(path)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return SnapshotInfo{Revision: st.Revision, Keys: st.TotalKey, SizeBytes: st.TotalSize, Hash: st.Hash}, nil
}

// RestoreOptions say where a snapshot becomes a member's data folder.
type RestoreOptions struct {
	Snapshot string
	// DataDir is the member's etcd folder; it must not exist.
	DataDir string
	// Name, PeerURL and InitialCluster are the member's, as it will be
	// started; for the one member `sitekeeper up` runs, leave them empty.
	Name, PeerURL, InitialCluster string
}

// restoreRevisionBump moves the restored store's revision far past any a
// client saw before, and marks the old ones compacted, so that an agent's
// watch from before the restore re-reads everything instead of waiting
// for revisions that will never come again.
const restoreRevisionBump = 1_000_000_000

// RestoreSnapshot makes a data folder from a snapshot: a new cluster of
// one member (up's), or this member of a new cluster (every member
// restored from the same file, each with its own name and peer URL).
func RestoreSnapshot(o RestoreOptions) error {
	if _, err := os.Stat(o.DataDir); err == nil {
		return fmt.Errorf("restore into %s: it exists; move it aside first (a restore never overwrites a data folder)", o.DataDir)
	}
	cfg := snapshot.RestoreConfig{SnapshotPath: o.Snapshot, OutputDataDir: o.DataDir, RevisionBump: restoreRevisionBump, MarkCompacted: true}
	if o.Name == "" {
		cfg.Name, cfg.PeerURLs, cfg.InitialClusterToken = singleName, []string{"http://127.0.0.1:2380"}, "etcd-cluster"
		cfg.InitialCluster = singleName + "=http://127.0.0.1:2380"
	} else {
		cfg.Name, cfg.PeerURLs, cfg.InitialCluster, cfg.InitialClusterToken = o.Name, []string{o.PeerURL}, o.InitialCluster, clusterToken
	}
	if err := snapshot.NewV3(zap.NewNop()).Restore(cfg); err != nil {
		return fmt.Errorf("restore %s into %s: %w", o.Snapshot, o.DataDir, err)
	}
	return nil
}

// CheckDataDir reads a member's database and write-ahead log through
// before etcd opens them: a damaged page makes etcd panic deep in a
// goroutine (or hang), a damaged log record stops it with a bare protobuf
// error, with no word of which file or what to do. A missing database is fine (a new
// member).
func CheckDataDir(dir string) error {
	if err := checkDB(dir); err != nil {
		return err
	}
	return checkWAL(dir)
}

// checkWAL reads the write-ahead log's records through: a damaged record
// otherwise stops etcd with only "proto: Record: wiretype end group for
// non-group", naming no file. A torn last record (power lost mid-write)
// is not damage: etcd repairs it at start.
func checkWAL(dir string) (err error) {
	walDir := filepath.Join(dir, "member", "wal")
	if _, serr := os.Stat(walDir); errors.Is(serr, fs.ErrNotExist) {
		return nil
	}
	damaged := func(why any) error { return damagedError("write-ahead log in "+walDir, why, dir) }
	defer func() {
		if r := recover(); r != nil {
			err = damaged(r)
		}
	}()
	names, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if err != nil {
		return damaged(err)
	}
	slices.Sort(names)
	for i, name := range names {
		if werr := readWAL(name); werr != nil {
			// etcd takes an incomplete last record for a torn write and
			// cuts the log there. Only the last file can end so, and a
			// length past the end of the preallocated file is no torn
			// write but a damaged length: cutting there loses records.
			torn := errors.Is(werr, io.ErrUnexpectedEOF) && i == len(names)-1 && !strings.Contains(werr.Error(), "max entry size limit exceeded")
			if !torn {
				return damaged(fmt.Errorf("%s: %w", filepath.Base(name), werr))
			}
		}
	}
	return nil
}

// readWAL decodes every record of one log file (each file starts with its
// own CRC record, so files can be read alone).
func readWAL(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	d := wal.NewDecoder(fileutil.NewFileReader(f))
	var rec walpb.Record
	for {
		err := d.Decode(&rec)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if rec.Type == wal.CrcType {
			d.UpdateCRC(rec.Crc)
		}
	}
}

// damagedError names a damaged etcd file (what) and the two ways back.
func damagedError(what string, why any, dir string) error {
	return fmt.Errorf("the etcd %s is damaged (%v): restore the store from a snapshot (move %s aside, then `sitekeeper snapshot restore FILE --data-dir ...`), or, for a member of a cluster of several, remove the member (`sitekeeper member remove`), delete its folder and add it again", what, why, dir)
}

func checkDB(dir string) (err error) {
	db := filepath.Join(dir, "member", "snap", "db")
	if _, serr := os.Stat(db); errors.Is(serr, fs.ErrNotExist) {
		return nil
	}
	damaged := func(why any) error { return damagedError("database "+db, why, dir) }
	defer func() {
		if r := recover(); r != nil {
			err = damaged(r)
		}
	}()
	// The freelist is loaded at open, and every page is read below, in
	// this goroutine: bbolt panics on a damaged page, and a panic here can
	// be recovered (tx.Check reads in a goroutine of its own).
	b, oerr := bolt.Open(db, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second, PreLoadFreelist: true})
	if errors.Is(oerr, bolterrors.ErrTimeout) {
		who := "another process"
		if h := holderOf(db); h != "" {
			who = h
		}
		return fmt.Errorf("the etcd database %s is in use by %s: another sitekeeper runs on this data folder; stop it, or give this one another --data-dir", db, who)
	}
	if oerr != nil {
		return damaged(oerr)
	}
	defer b.Close()
	return b.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, bk *bolt.Bucket) error {
			c := bk.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
			}
			return nil
		})
	})
}
