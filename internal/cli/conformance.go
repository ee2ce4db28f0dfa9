package cli

import (
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/internal/conformance"
	"github.com/sitekeeper/sitekeeper/internal/logging"
)

func newConformanceCmd(s *streams, g *globalFlags) *cobra.Command {
	cmd := parent(&cobra.Command{
		Use:   "conformance windows",
		Short: "Prove on a real server what no test here can: the README's [verify] behaviours",
	})
	var o conformance.Options
	win := &cobra.Command{
		Use:   "windows --site-name NAME --ip CIDR [--interface ALIAS] [--disk ID --disk-root ROOT] [--dhcp-interface ALIAS]",
		Short: "Run the Windows backend's [verify] checks on scratch resources, then clean up",
		Long: `Runs, on the Windows server it is started on (elevated), every behaviour
the README marks [verify], against a scratch IIS site, a free scratch address
and, when named, a scratch shared disk: the PowerShell host and its
replacement after a kill, an address's lifetime and its expiry without
renewals, the ARP announcement (captured with pktmon), a site's start and
stop, a binding conflict, a group's bring-up and take-down, the disk's
offline and online, the refusal of an interface with DHCP. It removes
everything it created, prints a table, and writes every request and reply
to the bundle folder (replay.json, arp.txt): send the bundle with the table.
Exit status: 0 when no check failed, 1 otherwise.`,
		Example: `  sitekeeper conformance windows --site-name sk-conformance --ip 10.0.0.250/24 --interface Ethernet0
  sitekeeper conformance windows --site-name sk-conformance --ip 10.0.0.250/24 --disk serial:WD-WCC4N0123456 --disk-root S:\`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runtime.GOOS != "windows" {
				return fmt.Errorf("conformance windows checks the Windows server it runs on; copy sitekeeper.exe there and run it from an elevated prompt")
			}
			o.Log = logging.New(s.err, g.verbose)
			results, replay, err := conformance.RunWindows(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := conformance.Print(s.out, results); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "requests and replies: %s\n", replay)
			if n := conformance.Failed(results); n > 0 {
				return fmt.Errorf("%d check(s) failed; send the table and the folder %s to the Sitekeeper maintainers", n, o.Bundle)
			}
			return nil
		},
	}
	win.Flags().StringVar(&o.SiteName, "site-name", "", "a scratch IIS site name that does not exist (created, then deleted)")
	win.Flags().StringVar(&o.Address, "ip", "", "a free scratch IPv4 address with its prefix, such as 10.0.0.250/24")
	win.Flags().StringVar(&o.Interface, "interface", "", "the interface for the scratch address (default: the default route's)")
	win.Flags().Int32Var(&o.Port, "port", 18080, "the scratch site's http port")
	win.Flags().StringVar(&o.Disk, "disk", "", "a scratch shared disk (serial:NUMBER or its UniqueId) to take offline and online")
	win.Flags().StringVar(&o.DiskRoot, "disk-root", "", `where the scratch disk's volume is mounted (S:\)`)
	win.Flags().StringVar(&o.Cert, "cert", "", `the thumbprint of a certificate in Cert:\LocalMachine\My with its private key, which the standby check must find usable`)
	win.Flags().StringVar(&o.Mirror, "mirror", "", "a DataKeeper mirrored volume (E) whose role on this node is read")
	win.Flags().Int32Var(&o.FTPPort, "ftp-port", 0, "start and stop a scratch FTP site on this port (needs the FTP server role)")
	win.Flags().StringVar(&o.DHCPInterface, "dhcp-interface", "", "an interface with DHCP on: adding an address to it must be refused")
	win.Flags().DurationVar(&o.Lifetime, "lifetime", 3*time.Second, "the scratch address's lifetime")
	win.Flags().StringVar(&o.Bundle, "bundle", "", "folder for the requests, replies and captures (default sitekeeper-conformance-TIME)")
	cmd.AddCommand(win)
	return cmd
}
