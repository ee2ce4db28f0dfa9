package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend/windows"
)

// fakeNode answers the scripts as a Windows server would, just enough for
// the kit: addresses with lifetimes on a virtual clock, sites that serve
// on loopback when started, one binding per port. noExpiry makes it the
// broken server whose addresses outlive their lifetime.
type fakeNode struct {
	mu       sync.Mutex
	now      time.Duration // virtual time
	expiry   map[string]time.Duration
	sites    map[string]string // name -> binding ip:port
	started  map[string]*http.Server
	noExpiry bool
}

func newFakeNode() *fakeNode {
	return &fakeNode{expiry: map[string]time.Duration{}, sites: map[string]string{}, started: map[string]*http.Server{}}
}

func (f *fakeNode) sleep(d time.Duration) {
	f.mu.Lock()
	f.now += d
	f.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // let the backend's renewal worker run
}

func ok(result any) []byte {
	b, _ := json.Marshal(map[string]any{"ok": true, "result": result})
	return b
}

func fail(kind, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"ok": false, "error": map[string]any{"kind": kind, "message": msg}})
	return b
}

func (f *fakeNode) Call(_ context.Context, script string, request []byte) ([]byte, error) {
	var req struct {
		Op, IP, Name      string
		InterfaceAlias    string `json:"interfaceAlias"`
		ValidLifetimeSec  int    `json:"validLifetimeSec"`
		IPs               []string
		Add               []struct{ BindingInformation string } `json:"add"`
		Disk              any
		Root              string
		Certificates      any
		PrefixLength      int `json:"prefixLength"`
		TimeoutMs         int `json:"timeoutMs"`
		RemoveCertificate any
	}
	_ = json.Unmarshal(request, &req)
	f.mu.Lock()
	defer f.mu.Unlock()
	live := func(ip string) bool { e, ok := f.expiry[ip]; return ok && (f.noExpiry || f.now < e) }
	switch script {
	case "iis-list.ps1":
		return ok(map[string]any{"sites": []any{}}), nil
	case "ip.ps1":
		switch req.Op {
		case "list":
			var out []map[string]any
			for ip := range f.expiry {
				if live(ip) {
					out = append(out, map[string]any{"ip": ip, "prefixLength": 24, "interfaceAlias": "Ethernet0", "state": "Preferred", "validLifetimeSec": 1})
				}
			}
			return ok(map[string]any{"addresses": out}), nil
		case "add":
			if req.InterfaceAlias == "Wi-Fi" {
				return fail("DhcpEnabled", `interface "Wi-Fi" has DHCP enabled for IPv4`), nil
			}
			f.expiry[req.IP] = f.now + time.Duration(req.ValidLifetimeSec)*time.Second
			return ok(map[string]any{"interfaceAlias": "Ethernet0", "gateway": "10.0.0.1"}), nil
		case "extend":
			var missing []string
			for _, ip := range req.IPs {
				if !live(ip) {
					missing = append(missing, ip)
					continue
				}
				f.expiry[ip] = f.now + time.Duration(req.ValidLifetimeSec)*time.Second
			}
			return ok(map[string]any{"missing": missing}), nil
		case "remove":
			delete(f.expiry, req.IP)
			return ok(map[string]any{"removed": true}), nil
		}
	case "iis-change.ps1":
		switch req.Op {
		case "create":
			f.sites[req.Name] = strings.TrimSuffix(req.Add[0].BindingInformation, ":")
		case "delete":
			delete(f.sites, req.Name)
		}
		return ok(nil), nil
	case "iis-run.ps1":
		binding := f.sites[req.Name]
		switch req.Op {
		case "start":
			for name, srv := range f.started {
				if name != req.Name && srv.Addr == binding {
					return fail("BindingConflict", "another started site holds a binding"), nil
				}
			}
			if f.started[req.Name] == nil {
				srv := &http.Server{Addr: binding, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })}
				ln, err := net.Listen("tcp", "127.0.0.1:"+strings.SplitN(binding, ":", 2)[1])
				if err != nil {
					return fail("", err.Error()), nil
				}
				go func() { _ = srv.Serve(ln) }()
				f.started[req.Name] = srv
			}
		case "stop":
			if srv := f.started[req.Name]; srv != nil {
				_ = srv.Close()
				delete(f.started, req.Name)
			}
		}
		return ok(nil), nil
	}
	if answer, ok := standbyAnswer(script, request); ok {
		return answer, nil
	}
	return fail("BadRequest", "fake node: "+script+" "+req.Op), nil
}

