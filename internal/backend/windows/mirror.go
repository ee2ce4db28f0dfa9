package windows

import (
	"bufio"
	"context"
	"fmt"
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

// ParseVolumeRole reads `emcmd . GETVOLUMEINFO <vol> 1`: the node is the
// source when a line says SOURCE, the target when one says TARGET (SIOS's
// scripts filter it with `findstr SOURCE|TARGET`). CRLF or LF, BOM or not.
func ParseVolumeRole(out []byte) MirrorRole {
	sc := bufio.NewScanner(strings.NewReader(strings.TrimPrefix(string(out), "\ufeff")))
	for sc.Scan() {
		line := strings.ToUpper(sc.Text())
		switch {
		case strings.Contains(line, "SOURCE"):
			return MirrorSource
		case strings.Contains(line, "TARGET"):
			return MirrorTarget
		}
	}
	return MirrorUnknown
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
