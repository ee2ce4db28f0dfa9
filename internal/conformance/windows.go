// Package conformance is the kit a user runs on a real Windows server to
// prove the behaviours the README marks [verify], which no machine of
// Sitekeeper's own can show: it drives the real Windows backend against a
// scratch site, address and (optionally) disk that the operator names,
// cleans up after itself, prints a pass/fail table, and writes every
// request and reply as a replay file that the backend's tests can load as
// new fixtures.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/windows"
)

// Options name the scratch resources the kit may use, and nothing else.
type Options struct {
	// SiteName is the scratch IIS site the kit creates and deletes (it
	// must not exist).
	SiteName string
	// Address is a free scratch address in CIDR form (10.0.0.250/24).
	Address   string
	Interface string
	// Port is the scratch site's http port (default 18080).
	Port int32
	// Path is the scratch site's folder (default a new temporary folder).
	Path string
	// Disk is an optional scratch shared disk ("serial:…" or its
	// UniqueId) and DiskRoot where its volume is mounted ("S:\").
	Disk, DiskRoot string
	// DHCPInterface, when set, is an interface with DHCP on: adding an
	// address to it must be refused.
	DHCPInterface string
	// Mirror, when set, is a DataKeeper mirrored volume (E) whose role
	// is read (nothing is switched over).
	Mirror string
	// FTPPort, when set, is the port of a scratch FTP site started and
	// stopped (the FTP server role must be installed).
	FTPPort int32
	// Cert, when set, is the thumbprint of a certificate in
	// Cert:\LocalMachine\My with its private key: the standby check must
	// find it usable.
	Cert string
	// Lifetime is the scratch address's lifetime (default 3 s).
	Lifetime time.Duration
	// Bundle is the folder for the replay file and captures.
	Bundle string

	// Scripts and Runner replace the PowerShell host and os/exec (tests);
	// the host checks are skipped without a host.
	Scripts windows.ScriptCaller
	Runner  windows.Runner
	// Sleep waits (default time.Sleep); tests make time pass instantly.
	Sleep func(time.Duration)
	Log   logr.Logger
}

// Result is one check's outcome.
type Result struct {
	Check   string `json:"check"`
	Verify  string `json:"verify"`  // the README's [verify] item it proves
	Outcome string `json:"outcome"` // pass, fail or skip
	Detail  string `json:"detail"`
}

type kit struct {
	o    Options
	b    *windows.Backend
	run  windows.Runner
	host *windows.Host
	rec  *recorder
	addr backend.Address
	site backend.SiteConfig
	// quiet stops the lease renewals the kit makes as an agent would, for
	// the check that proves an address expires without them.
	quiet atomic.Bool
}

// RunWindows runs every check in order and returns their results and the
// replay file written. An error means the kit could not run at all.
func RunWindows(ctx context.Context, o Options) ([]Result, string, error) {
	if o.SiteName == "" || o.Address == "" {
		return nil, "", errors.New("name a scratch site (--site-name) and a free scratch address (--ip 10.0.0.250/24)")
	}
	p, err := netip.ParsePrefix(o.Address)
	if err != nil || !p.Addr().Is4() {
		return nil, "", fmt.Errorf("--ip %q: give a free IPv4 address with its prefix, such as 10.0.0.250/24", o.Address)
	}
	if o.Port == 0 {
		o.Port = 18080
	}
	if o.Lifetime <= 0 {
		o.Lifetime = 3 * time.Second
	}
	if o.Sleep == nil {
		o.Sleep = time.Sleep
	}
	if o.Bundle == "" {
		o.Bundle = "sitekeeper-conformance-" + time.Now().Format("20060102-150405")
	}
	if o.Path == "" {
		if o.Path, err = os.MkdirTemp("", "sitekeeper-conformance-"); err != nil {
			return nil, "", err
		}
		defer os.RemoveAll(o.Path)
	}
	k := &kit{o: o, rec: &recorder{}}
	scripts := o.Scripts
	if scripts == nil {
		k.host = &windows.Host{Log: o.Log.WithName("pshost")}
		defer k.host.Stop()
		scripts = k.host
	}
	runner := o.Runner
	if runner == nil {
		runner = windows.ExecRunner{}
	}
	k.run = recordingRunner{inner: runner, rec: k.rec}
	k.b, err = windows.New(windows.Options{Scripts: recordingScripts{inner: scripts, rec: k.rec}, Runner: k.run,
		DataDir: o.Bundle, Lifetime: o.Lifetime, Log: o.Log})
	if err != nil {
		return nil, "", err
	}
	k.addr = backend.Address{CIDR: p.String(), Interface: o.Interface}
	k.site = backend.SiteConfig{Name: o.SiteName, PhysicalPath: o.Path, AppPool: "DefaultAppPool",
		Bindings: []backend.Binding{{Protocol: "http", IP: p.Addr().String(), Port: o.Port}}}

	// Renew as an agent does, so that the scratch address lives through
	// the checks.
	rctx, stopRenewing := context.WithCancel(ctx)
	defer stopRenewing()
	go func() {
		t := time.NewTicker(o.Lifetime / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if !k.quiet.Load() {
					k.b.LeaseRenewed()
				}
			}
		}
	}()
	var results []Result
	for _, c := range k.checks() {
		r := Result{Check: c.name, Verify: c.verify, Outcome: "pass"}
		detail, err := c.run(ctx)
		switch {
		case errors.Is(err, errSkip):
			r.Outcome, r.Detail = "skip", detail
		case err != nil:
			r.Outcome, r.Detail = "fail", err.Error()
		default:
			r.Detail = detail
		}
		results = append(results, r)
	}
	k.cleanup(ctx)
	path, err := k.rec.write(o.Bundle)
	return results, path, err
}

