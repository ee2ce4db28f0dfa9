package iisconfig

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

const fixtures = "../../../../test/fixtures/windows"

func open(t *testing.T, rel string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures, rel))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParseRealConfigurations(t *testing.T) {
	tests := []struct {
		file  string
		sites int
		check func(t *testing.T, s []Site)
	}{
		{"applicationhost/dorik84-Web-Server-IIS.applicationHost.config", 2, func(t *testing.T, s []Site) {
			want := Site{SiteConfig: backend.SiteConfig{ID: 2, Name: "mysite.tbd", PhysicalPath: `C:\inetpub\wwwroot\mysite.tbd`, AppPool: "mysite.tbd", AutoStart: true,
				Bindings: []backend.Binding{{Protocol: "http", IP: "*", Port: 80, HostName: "mysite.tbd"}, {Protocol: "https", IP: "*", Port: 443, HostName: "mysite.tbd"}}}, AutoStartSet: true}
			if diff := cmp.Diff(want, s[1]); diff != "" {
				t.Errorf("mysite.tbd (-want +got):\n%s", diff)
			}
			if s[0].PhysicalPath != `%SystemDrive%\inetpub\wwwroot` || s[0].AppPool != "" {
				t.Errorf("Default Web Site: %+v", s[0])
			}
		}},
		{"applicationhost/c1982-IIS-SharedGitConfig.applicationHost.config", 4, nil},
		{"applicationhost/JexusManager-IISExpress.original2.config", 12, nil},
		{"applicationhost/iis-docs-ftp-site-ssl.sample.xml", 1, func(t *testing.T, s []Site) {
			if s[0].Bindings[0].Protocol != "ftp" || s[0].FTPSSLPolicy != "SslAllow" || s[0].FTPCertHash != "57686F6120447564652C2049495320526F636B73" {
				t.Errorf("ftp site: %+v", s[0])
			}
		}},
		{"applicationhost/iis-docs-site-bindings.sample.xml", 1, nil},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			sites, err := ParseSites(open(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(sites) != tt.sites {
				t.Fatalf("%d sites, want %d", len(sites), tt.sites)
			}
			if tt.check != nil {
				tt.check(t, sites)
			}
		})
	}
}

func TestTruncatedDocSample(t *testing.T) {
	// The documentation prints a fragment of `appcmd list site /config`:
	// it must give an error, never a panic or a made-up site.
	sites, err := ParseSites(open(t, "appcmd/list-site.config.fragment.xml"))
	if err == nil || len(sites) != 0 {
		t.Errorf("fragment: %d sites, err %v; want an error and no site", len(sites), err)
	}
}

func TestParseBinding(t *testing.T) {
	tests := []struct {
		proto, info string
		want        backend.Binding
		err         string
	}{
		{"http", "*:80:", backend.Binding{Protocol: "http", IP: "*", Port: 80}, ""},
		{"HTTPS", "10.0.0.5:443:shop.example.com", backend.Binding{Protocol: "https", IP: "10.0.0.5", Port: 443, HostName: "shop.example.com"}, ""},
		{"http", "[fe80::1]:8080:", backend.Binding{Protocol: "http", IP: "fe80::1", Port: 8080}, ""},
		{"net.pipe", "*", backend.Binding{Protocol: "net.pipe", HostName: "*"}, ""},
		{"http", "*:eighty:", backend.Binding{}, "not a TCP port"},
		{"http", "nocolon", backend.Binding{}, "want ip:port:host"},
	}
	for _, tt := range tests {
		got, err := ParseBinding(tt.proto, tt.info)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %s: err %v, want %q", tt.proto, tt.info, err, tt.err)
			}
			continue
		}
		if diff := cmp.Diff(tt.want, got); err != nil || diff != "" {
			t.Errorf("%s %s: %v (-want +got):\n%s", tt.proto, tt.info, err, diff)
		}
	}
}

func FuzzParseSites(f *testing.F) {
	f.Add([]byte(`<site name="a" id="1"><bindings><binding protocol="http" bindingInformation="*:80:"/></bindings></site>`))
	f.Add([]byte("\xef\xbb\xbf<configuration><system.applicationHost><sites/></system.applicationHost></configuration>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseSites(strings.NewReader(string(data)))
	})
}

// TestRefusesWhatIsNoIISConfiguration: empty, non-XML, foreign XML and
// oversized documents are errors (import exits 1), never "0 sites".
func TestRefusesWhatIsNoIISConfiguration(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":       "",
		"blank":       " \n\t\n",
		"not XML":     "not xml at all",
		"foreign XML": `<?xml version="1.0"?><project><name>x</name></project>`,
	} {
		if sites, err := ParseSites(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: %d sites and no error", name, len(sites))
		}
	}
	for name, doc := range map[string]string{
		"no sites in applicationHost.config": `<configuration><system.applicationHost><sites/></system.applicationHost></configuration>`,
		"no sites from appcmd":               `<?xml version="1.0" encoding="UTF-8"?><appcmd></appcmd>`,
	} {
		if sites, err := ParseSites(strings.NewReader(doc)); err != nil || len(sites) != 0 {
			t.Errorf("%s: %d sites, %v; want none and no error", name, len(sites), err)
		}
	}
	big := io.MultiReader(strings.NewReader("<configuration>"), io.LimitReader(zeroes{}, MaxConfigBytes))
	if _, err := ParseSites(big); err == nil || !strings.Contains(err.Error(), "256 MiB") {
		t.Errorf("a document over the limit: %v, want an error naming the limit", err)
	}
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
