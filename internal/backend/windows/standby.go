package windows

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

const scriptCerts = "certs.ps1"

// standbyMemoFor is how long one answer of the node serves the standby
// checks of other groups: a pass over hundreds of groups asks PowerShell
// once per certificate, disk set and feature set, not once per group. It is
// shorter than any resync, so every resync still sees the node as it is.
const standbyMemoFor = 5 * time.Second

// standbyMemo keeps recent answers to the standby checks, by request. A
// node proves its standbys side by side: the first caller asks, the
// others asking the same meanwhile wait for its answer.
type standbyMemo struct {
	mu      sync.Mutex
	answers map[string]*memoAnswer
}

type memoAnswer struct {
	at       time.Time
	done     chan struct{} // closed once problems is set
	problems []string
}

// get answers key from memory when it was asked within standbyMemoFor (or
// is being asked now), or asks.
func (m *standbyMemo) get(key string, ask func() []string) []string {
	now := time.Now()
	m.mu.Lock()
	if a, ok := m.answers[key]; ok && now.Sub(a.at) < standbyMemoFor {
		m.mu.Unlock()
		<-a.done
		return a.problems
	}
	if m.answers == nil {
		m.answers = map[string]*memoAnswer{}
	}
	for k, a := range m.answers {
		if now.Sub(a.at) >= standbyMemoFor {
			delete(m.answers, k)
		}
	}
	a := &memoAnswer{at: now, done: make(chan struct{})}
	m.answers[key] = a
	m.mu.Unlock()
	a.problems = ask()
	close(a.done)
	return a.problems
}