var errSkip = errors.New("skipped")

type check struct {
	name, verify string
	run          func(ctx context.Context) (string, error)
}

func (k *kit) checks() []check {
	return []check{
		{"powershell host", "1", k.checkHost},
		{"address lifetime", "9", k.checkLifetime},
		{"address announcement", "7", k.checkAnnouncement},
		{"site start and stop", "2", k.checkSite},
		{"binding conflict", "3", k.checkConflict},
		{"group in one request", "1", k.checkGroup},
		{"appcmd with 150 bindings", "8", k.checkAppcmd},
		{"netsh delete of a missing binding", "4", k.checkNetshMissing},
		{"ftp site start and stop", "2", k.checkFTP},
		{"shared disk", "5", k.checkDisk},
		{"datakeeper role", "6", k.checkMirror},
		{"dhcp interface refused", "10", k.checkDHCP},
		{"standby checks", "11", k.checkStandby},
	}
}

// checkHost: the host starts, answers, and a killed host is replaced.
func (k *kit) checkHost(ctx context.Context) (string, error) {
	if _, err := k.b.ListSites(ctx); err != nil {
		return "", fmt.Errorf("first request: %w", err)
	}
	if k.host == nil {
		return "no host (replayed)", errSkip
	}
	if n := k.host.Starts(); n != 1 {
		return "", fmt.Errorf("%d host processes for the first request, want 1", n)
	}
	if _, err := k.b.ListAddresses(ctx); err != nil {
		return "", err
	}
	if n := k.host.Starts(); n != 1 {
		return "", fmt.Errorf("a second request started a new host (%d starts)", n)
	}
	k.host.Stop()
	if _, err := k.b.ListSites(ctx); err != nil {
		return "", fmt.Errorf("after a kill: %w", err)
	}
	if n := k.host.Starts(); n != 2 {
		return "", fmt.Errorf("after a kill: %d starts, want 2", n)
	}
	return "one process serves many requests; a killed host is replaced", nil
}

func (k *kit) holds(ctx context.Context) (bool, error) {
	addrs, err := k.b.ListAddresses(ctx)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(addrs, func(a backend.Address) bool { return a.IP() == k.addr.IP() }), nil
}

// checkLifetime: the address is added with a lifetime, a renewal extends
// it, and without renewals it leaves the interface by itself.
func (k *kit) checkLifetime(ctx context.Context) (string, error) {
	if err := k.b.AddAddress(ctx, k.addr); err != nil {
		return "", err
	}
	k.quiet.Store(true) // this check renews by itself, on its own schedule
	defer k.quiet.Store(false)
	for range 6 {
		k.b.LeaseRenewed()
		k.o.Sleep(k.o.Lifetime / 3)
	}
	if ok, err := k.holds(ctx); err != nil || !ok {
		return "", fmt.Errorf("renewed for %s, the address is gone (%v)", 2*k.o.Lifetime, err)
	}
	k.o.Sleep(k.o.Lifetime + 2*time.Second)
	ok, err := k.holds(ctx)
	if err != nil {
		return "", err
	}
	if ok {
		_ = k.b.RemoveAddress(ctx, k.addr)
		return "", fmt.Errorf("%s without a renewal, %s is still on the node: a frozen agent would keep its VIP", k.o.Lifetime+2*time.Second, k.addr.CIDR)
	}
	return fmt.Sprintf("renewals kept it; %s without one, it was gone", k.o.Lifetime+2*time.Second), nil
}

