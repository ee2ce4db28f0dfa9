package sim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

var ctx = context.Background()

// freePort returns a port free on 127.0.0.1 now; the sim binds other
// loopback addresses, where it is free as well in practice.
func freePort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

var vol = backend.VolumeID{Kind: backend.VolumeMirror, ID: "E"}

func setup(t *testing.T) (*World, *Node, *Node, backend.SiteConfig) {
	t.Helper()
	w := NewWorld(t.TempDir(), logr.Discard())
	n1, n2 := w.Node("node1"), w.Node("node2")
	t.Cleanup(func() { n1.PowerOff(); n2.PowerOff(); w.Close() })
	cfg := backend.SiteConfig{ID: 2, Name: "web1", PhysicalPath: `E:\sites\web1`, AppPool: "DefaultAppPool",
		Bindings: []backend.Binding{{Protocol: "http", IP: "127.0.10.1", Port: freePort(t)}}}
	if err := os.MkdirAll(filepath.Join(w.VolumeDir(vol), "sites", "web1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.VolumeDir(vol), "sites", "web1", "index.html"), []byte("hello from web1"), 0o644); err != nil {
		t.Fatal(err)
	}
	return w, n1, n2, cfg
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func get(url, host string) (int, string, error) {
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: host}}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func bringUp(t *testing.T, n *Node, cfg backend.SiteConfig) {
	t.Helper()
	must(t, n.BringOnline(ctx, vol, `E:\`))
	must(t, n.AddAddress(ctx, backend.Address{CIDR: "127.0.10.1/32"}))
	must(t, n.CreateSite(ctx, cfg))
	must(t, n.StartSite(ctx, cfg.Name))
}

func TestServesContentAndFollowsTheRules(t *testing.T) {
	_, n1, n2, cfg := setup(t)
	url := fmt.Sprintf("http://127.0.10.1:%d/", cfg.Bindings[0].Port)

	must(t, n1.CreateSite(ctx, cfg))
	if err := n1.StartSite(ctx, "web1"); !errors.Is(err, backend.ErrAddressNotHeld) {
		t.Fatalf("start without the address: %v, want ErrAddressNotHeld", err)
	}
	must(t, n1.AddAddress(ctx, backend.Address{CIDR: "127.0.10.1/32"}))
	must(t, n1.StartSite(ctx, "web1"))
	code, body, err := get(url, "")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "offline") {
		t.Fatalf("content with volume offline: %d %q %v, want 503", code, body, err)
	}
	must(t, n1.BringOnline(ctx, vol, `E:\`))
	code, body, err = get(url, "")
	if err != nil || code != 200 || body != "hello from web1" {
		t.Fatalf("GET: %d %q %v", code, body, err)
	}

	if err := n2.AddAddress(ctx, backend.Address{CIDR: "127.0.10.1/32"}); !errors.Is(err, backend.ErrAddressInUse) {
		t.Errorf("second holder of the address: %v, want ErrAddressInUse", err)
	}
	if err := n2.BringOnline(ctx, vol, `E:\`); !errors.Is(err, backend.ErrVolumeReserved) {
		t.Errorf("second holder of the volume: %v, want ErrVolumeReserved", err)
	}
	if err := n1.CreateSite(ctx, cfg); !errors.Is(err, backend.ErrExists) {
		t.Errorf("duplicate site: %v, want ErrExists", err)
	}
	dup := cfg
	dup.ID, dup.Name = 3, "web1copy"
	must(t, n1.CreateSite(ctx, dup))
	if err := n1.StartSite(ctx, "web1copy"); !errors.Is(err, backend.ErrBindingConflict) {
		t.Errorf("second started site on one ip:port:host: %v, want ErrBindingConflict", err)
	}
	if err := n1.AddAddress(ctx, backend.Address{CIDR: "10.0.0.5/24"}); !errors.Is(err, backend.ErrUnsupported) || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback address: %v, want ErrUnsupported naming loopback", err)
	}

	// Host-name change on a running site: served at once, no restart.
	nb := cfg.Bindings[0]
	nb.HostName = "shop.example.com"
	must(t, n1.UpdateBindings(ctx, "web1", []backend.Binding{nb}, cfg.Bindings))
	if code, _, _ := get(url, "shop.example.com"); code != 200 {
		t.Errorf("new host name: %d, want 200", code)
	}
	if code, _, _ := get(url, "other.example.com"); code != 404 {
		t.Errorf("old catch-all: %d, want 404 (no site for that host)", code)
	}

	// Failover by hand: take down on node1, bring up on node2.
	must(t, n1.StopSite(ctx, "web1"))
	must(t, n1.RemoveAddress(ctx, backend.Address{CIDR: "127.0.10.1/32"}))
	must(t, n1.TakeOffline(ctx, vol))
	if _, _, err := get(url, "shop.example.com"); err == nil {
		t.Fatalf("still served after stop")
	}
	cfg2 := cfg
	cfg2.Bindings = []backend.Binding{nb}
	bringUp(t, n2, cfg2)
	code, body, err = get(url, "shop.example.com")
	if err != nil || code != 200 || body != "hello from web1" {
		t.Fatalf("GET on node2: %d %q %v", code, body, err)
	}
}

func TestPowerLossAndAutoStart(t *testing.T) {
	_, n1, n2, cfg := setup(t)
	url := fmt.Sprintf("http://127.0.10.1:%d/", cfg.Bindings[0].Port)
	bringUp(t, n1, cfg)
	n1.PowerOff()
	if _, _, err := get(url, ""); err == nil {
		t.Fatal("served by a powered-off node")
	}
	if _, err := n1.ListSites(ctx); !errors.Is(err, backend.ErrPoweredOff) {
		t.Errorf("list on a powered-off node: %v", err)
	}
	// The dead node's claims lapse: node2 takes address and volume.
	bringUp(t, n2, cfg)
	if code, _, _ := get(url, ""); code != 200 {
		t.Fatalf("node2 after failover: %d", code)
	}
	n1.PowerOn()
	sites, _ := n1.ListSites(ctx)
	if sites[0].State != backend.SiteStopped {
		t.Errorf("protected site (autoStart=false) started on boot")
	}
	if a, _ := n1.ListAddresses(ctx); len(a) != 0 {
		t.Errorf("rebooted node holds addresses %v", a)
	}

	w3 := n2.w.Node("node3")
	c3 := cfg
	c3.ID, c3.Name, c3.AutoStart = 9, "auto", true
	c3.Bindings = []backend.Binding{{Protocol: "http", IP: "127.0.10.9", Port: cfg.Bindings[0].Port}}
	must(t, w3.AddAddress(ctx, backend.Address{CIDR: "127.0.10.9/32"}))
	must(t, w3.CreateSite(ctx, c3))
	w3.PowerOff()
	w3.PowerOn()
	sites, _ = w3.ListSites(ctx)
	if sites[0].State != backend.SiteStopped {
		t.Errorf("auto-start site started without its address after a reboot")
	}
	must(t, w3.AddAddress(ctx, backend.Address{CIDR: "127.0.10.9/32"}))
	w3.mu.Lock()
	w3.powered.Store(false)
	w3.mu.Unlock()
	w3.PowerOn()
	sites, _ = w3.ListSites(ctx)
	if sites[0].State != backend.SiteStarted {
		t.Errorf("serverAutoStart=true site not started on boot")
	}
	w3.PowerOff()
}

func TestHTTPSAndFTP(t *testing.T) {
	_, n1, _, cfg := setup(t)
	thumb := strings.Repeat("AB", 20)
	cfg.Bindings = []backend.Binding{{Protocol: "https", IP: "127.0.10.1", Port: freePort(t), HostName: "shop.example.com", CertHash: thumb, CertStore: "My", SSLFlags: 1}}
	bringUp(t, n1, cfg)
	code, body, err := get(fmt.Sprintf("https://127.0.10.1:%d/", cfg.Bindings[0].Port), "shop.example.com")
	if err != nil || code != 200 || body != "hello from web1" {
		t.Fatalf("https GET: %d %q %v", code, body, err)
	}
	ftp := backend.SiteConfig{ID: 4, Name: "ftp1", PhysicalPath: `E:\ftp`, Bindings: []backend.Binding{{Protocol: "ftp", IP: "127.0.10.1", Port: freePort(t)}}}
	must(t, n1.CreateSite(ctx, ftp))
	must(t, n1.StartSite(ctx, "ftp1"))
	if err := n1.Probe(ctx, ftp.Bindings[0], "/", time.Second); err != nil {
		t.Errorf("ftp banner probe: %v", err)
	}
	if err := n1.Probe(ctx, cfg.Bindings[0], "/", time.Second); err != nil {
		t.Errorf("https probe: %v", err)
	}
	must(t, n1.StopSite(ctx, "ftp1"))
	if err := n1.Probe(ctx, ftp.Bindings[0], "/", 500*time.Millisecond); err == nil {
		t.Errorf("probe of a stopped ftp site succeeded")
	}
}

// TestRestartKeepsTheMachines: a new process on the same root finds the
// nodes as they were, started sites serving again.
func TestRestartKeepsTheMachines(t *testing.T) {
	w, n1, _, cfg := setup(t)
	bringUp(t, n1, cfg)
	// The old process stops without a power loss: its sockets close.
	w.Detach()
	w2 := NewWorld(w.Root(), logr.Discard())
	r1 := w2.Node("node1")
	t.Cleanup(func() { r1.PowerOff(); w2.Close() })
	sites, err := r1.ListSites(ctx)
	if err != nil || len(sites) != 1 || sites[0].State != backend.SiteStarted {
		t.Fatalf("restored sites: %+v %v", sites, err)
	}
	if a, _ := r1.ListAddresses(ctx); len(a) != 1 {
		t.Fatalf("restored addresses: %v", a)
	}
	code, body, err := get(fmt.Sprintf("http://127.0.10.1:%d/", cfg.Bindings[0].Port), "")
	if err != nil || code != 200 || body != "hello from web1" {
		t.Fatalf("served after restart: %d %q %v", code, body, err)
	}
}

// TestSeedIndexPages: a world that seeds pages gives a started site an index
// page when its folder has none, never overwrites content, and writes
// nothing where the site's volume is not online.
func TestSeedIndexPages(t *testing.T) {
	w, n1, _, cfg := setup(t)
	w.SeedIndexPages()
	cfg.PhysicalPath = `E:\sites\fresh`
	fresh := filepath.Join(w.VolumeDir(vol), "sites", "fresh", "index.html")
	must(t, n1.AddAddress(ctx, backend.Address{CIDR: "127.0.10.1/32"}))
	must(t, n1.CreateSite(ctx, cfg))
	must(t, n1.StartSite(ctx, cfg.Name))
	if _, err := os.Stat(fresh); err == nil {
		t.Fatal("seeded a folder whose volume is offline")
	}
	must(t, n1.BringOnline(ctx, vol, `E:\`))
	must(t, n1.StopSite(ctx, cfg.Name))
	must(t, n1.StartSite(ctx, cfg.Name))
	url := fmt.Sprintf("http://127.0.10.1:%d/", cfg.Bindings[0].Port)
	if code, body, err := get(url, ""); err != nil || code != 200 || body != "Hello from web1\n" {
		t.Fatalf("seeded page: %d %q %v", code, body, err)
	}
	// A path change to a folder that has content keeps that content.
	must(t, n1.SetPhysicalPath(ctx, cfg.Name, `E:\sites\web1`))
	if code, body, err := get(url, ""); err != nil || code != 200 || body != "hello from web1" {
		t.Fatalf("existing content: %d %q %v", code, body, err)
	}
}

// TestTornStateStartsEmpty: a state file cut short (a crash of an older
// version mid-write) never keeps the world from starting: it starts empty,
// the file is kept aside, and the next save writes a whole one.
func TestTornStateStartsEmpty(t *testing.T) {
	root := t.TempDir()
	state := filepath.Join(root, "state.json")
	for _, torn := range []string{`{"nodes":{"node1":{"powered":tr`, ``} {
		if err := os.WriteFile(state, []byte(torn), 0o644); err != nil {
			t.Fatal(err)
		}
		w := NewWorld(root, logr.Discard())
		n := w.Node("node1")
		if sites, err := n.ListSites(ctx); err != nil || len(sites) != 0 {
			t.Fatalf("torn state %q: sites %v, %v; want an empty node", torn, sites, err)
		}
		if _, err := os.Stat(state + ".damaged"); err != nil {
			t.Errorf("torn state %q not kept aside: %v", torn, err)
		}
		w.Save()
		b, err := os.ReadFile(state)
		if err != nil || !json.Valid(b) {
			t.Errorf("after a save: %q, %v; want whole JSON", b, err)
		}
		n.PowerOff()
		w.Close()
	}
}
