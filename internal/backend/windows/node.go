package windows

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/probe"
)

// Options configure the Windows backend.
type Options struct {
	// Runner runs commands (appcmd, emcmd); nil means ExecRunner.
	Runner Runner
	// Scripts runs the embedded PowerShell scripts. Nil means one
	// persistent PowerShell host (a Host) when Runner is nil too, else a
	// process per call through Runner (what replay tests record).
	Scripts ScriptCaller
	// DataDir holds the backend's own records (the https certificate book).
	DataDir string
	// ExtMirrBase is DataKeeper's install folder; empty means the
	// ExtMirrBase environment variable, then the default install folder.
	ExtMirrBase string
	// DADTimeout bounds the wait for a new address to leave Tentative.
	DADTimeout time.Duration
	// SwitchoverTimeout bounds the wait for a mirror to become source here.
	SwitchoverTimeout time.Duration
	// Lifetime, when set, is how long a virtual address outlives the
	// agent's last lease renewal: addresses are added with it and extended
	// at each renewal, so a frozen or killed agent's addresses expire by
	// themselves (0: they never expire).
	Lifetime time.Duration
	// Announce tells the network that ip moved here (gateway may be empty);
	// nil means the platform's gratuitous ARP (none off Windows).
	Announce func(ip, gateway string) error
	// WhoHas asks the network which MAC answers for ip; nil means
	// SendARP on Windows (none elsewhere). The standby check uses it.
	WhoHas func(ip string) (mac string, ok bool)
	// Hostname is this node's computer name as DataKeeper lists mirror
	// targets; empty means the OS's.
	Hostname string
	Log      logr.Logger
}

// Backend is a Windows node: IIS, NetTCPIP and Storage through embedded
// PowerShell scripts, DataKeeper through emcmd, probes over the network.
type Backend struct {
	probe.Network
	run               Runner
	scripts           ScriptCaller
	log               logr.Logger
	certs             *certBook
	vols              volumeSet
	extMirrBase       string
	dadTimeout        time.Duration
	switchoverTimeout time.Duration
	announce          func(ip, gateway string) error
	lease             leaseHold
	noMirrorModule    atomic.Bool
	memo              standbyMemo
	whoHas            func(ip string) (mac string, ok bool)
	hostname          string
}

var (
	_ backend.Node            = (*Backend)(nil)
	_ backend.SiteUpdater     = (*Backend)(nil)
	_ backend.VolumeProtector = (*Backend)(nil)
	_ backend.Preflight       = (*Backend)(nil)
	_ backend.StandbyChecker  = (*Backend)(nil)
)

// New returns the backend; it reads the certificate book from DataDir.
func New(o Options) (*Backend, error) {
	b := &Backend{run: o.Runner, scripts: o.Scripts, log: o.Log, extMirrBase: o.ExtMirrBase, dadTimeout: o.DADTimeout, switchoverTimeout: o.SwitchoverTimeout, announce: o.Announce,
		whoHas: o.WhoHas, hostname: o.Hostname}
	switch {
	case b.scripts == nil && b.run == nil:
		b.scripts = &Host{Log: o.Log.WithName("pshost")}
	case b.scripts == nil:
		b.scripts = processPerCall{run: b.run}
	}
	if b.run == nil {
		b.run = ExecRunner{}
	}
	b.lease = leaseHold{b: b, lifetime: o.Lifetime}
	if b.extMirrBase == "" {
		b.extMirrBase = os.Getenv("ExtMirrBase")
	}
	if b.dadTimeout == 0 {
		b.dadTimeout = 10 * time.Second
	}
	if b.switchoverTimeout == 0 {
		b.switchoverTimeout = 60 * time.Second
	}
	if b.announce == nil {
		b.announce = gratuitousARP
	}
	if b.whoHas == nil {
		b.whoHas = arpWhoHas
	}
	if b.hostname == "" {
		b.hostname, _ = os.Hostname()
	}
	path := ""
	if o.DataDir != "" {
		path = filepath.Join(o.DataDir, "https-certificates.json")
	}
	var err error
	b.certs, err = loadCertBook(path)
	var damaged *damagedBookError
	switch {
	case errors.As(err, &damaged):
		b.log.Error(err, "Certificate book damaged; never keeps the agent from starting")
	case err != nil:
		return nil, err
	}
	return b, nil
}
