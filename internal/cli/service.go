package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/winsvc"
)

func newServiceCmd(s *streams) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "service install|uninstall|start|stop",
		Short: "Run the agent as a Windows service",
		Long: `Service registers 'sitekeeper agent' with the Windows Service Control
Manager: started automatically at boot (not delayed: it takes the shared
disks offline before it joins), restarted 5 s and then 30 s after a crash or
an exit with an error, stopped cleanly on service stop. Its log goes to
%ProgramData%\sitekeeper\logs\agent.log (rotated) unless the agent arguments
give --log-file; starts and stops are written to the Application event log
under the service's name. Run it from an elevated prompt.`,
	}
	cmd.PersistentFlags().StringVar(&name, "name", winsvc.DefaultName, "service name")
	install := &cobra.Command{
		Use:   "install -- agent --node NAME [agent flags]",
		Short: "Register the service with the agent's arguments",
		Example: `  sitekeeper service install -- agent --node node1 --endpoints https://10.0.0.11:2379 ` +
			`--etcd-cacert C:\sitekeeper\ca.pem --etcd-cert C:\sitekeeper\node1.pem --etcd-key C:\sitekeeper\node1-key.pem`,
		RunE: func(cmd *cobra.Command, args []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find sitekeeper.exe: %w", err)
			}
			if exe, err = filepath.Abs(exe); err != nil {
				return err
			}
			c := winsvc.Config{Name: name, Exe: exe, Args: args}
			if err := c.Validate(); err != nil {
				return usagef("%v", err)
			}
			if err := winsvc.Install(c); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "service %s installed; start it with: sitekeeper service start\n", name)
			return nil
		},
	}
	verb := func(use, short, done string, f func(string) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: exactArgs(0, "no arguments"),
			RunE: func(*cobra.Command, []string) error {
				if err := f(name); err != nil {
					return err
				}
				fmt.Fprintf(s.out, "service %s %s\n", name, done)
				return nil
			},
		}
	}
	cmd.AddCommand(install,
		verb("uninstall", "Stop and remove the service", "removed", winsvc.Uninstall),
		verb("start", "Start the service", "started", winsvc.Start),
		verb("stop", "Stop the service and wait until it has stopped", "stopped", winsvc.Stop))
	return parent(cmd)
}
