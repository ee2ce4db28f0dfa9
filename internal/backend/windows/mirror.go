package windows

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/diag"
)

// The replication product (SIOS DataKeeper) is driven through its command
// line, emcmd, run directly by argv. No reference page of emcmd's output was
// available: the parsing below follows how SIOS's own QA and Quick Start
// scripts read it (test/fixtures/windows/datakeeper), and the README lists
// it for verification on a real installation.

// MirrorRole is this node's part in a mirror.
type MirrorRole string

// Mirror roles.
const (
	MirrorSource  MirrorRole = "Source"
	MirrorTarget  MirrorRole = "Target"
	MirrorUnknown MirrorRole = "Unknown"
)

// emcmdPath is %ExtMirrBase%\emcmd.exe; base is the environment variable
// DataKeeper's installer sets.
func emcmdPath(base string) string {
	if base == "" {
		base = `C:\Program Files (x86)\SIOS\DataKeeper`
	}
	return strings.TrimRight(base, `\`) + `\emcmd.exe`
}

// EmcmdArgs is the argv of one emcmd verb run against this node (".").
func EmcmdArgs(verb, volume string, extra ...string) []string {
	return append([]string{".", verb, strings.ToUpper(strings.TrimSuffix(volume, ":"))}, extra...)
}

// roleField is a "Role: SOURCE" (or "Mirror Role = Target") line.
var roleField = regexp.MustCompile(`(?i)^\s*(?:mirror\s*)?role\s*[:=]\s*(source|target)\b`)

// ParseVolumeRole reads `emcmd . GETVOLUMEINFO <vol> 1`, the fallback when
// DataKeeper's PowerShell module is missing: the role is the value of the
// role field, never a line that merely mentions SOURCE or TARGET (a
// target's output names its source, and a source's its targets). CRLF or
// LF, BOM or not. [verify] the field's name on a DataKeeper install.
func ParseVolumeRole(out []byte) MirrorRole {
	sc := bufio.NewScanner(strings.NewReader(strings.TrimPrefix(string(out), "\ufeff")))
	for sc.Scan() {
		m := roleField.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if strings.EqualFold(m[1], "source") {
			return MirrorSource
		}
		return MirrorTarget
	}
	return MirrorUnknown
}

// mirrorInfo is datakeeper.ps1's answer: this node's role, from the
// module's MirrorRole field, and every target with its state.
type mirrorInfo struct {
	Role    string             `json:"role"`
	Targets list[mirrorTarget] `json:"targets"`
}

type mirrorTarget struct {
	System string `json:"system"`
	State  string `json:"state"`
}

func (m mirrorInfo) role() MirrorRole {
	switch {
	case strings.EqualFold(m.Role, "Source"):
		return MirrorSource
	case strings.EqualFold(m.Role, "Target"):
		return MirrorTarget
	}
	return MirrorUnknown
}

// mirrorInfo reads the mirror through DataKeeper's module; ok is false
// when the module is missing (emcmd's text is the fallback).
func (b *Backend) mirrorInfo(ctx context.Context, volume string) (mirrorInfo, bool, error) {
	var info mirrorInfo
	if b.noMirrorModule.Load() {
		return info, false, nil
	}
	err := runScript(ctx, b.scripts, scriptMirror, map[string]string{"op": "info", "volume": strings.ToUpper(strings.TrimSuffix(volume, ":"))}, &info)
	if errors.Is(err, ErrFeatureMissing) {
		// Asked once: the module does not appear while the agent runs.
		b.noMirrorModule.Store(true)
		b.log.Info("DataKeeper's PowerShell module is missing; reading mirrors from emcmd's output", "error", err.Error())
		return info, false, nil
	}
	return info, err == nil, err
}

// MirrorState is the state code of a mirror; SIOS's scripts use 1 for
// mirroring and 4 for paused. [verify] the other codes.
type MirrorState int

// Known mirror states.
const (
	MirrorMirroring MirrorState = 1
	MirrorPaused    MirrorState = 4
)

// ParseMirrorVolInfo reads `emcmd . GETMIRRORVOLINFO <vol>`: the state is
// the last character of the first line, as SIOS's switchover stress test
// reads it. An empty or non-numeric answer is an error.
func ParseMirrorVolInfo(out []byte) (MirrorState, error) {
	text := strings.TrimPrefix(string(out), "\ufeff")
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		c := line[len(line)-1]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("GETMIRRORVOLINFO: no state digit at the end of %q", diag.Clip(line))
		}
		return MirrorState(c - '0'), nil
	}
	return 0, fmt.Errorf("GETMIRRORVOLINFO: empty output")
}

func (b *Backend) emcmd(ctx context.Context, verb, volume string, extra ...string) ([]byte, error) {
	args := EmcmdArgs(verb, volume, extra...)
	stdout, stderr, exit, err := b.run.Run(ctx, emcmdPath(b.extMirrBase), args, nil)
	if err != nil {
		return nil, fmt.Errorf("emcmd %s %s: %w", verb, volume, err)
	}
	if exit != 0 {
		return stdout, fmt.Errorf("emcmd %s %s exited %d: %s", verb, volume, exit, diag.Clip(strings.TrimSpace(string(stdout)+" "+string(stderr))))
	}
	return stdout, nil
}

func (b *Backend) mirrorRole(ctx context.Context, volume string) (MirrorRole, error) {
	info, ok, err := b.mirrorInfo(ctx, volume)
	if err != nil {
		return MirrorUnknown, err
	}
	if ok {
		return info.role(), nil
	}
	out, err := b.emcmd(ctx, "GETVOLUMEINFO", volume, "1")
	if err != nil {
		return MirrorUnknown, err
	}
	return ParseVolumeRole(out), nil
}

// switchoverMirror makes this node the mirror's source and waits until
// emcmd says so. A paused or broken mirror is refused by DataKeeper; that
// error is passed on.
func (b *Backend) switchoverMirror(ctx context.Context, volume string) error {
	if role, err := b.mirrorRole(ctx, volume); err == nil && role == MirrorSource {
		return nil
	}
	if _, err := b.emcmd(ctx, "SWITCHOVERVOLUME", volume); err != nil {
		return fmt.Errorf("bring mirror %s online: %w", volume, err)
	}
	deadline := time.Now().Add(b.switchoverTimeout)
	for {
		role, err := b.mirrorRole(ctx, volume)
		if err == nil && role == MirrorSource {
			b.checkMirroring(ctx, volume)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bring mirror %s online: still %s after %s: %w", volume, role, b.switchoverTimeout, backend.ErrVolumeReserved)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkMirroring reads the mirror's state back after a switchover: the
// volume serves either way, but a paused or broken mirror no longer
// protects it, which an administrator must hear about.
func (b *Backend) checkMirroring(ctx context.Context, volume string) {
	if info, ok, err := b.mirrorInfo(ctx, volume); err == nil && ok {
		b.reportTargets(volume, info.Targets)
		return
	}
	out, err := b.emcmd(ctx, "GETMIRRORVOLINFO", volume)
	if err == nil {
		var st MirrorState
		if st, err = ParseMirrorVolInfo(out); err == nil && st == MirrorMirroring {
			return
		} else if err == nil {
			err = fmt.Errorf("mirror state %d, not mirroring (1)", st)
		}
	}
	b.log.Error(err, "Mirror is source here but not replicating; the volume is unprotected until it resumes", "volume", volume)
}

// reportTargets says, for every target of a mirror that is source here,
// whether it protects the volume: mirroring is fine; a resync, normal
// right after a switchover, is said as such; anything else (paused,
// broken, none) leaves the volume unprotected until an administrator acts.
func (b *Backend) reportTargets(volume string, targets []mirrorTarget) {
	if len(targets) == 0 {
		b.log.Error(errors.New("no target"), "Mirror is source here with no target; the volume is unprotected", "volume", volume)
		return
	}
	for _, t := range targets {
		state := strings.ToLower(t.State)
		switch {
		case strings.HasPrefix(state, "mirror"):
		case strings.Contains(state, "resync"):
			b.log.Info("Mirror target resynchronizing after the switchover; the volume is fully protected once it completes", "volume", volume, "target", t.System, "state", t.State)
		default:
			b.log.Error(fmt.Errorf("target %s is %s", t.System, t.State), "Mirror target not replicating; the volume is unprotected on it until it resumes", "volume", volume, "target", t.System)
		}
	}
}
