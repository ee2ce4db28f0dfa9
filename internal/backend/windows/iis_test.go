package windows

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/windows/iisconfig"
)

// psRec answers every run of script with stdout.
func psRec(script, stdout string, exit int) Recording {
	args, err := ScriptArgs(script)
	if err != nil {
		panic(err)
	}
	return Recording{Name: PowerShell, Args: args, AnyStdin: true, Stdout: stdout, Exit: exit}
}

func newTestBackend(t *testing.T, recs ...Recording) (*Backend, *Replay, *[]string) {
	t.Helper()
	r := NewReplay(recs...)
	var announced []string
	b, err := New(Options{Runner: r, DataDir: t.TempDir(), Log: logr.Discard(), DADTimeout: 3e9, SwitchoverTimeout: 1e9,
		Announce: func(ip, gw string) error { announced = append(announced, ip+" via "+gw); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return b, r, &announced
}

// rendered prints calls as the golden files hold them: argv (scripts by
// name), then the request.
func rendered(calls []Recording) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "%s %s\n", c.Name, strings.Join(DescribeArgs(c.Args), " "))
		if c.Stdin != "" {
			fmt.Fprintf(&b, "  stdin: %s\n", c.Stdin)
		}
	}
	return b.String()
}

func TestParseBinding(t *testing.T) {
	tests := []struct {
		proto, info string
		want        backend.Binding
		wantErr     bool
	}{
		{proto: "http", info: "*:80:", want: backend.Binding{Protocol: "http", IP: "*", Port: 80}},
		{proto: "HTTP", info: "*:80:", want: backend.Binding{Protocol: "http", IP: "*", Port: 80}},
		{proto: "https", info: ":443:", want: backend.Binding{Protocol: "https", IP: "*", Port: 443}},
		{proto: "https", info: "127.0.0.1:443:", want: backend.Binding{Protocol: "https", IP: "127.0.0.1", Port: 443}},
		{proto: "http", info: "*:80:www.redisoncloud.com", want: backend.Binding{Protocol: "http", IP: "*", Port: 80, HostName: "www.redisoncloud.com"}},
		{proto: "http", info: "[fe80::1]:8080:a.example", want: backend.Binding{Protocol: "http", IP: "fe80::1", Port: 8080, HostName: "a.example"}},
		{proto: "ftp", info: "*:21:", want: backend.Binding{Protocol: "ftp", IP: "*", Port: 21}},
		{proto: "net.tcp", info: "808:*", want: backend.Binding{Protocol: "net.tcp", HostName: "808:*"}},
		{proto: "http", info: "*:http:", wantErr: true},
		{proto: "http", info: "*", wantErr: true},
		{proto: "http", info: "[::1:80:", wantErr: true},
	}
	for _, tt := range tests {
		got, err := iisconfig.ParseBinding(tt.proto, tt.info)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s %q: err = %v, want error %t", tt.proto, tt.info, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("%s %q = %+v, want %+v", tt.proto, tt.info, got, tt.want)
		}
		if !tt.wantErr && tt.proto != "net.tcp" && tt.info[0] != ':' {
			if back := BindingInformation(got); !strings.EqualFold(back, tt.info) {
				t.Errorf("BindingInformation(%+v) = %q, want %q", got, back, tt.info)
			}
		}
	}
}