// CheckStandby implements backend.StandbyChecker with the node's own
// cmdlets: the IIS roles through Get-WindowsFeature, each certificate in
// Cert:\LocalMachine with a private key that opens, each shared disk seen
// by its UniqueId or serial (offline is how a standby holds it), each
// mirror replicating to this node and not resynchronizing, and no host
// but the serving node answering ARP for the addresses (SendARP).
func (b *Backend) CheckStandby(ctx context.Context, need backend.StandbyNeeds) []string {
	var out []string
	ftp := slices.ContainsFunc(need.Features, func(f string) bool { return strings.EqualFold(f, FTPFeature.Name) })
	out = append(out, b.memo.get(fmt.Sprint("features ", ftp), func() []string { return b.standbyFeatures(ctx, ftp) })...)
	for _, c := range uniqueCerts(need.Certificates) {
		out = append(out, b.memo.get("cert "+c.CertStore+`\`+c.CertHash, func() []string { return b.standbyCert(ctx, c) })...)
	}
	for _, name := range slices.Sorted(maps.Keys(need.Volumes)) {
		v := need.Volumes[name]
		out = append(out, b.memo.get("volume "+v.ID.String(), func() []string { return b.standbyVolume(ctx, name, v) })...)
	}
	if need.ServedBy == "" && b.whoHas != nil {
		// With the group served elsewhere, SendARP's one answer is the
		// serving node's: only a group served nowhere can be told apart
		// from a third host here.
		for _, a := range need.Addresses {
			if mac, ok := b.whoHas(a.IP()); ok {
				out = append(out, fmt.Sprintf("address %s is answered by %s while no node serves the group: another host holds it", a.IP(), mac))
			}
		}
	}
	return out
}

func (b *Backend) standbyFeatures(ctx context.Context, ftp bool) []string {
	missing, err := b.missingFeatures(ctx, ftp)
	if err != nil {
		return []string{"could not read the installed IIS roles: " + err.Error()}
	}
	if len(missing) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("IIS roles not installed: %s (%s)", describeFeatures(missing), installCommand(missing))}
}

// uniqueCerts is each certificate once, by store and thumbprint.
func uniqueCerts(bindings []backend.Binding) []backend.Binding {
	seen := map[string]bool{}
	var out []backend.Binding
	for _, b := range bindings {
		b.CertStore, b.CertHash = canonicalStore(b.CertStore), strings.ToUpper(b.CertHash)
		if k := b.CertStore + `\` + b.CertHash; !seen[k] {
			seen[k] = true
			out = append(out, b)
		}
	}
	return out
}

type wireCert struct {
	Store         string `json:"store"`
	Thumbprint    string `json:"thumbprint"`
	Found         bool   `json:"found"`
	HasPrivateKey bool   `json:"hasPrivateKey"`
	KeyUsable     bool   `json:"keyUsable"`
	NotAfter      string `json:"notAfter"`
	Subject       string `json:"subject"`
}

type certRef struct {
	Store      string `json:"store"`
	Thumbprint string `json:"thumbprint"`
}

func (b *Backend) standbyCert(ctx context.Context, c backend.Binding) []string {
	var res struct {
		Certificates list[wireCert] `json:"certificates"`
	}
	req := struct {
		Certificates []certRef `json:"certificates"`
	}{[]certRef{{Store: c.CertStore, Thumbprint: c.CertHash}}}
	where := fmt.Sprintf(`Cert:\LocalMachine\%s\%s (for %s)`, c.CertStore, c.CertHash, c)
	if err := runScript(ctx, b.scripts, scriptCerts, req, &res); err != nil {
		return []string{fmt.Sprintf("could not read certificate %s: %v", where, err)}
	}
	if len(res.Certificates) != 1 {
		return []string{fmt.Sprintf("could not read certificate %s: %d answers", where, len(res.Certificates))}
	}
	return certProblems(res.Certificates[0], where, time.Now())
}

// certProblems says why HTTP.sys could not serve with the certificate.
func certProblems(w wireCert, where string, now time.Time) []string {
	switch {
	case !w.Found:
		return []string{"certificate " + where + " is not installed on this node: import it with its private key (Import-PfxCertificate)"}
	case !w.HasPrivateKey:
		return []string{"certificate " + where + " has no private key on this node: import the .pfx, not the .cer"}
	case !w.KeyUsable:
		return []string{"certificate " + where + " has a private key this node cannot open (key file missing or not readable by the system account): import the .pfx again"}
	}
	if t, err := time.Parse(time.RFC3339, w.NotAfter); err == nil && !t.After(now) {
		return []string{fmt.Sprintf("certificate %s expired on %s", where, t.UTC().Format("2006-01-02"))}
	}
	return nil
}

func (b *Backend) standbyVolume(ctx context.Context, name string, v backend.Volume) []string {
	what := fmt.Sprintf("volume %s (%s)", name, v.ID)
	switch v.ID.Kind {
	case backend.VolumeSharedDisk:
		var res struct {
			Disks list[wireDisk] `json:"disks"`
		}
		if err := runScript(ctx, b.scripts, scriptDisk, diskRequest{Op: "list", Disks: []diskRef{diskRefOf(v.ID)}}, &res); err != nil {
			return []string{"could not look for " + what + ": " + err.Error()}
		}
		if len(res.Disks) != 1 || !res.Disks[0].Found {
			return []string{what + " is not visible to this node: present the disk to it (zoning, iSCSI target, or the hypervisor's shared disk)"}
		}
		return nil
	case backend.VolumeMirror:
		return b.standbyMirror(ctx, what, v.ID.ID)
	}
	return []string{what + ": unknown volume kind"}
}

// standbyMirror: this node is the mirror's target and its copy is
// current. A resynchronizing, paused or broken target would come up with
// old or partial data.
func (b *Backend) standbyMirror(ctx context.Context, what, volume string) []string {
	info, ok, err := b.mirrorInfo(ctx, volume)
	if err != nil {
		return []string{"could not read mirror " + what + ": " + err.Error()}
	}
	if !ok {
		role, err := b.mirrorRole(ctx, volume)
		if err != nil {
			return []string{"could not read mirror " + what + ": " + err.Error()}
		}
		if role == MirrorUnknown {
			return []string{what + " is not mirrored to this node"}
		}
		out, err := b.emcmd(ctx, "GETMIRRORVOLINFO", volume)
		if err != nil {
			return []string{"could not read mirror " + what + ": " + err.Error()}
		}
		st, err := ParseMirrorVolInfo(out)
		if err != nil {
			return []string{"could not read mirror " + what + ": " + err.Error()}
		}
		if st != MirrorMirroring {
			return []string{fmt.Sprintf("%s is not mirroring (state %d): this node's copy is not current", what, st)}
		}
		return nil
	}
	switch info.role() {
	case MirrorUnknown:
		return []string{what + " is not mirrored to this node"}
	case MirrorSource:
		return nil // the data is here; the serving node is the one without it
	}
	targets := info.Targets
	if mine := slices.IndexFunc(targets, func(t mirrorTarget) bool { return sameHost(t.System, b.hostname) }); mine >= 0 {
		targets = targets[mine : mine+1]
	}
	for _, t := range targets {
		state := strings.ToLower(t.State)
		switch {
		case strings.HasPrefix(state, "mirror"):
		case strings.Contains(state, "resync"):
			return []string{fmt.Sprintf("%s is resynchronizing to %s: this node's copy is not current until it completes", what, t.System)}
		default:
			return []string{fmt.Sprintf("%s target %s is %s: this node's copy is not current", what, t.System, t.State)}
		}
	}
	if len(targets) == 0 {
		return []string{what + " lists no target"}
	}
	return nil
}

// sameHost compares a DataKeeper system name (a host name, maybe fully
// qualified) with this node's name.
func sameHost(system, host string) bool {
	short := func(s string) string { h, _, _ := strings.Cut(s, "."); return h }
	return host != "" && strings.EqualFold(short(system), short(host))
}
