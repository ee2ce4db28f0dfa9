package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

func newSnapshotCmd(s *streams, g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot save FILE | restore FILE --data-dir DIR",
		Short: "Back the store up to a file, and make a data folder from one",
		Long: `Snapshot saves the whole store (objects, placement, status, events) at one
revision to a file, as etcd's own snapshots, and restores one into a new data
folder: the way back from a damaged database or a lost cluster.`,
	}
	save := &cobra.Command{
		Use:     "save FILE",
		Short:   "Save the store to FILE",
		Example: "  sitekeeper snapshot save /backup/sitekeeper-$(date +%F).db",
		Args:    exactArgs(1, "the FILE to write"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				info, err := st.SaveSnapshot(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(s.out, "saved %s: revision %d, %d keys, %d bytes, hash %08x\n", args[0], info.Revision, info.Keys, info.SizeBytes, info.Hash)
				return nil
			})
		},
	}
	var dataDir, name, peerURL, initialCluster string
	restore := &cobra.Command{
		Use:   "restore FILE --data-dir DIR",
		Short: "Make a data folder from a snapshot (the folder must not exist)",
		Long: `Restore makes DIR/etcd from FILE, for 'sitekeeper up --data-dir DIR' (the
default), or, with --name, --peer-url and --initial-cluster, for one member of
a cluster of several: restore the same file on every member, each with its
own name and peer URL, then start them all. The store's revision is moved
far past the old ones, so agents re-read everything. The folder must not
exist: move a damaged one aside first.`,
		Example: `  sitekeeper snapshot restore backup.db --data-dir /var/lib/sitekeeper
  sitekeeper snapshot restore backup.db --data-dir 'C:\ProgramData\Sitekeeper' --name node1 \
    --peer-url https://10.0.0.11:2380 --initial-cluster node1=https://10.0.0.11:2380,node2=https://10.0.0.12:2380,witness=https://10.0.0.13:2380`,
		Args: exactArgs(1, "the snapshot FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return usagef("--data-dir is required: the folder given to up, agent or witness")
			}
			if (name == "") != (peerURL == "") || (name == "") != (initialCluster == "") {
				return usagef("--name, --peer-url and --initial-cluster go together (a member of a cluster of several); leave all three out for up's store")
			}
			if name != "" {
				if err := etcdstore.ValidateInitialCluster(initialCluster, name, peerURL); err != nil {
					return usageError{err}
				}
			}
			info, err := etcdstore.SnapshotStatus(args[0])
			if err != nil {
				return err
			}
			dir := filepath.Join(dataDir, "etcd")
			if err := etcdstore.RestoreSnapshot(etcdstore.RestoreOptions{Snapshot: args[0], DataDir: dir, Name: name, PeerURL: peerURL, InitialCluster: initialCluster}); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "restored %s (revision %d, %d keys) into %s; start the store on --data-dir %s\n", args[0], info.Revision, info.Keys, dir, dataDir)
			return nil
		},
	}
	restore.Flags().StringVar(&dataDir, "data-dir", "", "the data folder of up, agent or witness; the store goes to DIR/etcd, which must not exist")
	restore.Flags().StringVar(&name, "name", "", "for a member of a cluster of several: its etcd name")
	restore.Flags().StringVar(&peerURL, "peer-url", "", "for a member of a cluster of several: its peer URL")
	restore.Flags().StringVar(&initialCluster, "initial-cluster", "", "for a member of a cluster of several: every member's name=peer URL")
	cmd.AddCommand(save, restore)
	return parent(cmd)
}
