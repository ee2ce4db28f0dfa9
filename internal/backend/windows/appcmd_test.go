package windows

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// variants returns data as recorded, with CRLF line ends, and with a UTF-8
// BOM: appcmd's real output is CRLF, the documentation's samples LF.
func variants(data []byte) map[string][]byte {
	lf := bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	return map[string][]byte{
		"as recorded": data,
		"CRLF":        bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n")),
		"BOM":         append([]byte("\xef\xbb\xbf"), data...),
	}
}

func TestParseSiteLinesOnRecordedOutput(t *testing.T) {
	three := []SiteLine{
		{Name: "Default Web Site", ID: 1, State: backend.SiteStarted, Bindings: []backend.Binding{{Protocol: "http", IP: "*", Port: 80}}},
		{Name: "Site1", ID: 2, State: backend.SiteStarted, Bindings: []backend.Binding{{Protocol: "http", IP: "*", Port: 81}}},
		{Name: "Site2", ID: 3, State: backend.SiteStopped, Bindings: []backend.Binding{{Protocol: "http", IP: "*", Port: 82}}},
	}
	for _, tt := range []struct {
		file string
		want []SiteLine
	}{
		{"appcmd/list-site.three-sites.txt", three},
		{"appcmd/list-site.default-only.txt", three[:1]},
	} {
		for name, data := range variants(fixture(t, tt.file)) {
			got, err := ParseSiteLines(data, 0)
			if err != nil {
				t.Fatalf("%s (%s): %v", tt.file, name, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s (%s) (-want +got):\n%s", tt.file, name, diff)
			}
		}
	}
	odd := "SITE \"Mixed\" (id:9,bindings:http/[fe80::1]:80:,net.tcp/808:*,state:Unknown)\r\nSITE \"NoBindings\" (id:10,bindings:,state:Stopped)\r\n"
	got, err := ParseSiteLines([]byte(odd), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[0].Bindings) != 2 || got[0].Bindings[0].IP != "fe80::1" || got[0].State != backend.SiteUnknown || len(got[1].Bindings) != 0 {
		t.Errorf("IPv6, net.tcp, Unknown and empty bindings: %+v", got)
	}
	if got, err := ParseSiteLines(nil, 0); err != nil || len(got) != 0 {
		t.Errorf("empty output: %v, %v", got, err)
	}
	if _, err := ParseSiteLines([]byte("APPPOOL \"DefaultAppPool\" (MgdVersion:v4.0,MgdMode:Integrated,state:Started)"), 0); err == nil {
		t.Error("an APPPOOL line parsed as a site")
	}
}

func TestAppcmdErrorsOnRecordedOutput(t *testing.T) {
	tests := []struct {
		file, hresult, message string
		exit                   int
		is                     error
	}{
		{file: "appcmd/error.start-site-800710d8.azure-pipelines-extensions-187.txt", hresult: "800710D8",
			message: "Command execution failed. The object identifier does not represent a valid object.", exit: 1, is: backend.ErrUnsupported},
		{file: "appcmd/error.too-many-bindings-8007007a.azure-pipelines-extensions-677.txt", hresult: "8007007A",
			message: "Failed to generate item output. The data area passed to a system call is too small.", exit: 1},
	}
	for _, tt := range tests {
		for name, data := range variants(fixture(t, tt.file)) {
			_, err := ParseSiteLines(data, tt.exit)
			var ae *AppcmdError
			if !errors.As(err, &ae) {
				t.Fatalf("%s (%s): err = %v, want *AppcmdError", tt.file, name, err)
			}
			if ae.HResult != tt.hresult || ae.Message != tt.message {
				t.Errorf("%s (%s): hresult %q message %q", tt.file, name, ae.HResult, ae.Message)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%s: %v is not %v", tt.file, err, tt.is)
			}
		}
	}
}

// TestAppcmdExitCodesFromExchangeSetupLog pairs each ERROR line of a real
// Exchange setup log with the exit code the log reports for it.
func TestAppcmdExitCodesFromExchangeSetupLog(t *testing.T) {
	data := fixture(t, "appcmd/exchange-setup-log.appcmd-errors.txt")
	outRE := regexp.MustCompile(`Process standard output: (ERROR \(.*\))`)
	exitRE := regexp.MustCompile(`(?:Ignoring exit code|failed with exit code) (\d+)`)
	var pending string
	seen := map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := outRE.FindStringSubmatch(sc.Text()); m != nil {
			pending = m[1]
			continue
		}
		m := exitRE.FindStringSubmatch(sc.Text())
		if m == nil || pending == "" {
			continue
		}
		exit, _ := strconv.Atoi(m[1])
		ae, ok := ParseAppcmdError([]byte(pending), exit)
		if !ok || ae.Message == "" {
			t.Fatalf("%q: not parsed", pending)
		}
		switch exit {
		case 183:
			if !errors.Is(ae, backend.ErrExists) || !strings.Contains(ae.Message, "duplicate") {
				t.Errorf("exit 183 %q: want a duplicate (ErrExists)", ae.Message)
			}
		case 50:
			if !errors.Is(ae, backend.ErrUnsupported) {
				t.Errorf("exit 50 %q: want ErrUnsupported", ae.Message)
			}
		}
		seen[exit] = true
		pending = ""
	}
	if !seen[183] || !seen[50] {
		t.Errorf("the log's exit codes 183 and 50 were not both checked: %v", seen)
	}
	notFound := &AppcmdError{Exit: 1168, Message: `Cannot find SITE object with identifier "X".`}
	if !errors.Is(notFound, backend.ErrNotFound) {
		t.Error("exit 1168 is not ErrNotFound")
	}
}

