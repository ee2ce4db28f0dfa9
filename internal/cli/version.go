package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/explain"
	"github.com/sitekeeper/sitekeeper/internal/version"
)

func newVersionCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of sitekeeper",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(s.out, "sitekeeper %s (commit %s, %s, %s/%s, API %s)\n", version.Version, version.Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, v1alpha1.APIVersion)
			return nil
		},
	}
}

func newExplainCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "explain KIND[.FIELD...]",
		Short: "Print the manifest reference of a kind or field",
		Example: `  sitekeeper explain iissite
  sitekeeper explain iissite.spec.bindings
  sitekeeper explain ip.spec.placement.switchback`,
		Args: exactArgs(1, "one KIND[.FIELD] argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := explain.Explain(s.out, args[0]); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
}
