package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/sitekeeper/sitekeeper/internal/backend/windows/iisconfig"
	"github.com/sitekeeper/sitekeeper/internal/importer"
)

func newImportCmd(s *streams) *cobra.Command {
	var appHost, appcmdXML string
	var nodes, maps []string
	cmd := &cobra.Command{
		Use:   "import (--applicationhost FILE | --appcmd-xml FILE) [--nodes node1,node2] [--map-volume E:=vol-e]",
		Short: "Turn an existing server's IIS configuration into manifests, listing what must change first",
		Long: `Import reads applicationHost.config (or the output of
'appcmd list site /config:* /xml') and prints IISSite, IPResource and
VolumeResource manifests on standard output. What must change before the
sites can be protected (a name with spaces, a binding on "*", content on the
local C: drive, a certificate that lives in HTTP.sys) is listed on standard
error, each with its fix; until those are made, 'sitekeeper validate' refuses
the manifests (placeholders such as REPLACE-WITH-VIRTUAL-IP are on purpose).`,
		Example: `  sitekeeper import --applicationhost C:\Windows\System32\inetsrv\config\applicationHost.config --map-volume E:=vol-web > sites.yaml
  appcmd list site /config:* /xml > sites.xml && sitekeeper import --appcmd-xml sites.xml`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			file := appHost
			if (appHost == "") == (appcmdXML == "") {
				return usagef("give exactly one of --applicationhost FILE or --appcmd-xml FILE")
			}
			if file == "" {
				file = appcmdXML
			}
			vols := map[string]string{}
			for _, m := range maps {
				drive, name, ok := strings.Cut(m, "=")
				drive = strings.TrimSuffix(strings.ToUpper(drive), ":")
				if !ok || len(drive) != 1 || name == "" {
					return usagef("--map-volume %q: write it as E:=vol-name", m)
				}
				vols[drive] = name
			}
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			sites, err := iisconfig.ParseSites(f)
			if err != nil && len(sites) == 0 {
				return fmt.Errorf("%s: %w", file, err)
			}
			if err != nil {
				fmt.Fprintf(s.err, "warning: %s: %v; importing the %d site(s) read before it\n", file, err, len(sites))
			}
			r := importer.Import(sites, importer.Options{Nodes: nodes, Volumes: vols})
			for i, o := range r.Objects {
				if i > 0 {
					fmt.Fprintln(s.out, "---")
				}
				b, err := yaml.Marshal(o)
				if err != nil {
					return err
				}
				s.out.Write(b)
			}
			for _, sk := range r.Skipped {
				fmt.Fprintf(s.err, "note: %s\n", sk)
			}
			if len(r.Fixes) == 0 {
				fmt.Fprintf(s.err, "%d object(s) imported from %d IIS site(s); no change needed before protecting them\n", len(r.Objects), len(sites))
				return nil
			}
			fmt.Fprintf(s.err, "%d object(s) imported from %d IIS site(s); make these %d change(s) before they can be protected:\n", len(r.Objects), len(sites), len(r.Fixes))
			for i, fx := range r.Fixes {
				fmt.Fprintf(s.err, "%3d. %s\n", i+1, fx)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&appHost, "applicationhost", "", "an applicationHost.config file")
	cmd.Flags().StringVar(&appcmdXML, "appcmd-xml", "", "the output of 'appcmd list site /config:* /xml'")
	cmd.Flags().StringSliceVar(&nodes, "nodes", []string{"node1", "node2"}, "placement of the imported sites, highest priority first")
	cmd.Flags().StringSliceVar(&maps, "map-volume", nil, "E:=NAME: the VolumeResource that already holds a drive (repeatable)")
	return cmd
}
