package windows

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixtures is the recorded real Windows output (a copy of shared/fixtures).
const fixtures = "../../../test/fixtures/windows"

func fixture(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, rel))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return data
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update refreshes):\n%s", path, diff)
	}
}

// reply is what _main.ps1 writes for a successful request.
func reply(result any) string {
	data, _ := json.Marshal(map[string]any{"ok": true, "result": result})
	return string(data)
}

// failure is what _main.ps1 writes for a failed request.
func failure(kind, message string, hresults ...string) string {
	data, _ := json.Marshal(map[string]any{"ok": false, "error": map[string]any{"kind": kind, "message": message, "hresults": hresults}})
	return string(data)
}

func TestScriptArgsRunEncodedScriptWithFixedSwitches(t *testing.T) {
	for _, name := range []string{scriptIISList, scriptIISChange, scriptIISRun, scriptIP, scriptDisk, scriptFeatures} {
		args, err := ScriptArgs(name)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-InputFormat", "Text", "-OutputFormat", "Text", "-EncodedCommand"}
		if diff := cmp.Diff(want, args[:len(want)]); diff != "" {
			t.Errorf("%s switches (-want +got):\n%s", name, diff)
		}
		text, ok := decodeCommand(args[len(args)-1])
		if !ok {
			t.Fatalf("%s: encoded command does not decode", name)
		}
		full, _ := Script(name)
		if text != full {
			t.Errorf("%s: decoded command is not the script", name)
		}
		for _, must := range []string{"$ErrorActionPreference = 'Stop'", "$ProgressPreference = 'SilentlyContinue'", "[Console]::OutputEncoding = $utf8", "function Invoke-Request", "[Console]::In.ReadToEnd()"} {
			if !strings.Contains(text, must) {
				t.Errorf("%s lacks %q", name, must)
			}
		}
		// A script as -EncodedCommand is how replay recordings name their
		// calls; the agent never runs it so (CreateProcess takes 32,767
		// characters at most): its host reads the scripts from stdin, see
		// TestHostScriptHoldsEveryScript.
		if got := DescribeArgs(args)[len(args)-1]; got != "{{"+name+"}}" {
			t.Errorf("DescribeArgs shows %q, want {{%s}}", got, name)
		}
	}
	if _, err := ScriptArgs("nope.ps1"); err == nil {
		t.Error("an unknown script gave argv")
	}
}

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name, stdout string
		ok           bool
		wantErr      string
	}{
		{name: "plain", stdout: `{"ok":true,"result":{}}`, ok: true},
		{name: "BOM and CRLF", stdout: "\ufeff{\"ok\":true,\"result\":{}}\r\n", ok: true},
		{name: "warning printed first", stdout: "WARNING: The names of some imported commands include unapproved verbs.\r\n{\"ok\":true}\r\n", ok: true},
		{name: "failure", stdout: failure("NotFound", "x"), ok: false},
		{name: "empty output", stdout: "", wantErr: "no JSON reply"},
		{name: "CLIXML progress instead", stdout: "#< CLIXML\r\n<Objs Version=\"1.1.0.1\"></Objs>", wantErr: "no JSON reply"},
		{name: "cut short", stdout: `{"ok":tr`, wantErr: "not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := parseEnvelope([]byte(tt.stdout))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || env.OK != tt.ok {
				t.Fatalf("env.OK = %t, err = %v; want ok %t", env.OK, err, tt.ok)
			}
		})
	}
}