func TestParseSiteList(t *testing.T) {
	web := map[string]any{"id": 2, "name": "WebSite1", "physicalPath": `E:\sites\web1`, "appPool": "web1", "serverAutoStart": false, "webState": "Started",
		"bindings": []any{
			map[string]any{"protocol": "https", "bindingInformation": "10.0.0.5:443:www.example.com", "sslFlags": 1, "certHash": "\u200e12fd38fa8f58c8a74b3039962882defe4199d453", "certStore": "MY"},
			map[string]any{"protocol": "HTTP", "bindingInformation": "10.0.0.5:80:www.example.com"},
		}}
	// PowerShell unwraps a one-element array: bindings is an object here.
	ftp := map[string]any{"id": 3, "name": "Ftp1", "physicalPath": `F:\ftp`, "appPool": "", "serverAutoStart": true, "webState": "", "ftpState": "Stopped",
		"ftpPolicy": "SslRequire", "ftpCertHash": "61d34f532da121bbab64723c4871e72c92f03735",
		"bindings": map[string]any{"protocol": "ftp", "bindingInformation": "10.0.0.6:990:"}}
	unknown := map[string]any{"id": 4, "name": "Pipe", "webState": "", "ftpState": "", "bindings": []any{map[string]any{"protocol": "net.pipe", "bindingInformation": "*"}}}
	got, err := ParseSiteList([]byte("\ufeff" + reply(map[string]any{"sites": []any{web, ftp, unknown}}) + "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.Site{
		{State: backend.SiteStarted, SiteConfig: backend.SiteConfig{ID: 2, Name: "WebSite1", PhysicalPath: `E:\sites\web1`, AppPool: "web1", Bindings: []backend.Binding{
			{Protocol: "http", IP: "10.0.0.5", Port: 80, HostName: "www.example.com"},
			{Protocol: "https", IP: "10.0.0.5", Port: 443, HostName: "www.example.com", SSLFlags: 1, CertHash: "12FD38FA8F58C8A74B3039962882DEFE4199D453", CertStore: "My"},
		}}},
		{State: backend.SiteStopped, SiteConfig: backend.SiteConfig{ID: 3, Name: "Ftp1", PhysicalPath: `F:\ftp`, AutoStart: true, FTPSSL: "Implicit", FTPCertHash: "61D34F532DA121BBAB64723C4871E72C92F03735",
			Bindings: []backend.Binding{{Protocol: "ftp", IP: "10.0.0.6", Port: 990}}}},
		{State: backend.SiteUnknown, SiteConfig: backend.SiteConfig{ID: 4, Name: "Pipe", Bindings: []backend.Binding{{Protocol: "net.pipe", HostName: "*"}}}},
	}
	backend.SortBindings(want[0].Bindings)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}

	if _, err := ParseSiteList([]byte(failure("ModuleMissing", "IIS management is not installed"))); !errors.Is(err, ErrFeatureMissing) {
		t.Errorf("module missing: err = %v", err)
	}
	if sites, err := ParseSiteList([]byte(reply(map[string]any{"sites": nil}))); err != nil || len(sites) != 0 {
		t.Errorf("no sites: %v, %v", sites, err)
	}
}

