package windows

import (
	"context"
	"fmt"
	"slices"

	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

func TestDiskUsable(t *testing.T) {
	healthy := wireVolume{DriveLetter: "E", FileSystem: "NTFS", Health: "Healthy", Operational: "OK"}
	tests := []struct {
		name string
		disk wireDisk
		want string // a part of the reason; "" = usable
	}{
		{name: "online and healthy", disk: wireDisk{Found: true, Volumes: list[wireVolume]{healthy}}},
		{name: "mounted in a folder", disk: wireDisk{Found: true, Volumes: list[wireVolume]{{AccessPaths: list[string]{`C:\ClusterStorage\web\`, `\\?\Volume{1}\`}, FileSystem: "ReFS", Health: "Healthy"}}}},
		{name: "missing", disk: wireDisk{}, want: "not found"},
		{name: "offline by policy", disk: wireDisk{Found: true, IsOffline: true, Reason: "Policy"}, want: "offline (Policy)"},
		{name: "read-only", disk: wireDisk{Found: true, ReadOnly: true}, want: "read-only"},
		{name: "other letter", disk: wireDisk{Found: true, Volumes: list[wireVolume]{{DriveLetter: "F", FileSystem: "NTFS", Health: "Healthy"}}}, want: `mounted at F:\`},
		// As Get-Volume shows an unmounted volume in the recorded capture.
		{name: "not mounted", disk: wireDisk{Found: true, Volumes: list[wireVolume]{{DriveLetter: "E", FileSystem: "Unknown", Health: "Healthy", Operational: "Unknown"}}}, want: `file system "Unknown"`},
		{name: "needs repair", disk: wireDisk{Found: true, Volumes: list[wireVolume]{{DriveLetter: "E", FileSystem: "NTFS", Health: "Unhealthy", Operational: "Full Repair Needed"}}}, want: "Unhealthy (Full Repair Needed)"},
	}
	for _, tt := range tests {
		root := `E:\`
		if tt.name == "mounted in a folder" {
			root = `C:\ClusterStorage\web`
		}
		got := tt.disk.usable(root)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: usable = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRecordedGetVolumeShowsUnmountedAsUnknown(t *testing.T) {
	// The capture's CD-ROM row: no file system is "Unknown", which usable
	// refuses; its offline disk row is "Offline".
	data := string(fixture(t, "storage/Get-Disk.offline-then-Get-Volume.txt"))
	for _, must := range []string{"Offline", "Unknown        CD-ROM", "NTFS           Fixed     Healthy      OK"} {
		if !strings.Contains(data, must) {
			t.Errorf("capture lacks %q", must)
		}
	}
}

func TestSharedDiskGoldenAndIdentity(t *testing.T) {
	online := reply(wireDisk{Found: true, Volumes: list[wireVolume]{{DriveLetter: "E", FileSystem: "NTFS", Health: "Healthy", Operational: "OK"}}})
	listed := reply(map[string]any{"disks": []any{
		map[string]any{"uniqueId": "6000C29A1B2C3D4E", "found": true, "volumes": map[string]any{"driveLetter": "E", "fileSystem": "NTFS", "health": "Healthy"}},
		map[string]any{"serial": "5001438006EFCC90", "found": true, "isOffline": true, "offlineReason": "Policy"},
	}})
	b, r, _ := newTestBackend(t, psRec(scriptDisk, listed, 0))
	ctx := context.Background()
	byID := backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: "6000C29A1B2C3D4E"}
	bySerial := backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: "serial:5001438006EFCC90"}
	b.Protect([]backend.Volume{{ID: byID, Root: `E:\`}, {ID: bySerial, Root: `G:\`}})
	got, err := b.ListVolumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.Volume{{ID: byID, Root: `E:\`, Online: true}, {ID: bySerial, Root: `G:\`}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}

	b2, r2, _ := newTestBackend(t, psRec(scriptDisk, online, 0))
	if err := b2.BringOnline(ctx, byID, `E:\`); err != nil {
		t.Fatal(err)
	}
	if err := b2.BringOnline(ctx, byID, `H:\`); !errors.Is(err, backend.ErrUnsupported) || !strings.Contains(err.Error(), `no volume mounted at H:\`) {
		t.Errorf("wrong letter: %v", err)
	}
	if err := b2.TakeOffline(ctx, bySerial); err != nil {
		t.Fatal(err)
	}
	golden(t, "disks.txt", rendered(append(r.Calls, r2.Calls...)))

	b3, _, _ := newTestBackend(t, psRec(scriptDisk, failure("VolumeReserved", "disk 6000C29A1B2C3D4E cannot come online: reservation conflict"), 1))
	if err := b3.BringOnline(ctx, byID, `E:\`); !errors.Is(err, backend.ErrVolumeReserved) {
		t.Errorf("reserved disk: %v", err)
	}
}

func TestMirrorParsers(t *testing.T) {
	roles := map[string]MirrorRole{
		"Volume E:\r\n  Role: SOURCE\r\n":                             MirrorSource,
		"\ufeffVolume E:\n  Mirror Role = Target\n":                   MirrorTarget,
		"Volume E:\r\n  Source: node1 (SOURCE)\r\n  Role: TARGET\r\n": MirrorTarget,
		"E: TARGET of cae-qa-v200\n":                                  MirrorUnknown, // no role field
		"":                                                            MirrorUnknown,
		"ERROR: volume E is not mirrored\r\n":                         MirrorUnknown,
	}
	for out, want := range roles {
		if got := ParseVolumeRole([]byte(out)); got != want {
			t.Errorf("ParseVolumeRole(%q) = %s, want %s", out, got, want)
		}
	}
	states := []struct {
		out     string
		want    MirrorState
		wantErr bool
	}{
		{out: "E: 1 10.0.0.2 1\r\n", want: MirrorMirroring},
		{out: "\ufeffE: 1 10.0.0.2 4\n", want: MirrorPaused},
		{out: "\r\n\r\nE 1 10.0.0.2 1", want: MirrorMirroring},
		{out: "", wantErr: true},
		{out: "ERROR: no mirror\r\n", wantErr: true},
	}
	for _, tt := range states {
		got, err := ParseMirrorVolInfo([]byte(tt.out))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseMirrorVolInfo(%q) = %d, %v", tt.out, got, err)
		}
	}
}

func TestMirrorSwitchoverGolden(t *testing.T) {
	base := `C:\Program Files (x86)\SIOS\DataKeeper`
	emcmd := emcmdPath(base)
	// Without DataKeeper's module, emcmd's text is read by its role field.
	noModule := psRec(scriptMirror, failure("ModuleMissing", "DataKeeper's PowerShell module is not installed"), 1)
	r := NewReplay(noModule,
		Recording{Name: emcmd, Args: EmcmdArgs("GETVOLUMEINFO", "e", "1"), Stdout: "Volume E:\r\n  Role: TARGET\r\n  Source: node1 (SOURCE)\r\n"},
		Recording{Name: emcmd, Args: EmcmdArgs("SWITCHOVERVOLUME", "E"), Stdout: "Status = 0\r\n"},
		Recording{Name: emcmd, Args: EmcmdArgs("GETVOLUMEINFO", "E", "1"), Stdout: "Volume E:\r\n  Role: TARGET\r\n  Source: node1 (SOURCE)\r\n"},
		Recording{Name: emcmd, Args: EmcmdArgs("GETVOLUMEINFO", "E", "1"), Stdout: "Volume E:\r\n  Role: SOURCE\r\n  Target: node2 (TARGET)\r\n"},
		Recording{Name: emcmd, Args: EmcmdArgs("GETMIRRORVOLINFO", "E"), Stdout: "E: 1 10.0.0.12 4\r\n"},
	)
	sink := &recordingSink{}
	b, err := New(Options{Runner: r, ExtMirrBase: base, SwitchoverTimeout: 5e9, Log: logr.New(sink)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := backend.VolumeID{Kind: backend.VolumeMirror, ID: "E"}
	if err := b.BringOnline(ctx, id, `E:\`); err != nil {
		t.Fatal(err)
	}
	b.Protect([]backend.Volume{{ID: id, Root: `E:\`}})
	vols, err := b.ListVolumes(ctx)
	if err != nil || len(vols) != 1 || !vols[0].Online {
		t.Errorf("after switchover: %+v, %v", vols, err)
	}
	if err := b.TakeOffline(ctx, id); err != nil {
		t.Errorf("a mirror's take-down is the next source's switchover: %v", err)
	}
	golden(t, "mirror.txt", rendered(r.Calls))
	if !strings.Contains(strings.Join(sink.errors, "\n"), "mirror state 4") {
		t.Errorf("a paused mirror after the switchover was not reported: %v", sink.errors)
	}

	failing := NewReplay(noModule,
		Recording{Name: emcmd, Args: EmcmdArgs("GETVOLUMEINFO", "E", "1"), Stdout: "Volume E:\r\n  Role: TARGET\r\n"},
		Recording{Name: emcmd, Args: EmcmdArgs("SWITCHOVERVOLUME", "E"), Stdout: "Status = 5\r\n", Exit: 5},
	)
	b2, _ := New(Options{Runner: failing, ExtMirrBase: base})
	if err := b2.BringOnline(ctx, id, `E:\`); err == nil || !strings.Contains(err.Error(), "exited 5") {
		t.Errorf("failed switchover: %v", err)
	}
}

// TestMirrorThroughDataKeepersModule: with DataKeeper's module the role is
// its MirrorRole field; after the switchover every target is read, a
// resync is said as such (not an error), a paused target is an error.
func TestMirrorThroughDataKeepersModule(t *testing.T) {
	base := `C:\Program Files (x86)\SIOS\DataKeeper`
	emcmd := emcmdPath(base)
	info := func(role string, targets ...map[string]any) Recording {
		return psRec(scriptMirror, reply(map[string]any{"role": role, "targets": targets}), 0)
	}
	r := NewReplay(
		info("Target", map[string]any{"system": "node1", "state": "Mirror"}),
		Recording{Name: emcmd, Args: EmcmdArgs("SWITCHOVERVOLUME", "E"), Stdout: "Status = 0\r\n"},
		info("Target"),
		info("Source", map[string]any{"system": "node1", "state": "Resync"}, map[string]any{"system": "dr1", "state": "Paused"}),
	)
	sink := &recordingSink{}
	b, err := New(Options{Runner: r, ExtMirrBase: base, SwitchoverTimeout: 5e9, Log: logr.New(sink)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.BringOnline(context.Background(), backend.VolumeID{Kind: backend.VolumeMirror, ID: "E"}, `E:\`); err != nil {
		t.Fatal(err)
	}
	errs := strings.Join(sink.errors, "\n")
	if strings.Contains(errs, "node1") || !strings.Contains(errs, "target dr1 is Paused") {
		t.Errorf("errors logged: %q; want the paused target, not the resyncing one", errs)
	}
	if !slices.ContainsFunc(sink.infos, func(s string) bool { return strings.Contains(s, "resynchronizing") }) {
		t.Errorf("the resync was not reported: %v", sink.infos)
	}
	var emcmdCalls int
	for _, c := range r.Calls {
		if c.Name == emcmd {
			emcmdCalls++
		}
	}
	if emcmdCalls != 1 {
		t.Errorf("%d emcmd calls, want only the switchover", emcmdCalls)
	}
}

// recordingSink keeps the error messages logged through logr.
type recordingSink struct{ errors, infos []string }

func (s *recordingSink) Init(logr.RuntimeInfo)            {}
func (s *recordingSink) Enabled(int) bool                 { return true }
func (s *recordingSink) Info(_ int, msg string, _ ...any) { s.infos = append(s.infos, msg) }
func (s *recordingSink) WithValues(...any) logr.LogSink   { return s }
func (s *recordingSink) WithName(string) logr.LogSink     { return s }
func (s *recordingSink) Error(err error, msg string, kv ...any) {
	s.errors = append(s.errors, fmt.Sprint(msg, ": ", err))
}
