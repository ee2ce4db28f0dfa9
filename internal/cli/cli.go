// Package cli is the sitekeeper command line: kubectl-like verbs over
// manifests, the store and the simulated cluster.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/ops"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/version"
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
	// requestTimeout bounds each store call (--request-timeout).
	requestTimeout time.Duration
	// endpointsFrom says where the endpoints came from, for errors.
	endpointsFrom string
	// insecure allows plaintext beyond loopback (--insecure-plaintext).
	insecure bool
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
	if etcdstore.IsPermissionDenied(err) {
		fmt.Fprintln(stderr, "Your certificate's role does not allow this: a viewer reads; an operator also switches over, suspends, resumes and clears failures; an admin also applies and deletes, and manages members and snapshots (sitekeeper certs operator NAME --role admin).")
	}
	var unreachable unreachableError
	if etcdstore.IsTimeout(err) && !errors.As(err, &unreachable) {
		name := ""
		if cmd, _, ferr := root.Find(args); ferr == nil {
			for ; cmd.HasParent() && cmd.Parent().HasParent(); cmd = cmd.Parent() {
			}
			name = cmd.Name()
		}
		fmt.Fprintln(stderr, timeoutHint(name))
	}
	return ExitError
}

// changing are the commands that write to the store: when one times out,
// its change may have been stored before the answer was lost.
var changing = map[string]string{
	"apply": "sitekeeper diff -f PATH", "delete": "sitekeeper get KIND NAME", "switchover": "sitekeeper get groups",
	"suspend": "sitekeeper get groups", "resume": "sitekeeper get groups", "clear-failures": "sitekeeper describe KIND NAME",
	"sim": "sitekeeper get nodes", "doctor": "sitekeeper doctor", "member": "sitekeeper member list", "source": "sitekeeper source list",
}

// timeoutHint says what a timeout means for the command that got it
// (the name of root's subcommand).
func timeoutHint(command string) string {
	if check, ok := changing[command]; ok {
		return fmt.Sprintf("The store did not answer in time (--request-timeout): the change may or may not have been stored. Check with `%s` before running the command again.", check)
	}
	return "The store did not answer in time (--request-timeout): is it running, and does it have a quorum? `sitekeeper member list` shows its members."
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
		Version:       fmt.Sprintf("%s (commit %s)", version.Version, version.Commit),
	}
	root.SetVersionTemplate("sitekeeper {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	g := &globalFlags{}
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		limitMemory(cmd)
		return requestTimeoutRange.check("--request-timeout", g.requestTimeout)
	}
	root.PersistentFlags().StringVar(&g.endpointsFlag, "endpoints", "", "store endpoints, comma-separated (default: $SITEKEEPER_ENDPOINTS, else the endpoint the last 'sitekeeper up' recorded)")
	root.PersistentFlags().CountVarP(&g.verbose, "verbose", "v", "log more (repeat for more detail)")
	root.PersistentFlags().DurationVar(&g.requestTimeout, "request-timeout", etcdstore.DefaultRequestTimeout, "how long any one store call may take before the command ends with an error")
	root.PersistentFlags().StringVar(&g.endpointsFlag, "etcd-endpoints", "", "same as --endpoints")
	root.PersistentFlags().StringVar(&g.tls.CA, "etcd-cacert", "", "CA certificate (PEM) that signed the etcd members' certificates")
	root.PersistentFlags().StringVar(&g.tls.Cert, "etcd-cert", "", "client certificate (PEM) for etcd; in member mode also the member's server certificate")
	root.PersistentFlags().StringVar(&g.tls.Key, "etcd-key", "", "private key (PEM) of --etcd-cert")
	root.PersistentFlags().BoolVar(&g.insecure, "insecure-plaintext", false, "allow plaintext store traffic on addresses other hosts reach (a member's URLs, up's --listen, a client's --endpoints): anyone who reaches them can change the cluster; a lab only, warned at every start")
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
		newDrainCmd(s, g),
		newUncordonCmd(s, g),
		newSimCmd(s, g),
		newImportCmd(s),
		newServiceCmd(s),
		newWitnessCmd(s, g),
		newMemberCmd(s, g),
		newDoctorCmd(s, g),
		newSnapshotCmd(s, g),
		newSourceCmd(s, g),
		newInitCmd(s),
		newJoinCmd(s),
		newTokenCmd(s),
		newCertsCmd(s),
		newExplainCmd(s),
		newConformanceCmd(s, g),
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

// parent makes cmd, a command of subcommands, refuse one it does not have
// (a usage error, exit 2) instead of printing its help and exiting 0.
func parent(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		var names []string
		for _, sc := range c.Commands() {
			if !sc.Hidden && sc.Name() != "help" {
				names = append(names, sc.Name())
			}
		}
		hint := ""
		if cl := ops.Closest(args[0], names); cl != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", cl)
		}
		return usagef("%s: unknown subcommand %q%s; use one of %s", c.CommandPath(), args[0], hint, strings.Join(names, ", "))
	}
	return cmd
}

// oneShotMemoryLimit is the soft heap limit of commands that read manifests
// once and exit. Their garbage (a YAML tree per file, a JSON copy per
// document) let the heap reach twice the live objects: 60 files of 1 MiB
// (348,000 objects) needed 730 MiB; with this limit, under 500 MiB, at the
// cost of more collections. GOMEMLIMIT, when set, wins.
const oneShotMemoryLimit = 400 << 20

// longRunningGCPercent is the collector's target for the commands that run
// for months (up, agent, witness): the heap may grow by half its
// live objects between collections, not by all of them. Their live heap is
// the store's index and caches, and an idle node allocates little (1.7 MB/s
// at 1,000 groups). Side by side with GOGC=100 (hack/scale): at 1,000
// groups 142–148 MiB RSS against 169–173, CPU after start-up about a point
// higher; at 5,000 groups 495–503 MiB against 620–628, but 41–52 % CPU
// after start-up against 23–28 % (set GOGC=100 there to trade memory back).
const longRunningGCPercent = 50

// limitMemory sets that limit for the commands it suits, and the tighter
// collection for the long-running ones. GOGC and GOMEMLIMIT, when set, win.
func limitMemory(cmd *cobra.Command) {
	switch cmd.Name() {
	case "apply", "validate", "diff", "plan", "delete", "import":
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(oneShotMemoryLimit)
		}
	case "up", "agent", "witness": // the Windows service runs agent
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(longRunningGCPercent)
		}
	}
}