func TestSiteOperationsRenderGoldenCommands(t *testing.T) {
	ok := reply(map[string]any{"changed": true})
	b, r, _ := newTestBackend(t, psRec(scriptIISChange, ok, 0), psRec(scriptIISRun, ok, 0))
	ctx := context.Background()
	cfg := backend.SiteConfig{ID: 7, Name: "WebSite1", PhysicalPath: `E:\sites\web1`, AppPool: "web1", Bindings: []backend.Binding{
		{Protocol: "http", IP: "10.0.0.5", Port: 80, HostName: "www.example.com"},
		{Protocol: "https", IP: "10.0.0.5", Port: 443, HostName: "www.example.com", SSLFlags: 1, CertHash: "12FD38FA8F58C8A74B3039962882DEFE4199D453", CertStore: "My"},
	}}
	path, auto := `E:\sites\web2`, false
	steps := []error{
		b.CreateSite(ctx, cfg),
		b.StartSite(ctx, "WebSite1"),
		b.UpdateSite(ctx, "WebSite1", backend.SiteChange{
			Add:          []backend.Binding{{Protocol: "http", IP: "10.0.0.5", Port: 8080}},
			Remove:       []backend.Binding{{Protocol: "http", IP: "10.0.0.5", Port: 80, HostName: "www.example.com"}},
			PhysicalPath: &path, AutoStart: &auto,
		}),
		b.RenameSite(ctx, "WebSite1", "WebSite2"),
		b.StopSite(ctx, "WebSite2"),
		b.DeleteSite(ctx, "WebSite2"),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	golden(t, "sites.txt", rendered(r.Calls))
}

func TestSiteErrorsMapToTypedErrors(t *testing.T) {
	b, _, _ := newTestBackend(t,
		psRec(scriptIISChange, failure("", "Cannot add duplicate collection entry of type 'site'", "0x80131500", "0x800700B7"), 1),
		psRec(scriptIISRun, failure("BindingConflict", `another started site holds a binding of "WebSite1"`), 1),
	)
	ctx := context.Background()
	if err := b.CreateSite(ctx, backend.SiteConfig{Name: "WebSite1", ID: 1, Bindings: []backend.Binding{{Protocol: "http", IP: "*", Port: 80}}}); !errors.Is(err, backend.ErrExists) {
		t.Errorf("create: %v, want ErrExists", err)
	}
	if err := b.StartSite(ctx, "WebSite1"); !errors.Is(err, backend.ErrBindingConflict) {
		t.Errorf("start: %v, want ErrBindingConflict", err)
	}
	if err := b.CreateSite(ctx, backend.SiteConfig{Name: "Empty"}); err == nil {
		t.Error("a site without bindings was sent to IIS")
	}
}

func TestStoppedHTTPSSiteKeepsItsCertificate(t *testing.T) {
	// A standby's IIS has no HTTP.sys binding, so it reports no certificate;
	// the book supplies the one it will be served with. A running site
	// without its HTTP.sys binding is drift and shows none.
	hash := "12FD38FA8F58C8A74B3039962882DEFE4199D453"
	listed := func(state string) string {
		return reply(map[string]any{"sites": []any{map[string]any{"id": 7, "name": "WebSite1", "webState": state,
			"bindings": []any{map[string]any{"protocol": "https", "bindingInformation": "10.0.0.5:443:", "certHash": ""}}}}})
	}
	b, _, _ := newTestBackend(t, psRec(scriptIISChange, reply(nil), 0), psRec(scriptIISList, listed("Stopped"), 0), psRec(scriptIISList, listed("Started"), 0))
	ctx := context.Background()
	cfg := backend.SiteConfig{ID: 7, Name: "WebSite1", Bindings: []backend.Binding{{Protocol: "https", IP: "10.0.0.5", Port: 443, CertHash: hash, CertStore: "My"}}}
	if err := b.CreateSite(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	stopped, err := b.ListSites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cfg.Bindings, stopped[0].Bindings); diff != "" {
		t.Errorf("stopped site's bindings (-want +got):\n%s", diff)
	}
	started, err := b.ListSites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if started[0].Bindings[0].CertHash != "" {
		t.Errorf("a running site without its HTTP.sys binding shows certificate %q; that drift must show", started[0].Bindings[0].CertHash)
	}
	// The book survives an agent restart.
	b2, err := New(Options{Runner: NewReplay(psRec(scriptIISList, listed("Stopped"), 0)), DataDir: filepathDir(b)})
	if err != nil {
		t.Fatal(err)
	}
	again, err := b2.ListSites(ctx)
	if err != nil || again[0].Bindings[0].CertHash != hash {
		t.Errorf("after restart: %+v, %v", again, err)
	}
}

func filepathDir(b *Backend) string { return filepath.Dir(b.certs.path) }

func TestCertificatesOfHTTPSBindings(t *testing.T) {
	got := certificatesOf([]backend.Binding{
		{Protocol: "http", IP: "10.0.0.5", Port: 80},
		{Protocol: "https", IP: "*", Port: 443, CertHash: "AA", CertStore: "MY"},
		{Protocol: "https", IP: "10.0.0.5", Port: 8443, HostName: "a.example", SSLFlags: 1, CertHash: "BB", CertStore: "WebHosting"},
		{Protocol: "https", IP: "fe80::5", Port: 443, CertHash: "CC"},
		{Protocol: "https", IP: "10.0.0.5", Port: 9443},
	})
	want := []sslCert{
		{IP: "0.0.0.0", Port: 443, Hash: "AA", Store: "My"},
		{IP: "10.0.0.5", Port: 8443, HostName: "a.example", SNI: true, Hash: "BB", Store: "WebHosting"},
		{IP: "[fe80::5]", Port: 443, Hash: "CC", Store: "My"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestReplayFromFiles drives the backend from a recording file, keyed by
// the described argv and the exact request.
func TestReplayFromFiles(t *testing.T) {
	r, err := LoadReplay("testdata/replay")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sites, err := b.ListSites(ctx)
	if err != nil || len(sites) != 1 || sites[0].Name != "WebSite1" || sites[0].State != backend.SiteStopped || sites[0].Bindings[0].HostName != "www.example.com" {
		t.Fatalf("sites %+v, err %v", sites, err)
	}
	if err := b.StartSite(ctx, "WebSite1"); !errors.Is(err, backend.ErrUnsupported) || !strings.Contains(err.Error(), "0x800710D8") {
		t.Errorf("start: %v, want the 0x800710D8 trap as ErrUnsupported", err)
	}
	if err := b.StopSite(ctx, "WebSite1"); err == nil || !strings.Contains(err.Error(), "no recording") {
		t.Errorf("an unrecorded command: %v", err)
	}
}