// checkAnnouncement captures the ARP traffic of an address add with pktmon
// and keeps it in the bundle: the request's sender must be the VIP.
func (k *kit) checkAnnouncement(ctx context.Context) (string, error) {
	run := func(args ...string) (string, error) {
		out, errOut, exit, err := k.run.Run(ctx, pktmonPath(), args, nil)
		if err == nil && exit != 0 {
			err = fmt.Errorf("pktmon %s exited %d: %s", strings.Join(args, " "), exit, strings.TrimSpace(string(out)+string(errOut)))
		}
		return string(out), err
	}
	ip := strings.SplitN(k.addr.CIDR, "/", 2)[0]
	etl := filepath.Join(k.o.Bundle, "arp.etl")
	if _, err := run("filter", "add", "sitekeeper-vip", "-d", "ARP", "-i", ip); err != nil {
		return "pktmon unavailable: " + err.Error(), errSkip
	}
	defer run("filter", "remove")
	if _, err := run("start", "--capture", "--comp", "nics", "--file-name", etl); err != nil {
		return "", err
	}
	addErr := k.b.AddAddress(ctx, k.addr)
	k.o.Sleep(time.Second)
	_, stopErr := run("stop")
	if addErr != nil {
		return "", addErr
	}
	if stopErr != nil {
		return "", stopErr
	}
	text, err := run("etl2txt", etl)
	if err != nil {
		return "", err
	}
	_ = os.WriteFile(filepath.Join(k.o.Bundle, "arp.txt"), []byte(text), 0o644)
	if !strings.Contains(text, ip) {
		return "", fmt.Errorf("no ARP packet naming %s in the capture (arp.txt)", ip)
	}
	return "ARP traffic for the VIP captured in arp.txt: check that a request's sender is the VIP with this node's MAC", nil
}

// checkSite: the scratch site is created stopped, starts and answers on
// the address, and stops.
func (k *kit) checkSite(ctx context.Context) (string, error) {
	if err := k.b.AddAddress(ctx, k.addr); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(k.o.Path, "index.html"), []byte("sitekeeper conformance\n"), 0o644); err != nil {
		return "", err
	}
	if err := k.b.CreateSite(ctx, k.site); err != nil {
		return "", err
	}
	if err := k.b.StartSite(ctx, k.site.Name); err != nil {
		return "", err
	}
	if err := k.b.Probe(ctx, k.site.Bindings[0], "/", 5*time.Second); err != nil {
		return "", fmt.Errorf("started, but does not answer: %w", err)
	}
	if err := k.b.StopSite(ctx, k.site.Name); err != nil {
		return "", err
	}
	if err := k.b.Probe(ctx, k.site.Bindings[0], "/", 2*time.Second); err == nil {
		return "", errors.New("stopped, but still answers")
	}
	return "created stopped, started and answered, stopped and went quiet", nil
}

// checkConflict: a second site on the same binding cannot start while the
// first runs, and says so as a binding conflict.
func (k *kit) checkConflict(ctx context.Context) (string, error) {
	twin := k.site
	twin.Name = k.site.Name + "-twin"
	if err := k.b.CreateSite(ctx, twin); err != nil {
		return "", err
	}
	defer k.b.DeleteSite(ctx, twin.Name)
	if err := k.b.StartSite(ctx, k.site.Name); err != nil {
		return "", err
	}
	defer k.b.StopSite(ctx, k.site.Name)
	err := k.b.StartSite(ctx, twin.Name)
	if !errors.Is(err, backend.ErrBindingConflict) {
		return "", fmt.Errorf("starting a second site on the same binding: %v, want a binding conflict", err)
	}
	return "refused as a binding conflict", nil
}