// standbyAnswer answers the standby checks' scripts: every IIS role is
// installed, the one certificate is usableThumbprint, no disk exists.
func standbyAnswer(script string, request []byte) ([]byte, bool) {
	var req struct {
		Names        []string
		Certificates []struct{ Store, Thumbprint string }
		Op           string
		Disks        []map[string]string
	}
	_ = json.Unmarshal(request, &req)
	switch {
	case script == "features.ps1":
		var out []any
		for _, n := range req.Names {
			out = append(out, map[string]any{"name": n, "installed": true})
		}
		return ok(map[string]any{"features": out}), true
	case script == "certs.ps1":
		var out []any
		for _, c := range req.Certificates {
			found := c.Thumbprint == usableThumbprint
			out = append(out, map[string]any{"store": c.Store, "thumbprint": c.Thumbprint, "found": found, "hasPrivateKey": found, "keyUsable": found, "notAfter": "2099-01-01T00:00:00Z"})
		}
		return ok(map[string]any{"certificates": out}), true
	case script == "disk.ps1" && req.Op == "list":
		var out []any
		for _, d := range req.Disks {
			out = append(out, map[string]any{"serial": d["serial"], "uniqueId": d["uniqueId"], "found": false})
		}
		return ok(map[string]any{"disks": out}), true
	}
	return nil, false
}

const usableThumbprint = "AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12"

// programs answers the programs the kit runs as a server without pktmon
// does: appcmd lists no site (as the fake's PowerShell listing), netsh
// exits 1 for a binding that does not exist.
type programs struct{}

func (programs) Run(_ context.Context, name string, args []string, _ []byte) ([]byte, []byte, int, error) {
	switch {
	case strings.HasSuffix(name, `\appcmd.exe`):
		return []byte(`<?xml version="1.0" encoding="UTF-8"?><appcmd></appcmd>`), nil, 0, nil
	case strings.HasSuffix(name, `\netsh.exe`) && args[1] == "delete":
		return []byte("SSL Certificate deletion failed, Error: 2\r\nThe system cannot find the file specified.\r\n"), nil, 1, nil
	}
	return nil, nil, -1, fmt.Errorf("%s: file does not exist", name)
}

func freePort(t *testing.T) int32 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func runKit(t *testing.T, f *fakeNode, o Options) []Result {
	t.Helper()
	o.SiteName, o.Address, o.Port = "sk-conformance", "127.0.0.1/8", freePort(t)
	o.Scripts, o.Runner, o.Sleep, o.Log = f, programs{}, f.sleep, logr.Discard()
	o.Bundle = t.TempDir()
	results, replay, err := RunWindows(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := windows.LoadReplay(filepath.Dir(replay)); err != nil {
		t.Fatalf("the bundle does not load as replay fixtures: %v", err)
	}
	return results
}

func outcomes(results []Result) map[string]string {
	out := map[string]string{}
	for _, r := range results {
		out[r.Check] = r.Outcome
	}
	return out
}

// TestKitPassesOnAConformingServer: against a server that behaves as the
// README says, every check passes or is skipped for what was not named,
// the scratch site and address are gone afterwards, and the bundle loads
// as replay fixtures.
func TestKitPassesOnAConformingServer(t *testing.T) {
	f := newFakeNode()
	results := runKit(t, f, Options{DHCPInterface: "Wi-Fi", Cert: usableThumbprint})
	want := map[string]string{"powershell host": "skip", "address lifetime": "pass", "address announcement": "skip", "site start and stop": "pass",
		"binding conflict": "pass", "group in one request": "pass", "appcmd with 150 bindings": "pass", "netsh delete of a missing binding": "pass",
		"ftp site start and stop": "skip", "shared disk": "skip", "datakeeper role": "skip", "dhcp interface refused": "pass",
		"standby checks": "pass"}
	got := outcomes(results)
	for check, w := range want {
		if got[check] != w {
			var b strings.Builder
			_ = Print(&b, results)
			t.Errorf("%s: %s, want %s\n%s", check, got[check], w, b.String())
		}
	}
	if Failed(results) != 0 {
		t.Errorf("%d failed", Failed(results))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sites) != 0 || len(f.started) != 0 {
		t.Errorf("left behind: sites %v, started %d", f.sites, len(f.started))
	}
	for ip := range f.expiry {
		t.Errorf("left behind: address %s", ip)
	}
}

// TestKitFailsWhenAnAddressOutlivesItsLifetime: the server that keeps an
// address past its lifetime fails the check that proves a frozen agent's
// VIP goes away, and says what that means.
func TestKitFailsWhenAnAddressOutlivesItsLifetime(t *testing.T) {
	f := newFakeNode()
	f.noExpiry = true
	results := runKit(t, f, Options{})
	for _, r := range results {
		if r.Check == "address lifetime" {
			if r.Outcome != "fail" || !strings.Contains(r.Detail, "frozen agent would keep its VIP") {
				t.Errorf("address lifetime: %s %q", r.Outcome, r.Detail)
			}
			return
		}
	}
	t.Fatal("no address lifetime check")
}

func TestKitNeedsScratchNames(t *testing.T) {
	for _, o := range []Options{{}, {SiteName: "x"}, {SiteName: "x", Address: "10.0.0.1"}, {SiteName: "x", Address: "fe80::1/64"}} {
		if _, _, err := RunWindows(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
