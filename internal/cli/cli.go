// Package cli is the sitekeeper command line: kubectl-like verbs over
// manifests, the store and the simulated cluster.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// Exit codes, as kubectl uses them.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// usageError marks a mistake in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// silentError carries an exit code for a failure already reported to the
// user (validate's error list, diff's difference).
type silentError struct{ code int }

func (e silentError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// streams are the process's standard handles.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// globalFlags are the flags every command has.
type globalFlags struct {
	endpointsFlag string
	verbose       int
	tls           etcdstore.TLSFiles
}

// Run executes the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := &streams{in: stdin, out: stdout, err: stderr}
	root := newRoot(s)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var se silentError
	if errors.As(err, &se) {
		return se.code
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(stderr, "error: %v\nSee 'sitekeeper --help' for usage.\n", err)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	return ExitError
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "requires exactly"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func newRoot(s *streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "sitekeeper",
		Short: "Keep IIS web and FTP sites highly available across Windows nodes",
		Long: `Sitekeeper keeps IIS web and FTP sites in service across a cluster of
Windows nodes: declare IISSite, IPResource and VolumeResource manifests, and an
agent on every node converges IIS and the node on them. Failover, switchback,
drift repair and first set-up are one loop.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	g := &globalFlags{}
	root.PersistentFlags().StringVar(&g.endpointsFlag, "endpoints", "", "store endpoints, comma-separated (default: $SITEKEEPER_ENDPOINTS, else the endpoint the last `sitekeeper up` recorded)")
	root.PersistentFlags().CountVarP(&g.verbose, "verbose", "v", "log more (repeat for more detail)")
	root.PersistentFlags().StringVar(&g.endpointsFlag, "etcd-endpoints", "", "same as --endpoints")
	root.PersistentFlags().StringVar(&g.tls.CA, "etcd-cacert", "", "CA certificate (PEM) that signed the etcd members' certificates")
	root.PersistentFlags().StringVar(&g.tls.Cert, "etcd-cert", "", "client certificate (PEM) for etcd; in member mode also the member's server certificate")
	root.PersistentFlags().StringVar(&g.tls.Key, "etcd-key", "", "private key (PEM) of --etcd-cert")
	root.AddCommand(
		newValidateCmd(s),
		newPlanCmd(s, g),
		newUpCmd(s, g),
		newAgentCmd(s, g),
		newApplyCmd(s, g),
		newDiffCmd(s, g),
		newGetCmd(s, g),
		newDescribeCmd(s, g),
		newDeleteCmd(s, g),
		newSwitchoverCmd(s, g),
		newEventsCmd(s, g),
		newSuspendCmd(s, g, true),
		newSuspendCmd(s, g, false),
		newClearFailuresCmd(s, g),
		newSimCmd(s, g),
		newImportCmd(s),
		newServiceCmd(s),
		newWitnessCmd(s, g),
		newMemberCmd(s, g),
		newDoctorCmd(s, g),
		newExplainCmd(s),
		newVersionCmd(s),
	)
	return root
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s; see '%s --help'", cmd.CommandPath(), what, cmd.CommandPath())
		}
		return nil
	}
}
