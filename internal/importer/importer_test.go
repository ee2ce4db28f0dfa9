package importer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitekeeper/sitekeeper/internal/backend/windows/iisconfig"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

const fixtures = "../../test/fixtures/windows/applicationhost"

// TestImportRealConfigurations: every real configuration imports without
// a crash; the manifests are refused while fixes are listed, and validate
// once the fixes are made.
func TestImportRealConfigurations(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "*"))
	var configs []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".source") {
			configs = append(configs, f)
		}
	}
	if len(configs) == 0 {
		t.Fatal("no fixtures in " + fixtures)
	}
	for _, f := range configs {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			sites, err := iisconfig.ParseSites(fh)
			if err != nil {
				t.Fatal(err)
			}
			r := Import(sites, Options{Nodes: []string{"node1", "node2"}})
			if len(r.Objects) == 0 {
				t.Fatalf("nothing imported from %d sites; skipped: %v", len(sites), r.Skipped)
			}
			before := validation.Validate(r.Objects).Errors
			if len(r.Fixes) > 0 && len(before) == 0 {
				t.Errorf("%d fixes listed but the manifests already validate", len(r.Fixes))
			}
			r.ApplyExamples()
			if errs := validation.Validate(r.Objects).Errors; len(errs) > 0 {
				t.Errorf("after the listed fixes the manifests are still invalid:\n%v\nfixes:\n%v", errs, r.Fixes)
			}
		})
	}
}

func TestImportNamesTheFixes(t *testing.T) {
	sites := []iisconfig.Site{{}}
	sites[0].ID, sites[0].Name, sites[0].PhysicalPath = 7, "Default Web Site", `%SystemDrive%\inetpub\wwwroot`
	b, _ := iisconfig.ParseBinding("https", "*:443:")
	sites[0].Bindings = append(sites[0].Bindings, b)
	r := Import(sites, Options{})
	var got []string
	for _, f := range r.Fixes {
		got = append(got, f.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`IISSite/Default-Web-Site: metadata.name: the IIS site is named "Default Web Site"`,
		`IPResource/vip-default-web-site: spec.address: IISSite/Default-Web-Site binds to all unassigned addresses ("*")`,
		`spec.bindings[0].certificate.thumbprint: the certificate of https *:443: lives in HTTP.sys`,
		`spec.physicalPath: the content is on the local system drive C: (C:\inetpub\wwwroot)`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("fixes lack %q:\n%s", want, all)
		}
	}
}