// checkGroup: a group's take-down and bring-up each run as one request.
func (k *kit) checkGroup(ctx context.Context) (string, error) {
	down := []backend.GroupOp{{Action: "StopSite", Site: k.site.Name}, {Action: "RemoveAddress", Address: &k.addr}}
	up := []backend.GroupOp{{Action: "AddAddress", Address: &k.addr}, {Action: "StartSite", Site: k.site.Name}}
	for _, ops := range [][]backend.GroupOp{up, down} {
		if done, err := k.b.RunGroup(ctx, ops); err != nil {
			return "", fmt.Errorf("%d of %d steps done: %w", done, len(ops), err)
		}
	}
	if ok, err := k.holds(ctx); err != nil || ok {
		return "", fmt.Errorf("after the take-down the address is still held (%v)", err)
	}
	return "bring-up and take-down of the scratch group ran", nil
}

// checkAppcmd: a site with 150 bindings reads the same through appcmd's
// XML as through PowerShell (appcmd's text output fails at that size).
func (k *kit) checkAppcmd(ctx context.Context) (string, error) {
	many := k.site
	many.Name = k.site.Name + "-many"
	many.Bindings = nil
	for i := range int32(150) {
		many.Bindings = append(many.Bindings, backend.Binding{Protocol: "http", IP: k.addr.IP(), Port: k.o.Port + 1 + i})
	}
	if err := k.b.CreateSite(ctx, many); err != nil {
		return "", err
	}
	defer k.b.DeleteSite(ctx, many.Name)
	diffs, err := k.b.CrossCheck(ctx)
	if err != nil {
		return "", err
	}
	for _, d := range diffs {
		if strings.Contains(d, many.Name) {
			return "", errors.New(d)
		}
	}
	return "appcmd and PowerShell agree on a site with 150 bindings", nil
}

// checkNetshMissing: deleting an HTTP.sys binding that does not exist
// exits 1, which take-downs treat as done.
func (k *kit) checkNetshMissing(ctx context.Context) (string, error) {
	key := fmt.Sprintf("ipport=%s:%d", k.addr.IP(), k.o.Port)
	out, errOut, exit, err := k.run.Run(ctx, windows.SystemPath(os.Getenv, `System32\netsh.exe`), []string{"http", "delete", "sslcert", key}, nil)
	if err != nil {
		return "", err
	}
	if exit != 1 {
		return "", fmt.Errorf("netsh http delete sslcert %s exited %d (take-downs accept 0 and 1): %s", key, exit, strings.TrimSpace(string(out)+string(errOut)))
	}
	return "exits 1, which a take-down treats as already done", nil
}

// checkFTP: a scratch FTP site starts and stops through its ftpServer
// element, and answers while started.
func (k *kit) checkFTP(ctx context.Context) (string, error) {
	if k.o.FTPPort == 0 {
		return "no --ftp-port given", errSkip
	}
	ftp := backend.SiteConfig{Name: k.site.Name + "-ftp", PhysicalPath: k.o.Path, AppPool: "DefaultAppPool",
		Bindings: []backend.Binding{{Protocol: "ftp", IP: k.addr.IP(), Port: k.o.FTPPort}}}
	if err := k.b.AddAddress(ctx, k.addr); err != nil {
		return "", err
	}
	if err := k.b.CreateSite(ctx, ftp); err != nil {
		return "", err
	}
	defer k.b.DeleteSite(ctx, ftp.Name)
	if err := k.b.StartSite(ctx, ftp.Name); err != nil {
		return "", err
	}
	if err := k.b.Probe(ctx, ftp.Bindings[0], "", 5*time.Second); err != nil {
		return "", fmt.Errorf("started, but does not answer: %w", err)
	}
	if err := k.b.StopSite(ctx, ftp.Name); err != nil {
		return "", err
	}
	return "started through ftpServer, answered, stopped", nil
}