func TestScriptErrorsKeepTheirMeaning(t *testing.T) {
	tests := []struct {
		kind     string
		hresults []string
		want     error
	}{
		{kind: "NotFound", want: backend.ErrNotFound},
		{kind: "Exists", want: backend.ErrExists},
		{kind: "BindingConflict", want: backend.ErrBindingConflict},
		{kind: "AddressInUse", want: backend.ErrAddressInUse},
		{kind: "LeaseInDoubt", want: backend.ErrLeaseInDoubt},
		{kind: "VolumeReserved", want: backend.ErrVolumeReserved},
		{kind: "CertificateMissing", want: ErrCertificateMissing},
		{kind: "ModuleMissing", want: ErrFeatureMissing},
		// Untyped exceptions from Microsoft.Web.Administration, by HRESULT.
		{hresults: []string{"0x80131509", "0x800700B7"}, want: backend.ErrExists},
		{hresults: []string{"0x80070490"}, want: backend.ErrNotFound},
		{hresults: []string{"0x800710D8"}, want: backend.ErrUnsupported},
	}
	for _, tt := range tests {
		err := (&scriptError{Kind: tt.kind, HResults: tt.hresults, Message: "m"}).asError()
		if !errors.Is(err, tt.want) {
			t.Errorf("kind %q hresults %v: %v is not %v", tt.kind, tt.hresults, err, tt.want)
		}
	}
	err := (&scriptError{HResults: []string{"0x80004005"}, Message: "Unspecified error"}).asError()
	if err.Error() != "Unspecified error (HRESULT 0x80004005)" || backend.NeedsHuman(err) {
		t.Errorf("an unknown failure became %q (needs human %t); want a retryable error with its HRESULT", err, backend.NeedsHuman(err))
	}
	if !backend.NeedsHuman((&scriptError{Kind: "CertificateMissing"}).asError()) {
		t.Error("a missing certificate is retried; a human must import it")
	}
}

func TestListUnwrapsPowerShellArrays(t *testing.T) {
	tests := map[string][]int{`null`: nil, `[]`: {}, `7`: {7}, `[1,2]`: {1, 2}}
	for in, want := range tests {
		var got list[int]
		if err := json.Unmarshal([]byte(in), &got); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if len(got) != len(want) || (len(want) > 0 && !cmp.Equal([]int(got), want)) {
			t.Errorf("%s → %v, want %v", in, got, want)
		}
	}
}

// TestHTTPSysBindingRules: the scripts keep the HTTP.sys rules no recording
// can show: netsh's stderr never stops a script, a binding is queried
// before it is changed and updated in place (never deleted and added
// again), a key another site uses is never deleted, a failed start rolls
// back the bindings it created, and certificates (FTP's too) are checked
// with their private key through the X509Store API.
func TestHTTPSysBindingRules(t *testing.T) {
	read := func(name string) string {
		b, err := scriptFS.ReadFile("scripts/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	prelude, run, change := read("_prelude.ps1"), read("iis-run.ps1"), read("iis-change.ps1")
	fn := func(text, name string) string {
		i := strings.Index(text, "function "+name)
		if i < 0 {
			t.Fatalf("no function %s", name)
		}
		j := strings.Index(text[i:], "\n}\n")
		return text[i : i+j]
	}
	netsh := fn(prelude, "Invoke-Netsh")
	if !strings.Contains(netsh, "$ErrorActionPreference = 'Continue'") || !strings.Contains(netsh, "2>&1") {
		t.Errorf("Invoke-Netsh does not keep netsh's stderr from stopping the script:\n%s", netsh)
	}
	add := fn(prelude, "Add-SslCert")
	if strings.Contains(add, "'delete'") || !strings.Contains(add, "Get-SslHash") || !strings.Contains(add, "'update'") || !strings.Contains(add, "Assert-Certificate") {
		t.Errorf("Add-SslCert must query, then update or add, never delete:\n%s", add)
	}
	if cert := fn(prelude, "Assert-Certificate"); !strings.Contains(cert, "X509Store") || !strings.Contains(cert, "HasPrivateKey") {
		t.Errorf("Assert-Certificate does not check the private key through X509Store:\n%s", cert)
	}
	if rm := fn(prelude, "Remove-SslCert"); !strings.Contains(rm, "Get-SiteSslKeys $other") {
		t.Errorf("Remove-SslCert deletes a key other sites use:\n%s", rm)
	}
	for name, text := range map[string]string{"iis-run.ps1": run, "iis-change.ps1": change} {
		if strings.Contains(text, "Remove-SslCert $c }") {
			t.Errorf("%s removes a binding without telling which site owns it", name)
		}
	}
	if !strings.Contains(run, "foreach ($c in $added) { try { Remove-SslCert") || !strings.Contains(run, "Assert-Certificate $ftpHash") {
		t.Errorf("iis-run.ps1 must roll back the bindings of a failed start and check an FTP site's certificate")
	}
}
