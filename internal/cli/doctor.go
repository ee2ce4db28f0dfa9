package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

func newDoctorCmd(s *streams, g *globalFlags) *cobra.Command {
	var fix bool
	cmd := &cobra.Command{
		Use:   "doctor [--fix]",
		Short: "Find stored values that do not decode, and remove them with --fix",
		Long: `Doctor reads every key of the store and lists those whose value does not
decode as what the key holds: written by a bug, an old version, or by hand
with etcdctl. Sitekeeper skips such keys (the placement leader records a
DamagedKey Warning event, 'get' warns), so they stop nothing, but the
objects they held are missing until they are removed and applied again.

With --fix each listed key is removed, unless it changed since it was
read. Then apply the objects again from their manifests; a damaged
placement decision needs nothing: the placement leader replaces it.
Exit status: 0 when nothing is damaged (or everything listed was removed),
1 when damaged keys remain.`,
		Example: `  sitekeeper doctor
  sitekeeper doctor --fix`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return withStore(ctx, g, func(st *etcdstore.Store) error {
				keys, err := st.Damaged(ctx)
				if err != nil {
					return err
				}
				if len(keys) == 0 {
					fmt.Fprintln(s.out, "no damaged keys")
					return nil
				}
				for _, k := range keys {
					fmt.Fprintf(s.out, "damaged: %s (revision %d): %s\n", k.Key, k.Revision, k.Error)
				}
				if !fix {
					fmt.Fprintf(s.out, "%d damaged key(s); run `sitekeeper doctor --fix` to remove them, then apply the objects again\n", len(keys))
					return silentError{1}
				}
				removed, err := st.RemoveDamaged(ctx, keys)
				for _, k := range removed {
					fmt.Fprintf(s.out, "removed: %s\n", k)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(s.out, "%d damaged key(s) removed; apply the objects they held again from their manifests\n", len(removed))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&fix, "fix", false, "remove the damaged keys (each only if it did not change since it was read)")
	return cmd
}