func TestParseAppcmdSitesAndCrossCheck(t *testing.T) {
	xmlOut := "\ufeff<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<appcmd>\r\n" +
		`<SITE SITE.NAME="WebSite1" SITE.ID="7" bindings="http/10.0.0.5:80:" state="Stopped">` +
		`<site name="WebSite1" id="7" serverAutoStart="false"><bindings><binding protocol="http" bindingInformation="10.0.0.5:80:" /></bindings>` +
		`<application path="/" applicationPool="web1"><virtualDirectory path="/" physicalPath="E:\sites\web1" /></application></site></SITE>` + "\r\n" +
		`<SITE SITE.NAME="Other" SITE.ID="8" bindings="http/*:81:" state="Started"><site name="Other" id="8"><bindings><binding protocol="http" bindingInformation="*:81:" /></bindings></site></SITE>` +
		"\r\n</appcmd>\r\n"
	sites, err := ParseAppcmdSites([]byte(xmlOut), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 2 || sites[0].State != backend.SiteStopped || sites[0].PhysicalPath != `E:\sites\web1` || sites[1].State != backend.SiteStarted {
		t.Fatalf("sites = %+v", sites)
	}
	if _, err := ParseAppcmdSites(fixture(t, "appcmd/error.too-many-bindings-8007007a.azure-pipelines-extensions-677.txt"), 1); err == nil {
		t.Error("an appcmd ERROR parsed as a listing")
	}

	ps := reply(map[string]any{"sites": []any{map[string]any{"id": 7, "name": "WebSite1", "physicalPath": `E:\sites\web1`, "appPool": "web1", "webState": "Started",
		"bindings": []any{map[string]any{"protocol": "http", "bindingInformation": "10.0.0.5:80:"}}}}})
	b, _, _ := newTestBackend(t, psRec(scriptIISList, ps, 0), Recording{Name: appcmdPath, Args: AppcmdListArgs(), Stdout: xmlOut})
	diffs, err := b.CrossCheck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 2 || !strings.Contains(diffs[0], "state Started") || !strings.Contains(diffs[1], `"Other": listed by appcmd`) {
		t.Errorf("cross-check differences:\n%s", strings.Join(diffs, "\n"))
	}
}

func TestListSitesFallsBackToAppcmd(t *testing.T) {
	xmlOut := `<appcmd><SITE SITE.NAME="A" SITE.ID="1" state="Started"><site name="A" id="1"><bindings><binding protocol="http" bindingInformation="*:80:" /></bindings></site></SITE></appcmd>`
	b, r, _ := newTestBackend(t, psRec(scriptIISList, failure("ModuleMissing", "IIS management is not installed"), 1), Recording{Name: appcmdPath, Args: AppcmdListArgs(), Stdout: xmlOut})
	sites, err := b.ListSites(context.Background())
	if err != nil || len(sites) != 1 || sites[0].Name != "A" || sites[0].State != backend.SiteStarted {
		t.Fatalf("sites = %+v, err = %v", sites, err)
	}
	golden(t, "appcmd-list.txt", rendered(r.Calls))
}