// checkMirror: the role of a mirrored volume is read from DataKeeper.
func (k *kit) checkMirror(ctx context.Context) (string, error) {
	if k.o.Mirror == "" {
		return "no --mirror given", errSkip
	}
	id := backend.VolumeID{Kind: backend.VolumeMirror, ID: k.o.Mirror}
	k.b.Protect([]backend.Volume{{ID: id, Root: strings.TrimSuffix(k.o.Mirror, ":") + `:\`}})
	defer k.b.Protect(nil)
	vols, err := k.b.ListVolumes(ctx)
	if err != nil {
		return "", err
	}
	if len(vols) != 1 {
		return "", fmt.Errorf("mirror %s not read (%d volumes)", k.o.Mirror, len(vols))
	}
	role := "target"
	if vols[0].Online {
		role = "source"
	}
	return "this node is the mirror's " + role + " (compare with DataKeeper's console)", nil
}

// checkDisk: the scratch disk goes offline and comes back usable.
func (k *kit) checkDisk(ctx context.Context) (string, error) {
	if k.o.Disk == "" {
		return "no --disk given", errSkip
	}
	id := backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: k.o.Disk}
	if err := k.b.TakeOffline(ctx, id); err != nil {
		return "", err
	}
	if err := k.b.BringOnline(ctx, id, k.o.DiskRoot); err != nil {
		return "", err
	}
	return "taken offline and brought online, usable at " + k.o.DiskRoot, nil
}

// missingThumbprint and missingDisk name a certificate and a disk no
// server has.
const (
	missingThumbprint = "0000000000000000000000000000000000000000"
	missingDisk       = "serial:SITEKEEPER-CONFORMANCE-NO-SUCH-DISK"
)

// checkStandby: the standby checks read the node's roles, certificates and
// disks: a certificate and a disk that do not exist are each reported
// (and nothing else is), and --cert's certificate is found usable.
func (k *kit) checkStandby(ctx context.Context) (string, error) {
	need := backend.StandbyNeeds{Features: []string{"Web-Server"},
		Certificates: []backend.Binding{{Protocol: "https", IP: k.addr.IP(), Port: 443, CertHash: missingThumbprint}},
		Volumes:      map[string]backend.Volume{"absent": {ID: backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: missingDisk}}}}
	if k.o.Cert != "" {
		need.Certificates = append(need.Certificates, backend.Binding{Protocol: "https", IP: k.addr.IP(), Port: 444, CertHash: k.o.Cert})
	}
	problems := k.b.CheckStandby(ctx, need)
	found := func(what string) bool {
		return slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, what) })
	}
	if !found(missingThumbprint+" (for https") || !found("volume absent") || len(problems) != 2 {
		return "", fmt.Errorf("want exactly the missing certificate and disk reported, got %q", problems)
	}
	detail := "a missing certificate and disk reported, the IIS roles found"
	if k.o.Cert != "" {
		detail += ", certificate " + k.o.Cert + " usable"
	}
	return detail, nil
}

// checkDHCP: an address on an interface with DHCP on is refused.
func (k *kit) checkDHCP(ctx context.Context) (string, error) {
	if k.o.DHCPInterface == "" {
		return "no --dhcp-interface given", errSkip
	}
	a := k.addr
	a.Interface = k.o.DHCPInterface
	err := k.b.AddAddress(ctx, a)
	if err == nil {
		_ = k.b.RemoveAddress(ctx, a)
		return "", fmt.Errorf("%s was added to %s, which has DHCP on: DHCP is now off on it; turn it back on (Set-NetIPInterface -Dhcp Enabled)", a.CIDR, a.Interface)
	}
	if !strings.Contains(err.Error(), "DHCP") {
		return "", fmt.Errorf("refused, but not for DHCP: %w", err)
	}
	return "refused, naming the interface", nil
}

// cleanup removes every scratch resource, whatever the checks left.
func (k *kit) cleanup(ctx context.Context) {
	_ = k.b.StopSite(ctx, k.site.Name)
	_ = k.b.DeleteSite(ctx, k.site.Name)
	for _, suffix := range []string{"-twin", "-many", "-ftp"} {
		_ = k.b.DeleteSite(ctx, k.site.Name+suffix)
	}
	_ = k.b.RemoveAddress(ctx, k.addr)
}

// Print writes the results as a table.
func Print(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tVERIFY\tRESULT\tDETAIL")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Check, r.Verify, r.Outcome, r.Detail)
	}
	return tw.Flush()
}

// Failed counts the failed checks.
func Failed(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Outcome == "fail" {
			n++
		}
	}
	return n
}

// pktmonPath is Windows' packet monitor, by its absolute path.
func pktmonPath() string { return windows.SystemPath(os.Getenv, `System32\PktMon.exe`) }
