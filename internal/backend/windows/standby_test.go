package windows

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

const thumb = "3D8C1A0F5B2E4C6A8B9D0E1F2A3B4C5D6E7F8091"

func allFeatures(ftp bool) Recording {
	var fs []any
	for _, f := range RequiredFeatures {
		fs = append(fs, map[string]any{"name": f.Name, "installed": true})
	}
	fs = append(fs, map[string]any{"name": FTPFeature.Name, "installed": ftp})
	return psRec(scriptFeatures, reply(map[string]any{"features": fs}), 0)
}

func certAnswer(c map[string]any) Recording {
	base := map[string]any{"store": "My", "thumbprint": thumb, "found": true, "hasPrivateKey": true, "keyUsable": true,
		"notAfter": "2099-01-01T00:00:00.0000000Z", "subject": "CN=www.example.com"}
	for k, v := range c {
		base[k] = v
	}
	return psRec(scriptCerts, reply(map[string]any{"certificates": []any{base}}), 0)
}

func diskAnswer(found bool) Recording {
	return psRec(scriptDisk, reply(map[string]any{"disks": []any{map[string]any{"uniqueId": "6000C29D", "found": found, "isOffline": true, "offlineReason": "Policy"}}}), 0)
}

func mirrorAnswer(role string, targets ...map[string]any) Recording {
	return psRec(scriptMirror, reply(map[string]any{"role": role, "targets": targets}), 0)
}

// TestCheckStandbyOnCmdlets runs the standby checks against replayed
// answers of the scripts: each fault yields one problem that names the
// object and says what to do; a ready node yields none.
func TestCheckStandbyOnCmdlets(t *testing.T) {
	https := backend.Binding{Protocol: "https", IP: "10.0.0.50", Port: 443, CertHash: strings.ToLower(thumb)}
	disk := backend.Volume{ID: backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: "6000C29D"}, Root: `S:\`}
	mirror := backend.Volume{ID: backend.VolumeID{Kind: backend.VolumeMirror, ID: "E"}, Root: `E:\`}
	addr := backend.Address{CIDR: "10.0.0.50/24"}
	tests := []struct {
		name   string
		need   backend.StandbyNeeds
		recs   []Recording
		answer string // what WhoHas finds for 10.0.0.50
		want   []string
	}{
		{name: "ready", need: backend.StandbyNeeds{Certificates: []backend.Binding{https, https}, Volumes: map[string]backend.Volume{"data": disk, "mirror": mirror},
			Features: []string{"Web-Server"}, Addresses: []backend.Address{addr}, ServedBy: "node1"},
			recs:   []Recording{allFeatures(false), certAnswer(nil), diskAnswer(true), mirrorAnswer("Target", map[string]any{"system": "NODE2.corp.example", "state": "Mirroring"})},
			answer: "00-15-5d-01-02-03"},
		{name: "ftp role missing", need: backend.StandbyNeeds{Features: []string{"Web-Server", "Web-Ftp-Server"}},
			recs: []Recording{allFeatures(false)},
			want: []string{"IIS roles not installed: FTP Server (Web-Ftp-Server) (Install-WindowsFeature Web-Ftp-Server)"}},
		{name: "certificate missing", need: backend.StandbyNeeds{Certificates: []backend.Binding{https}},
			recs: []Recording{allFeatures(false), certAnswer(map[string]any{"found": false})},
			want: []string{`certificate Cert:\LocalMachine\My\` + thumb + ` (for https 10.0.0.50:443:) is not installed on this node: import it with its private key`}},
		{name: "certificate without key", need: backend.StandbyNeeds{Certificates: []backend.Binding{https}},
			recs: []Recording{allFeatures(false), certAnswer(map[string]any{"hasPrivateKey": false, "keyUsable": false})},
			want: []string{"has no private key on this node: import the .pfx, not the .cer"}},
		{name: "key that does not open", need: backend.StandbyNeeds{Certificates: []backend.Binding{https}},
			recs: []Recording{allFeatures(false), certAnswer(map[string]any{"keyUsable": false})},
			want: []string{"has a private key this node cannot open"}},
		{name: "certificate expired", need: backend.StandbyNeeds{Certificates: []backend.Binding{https}},
			recs: []Recording{allFeatures(false), certAnswer(map[string]any{"notAfter": "2020-03-01T00:00:00.0000000Z"})},
			want: []string{"expired on 2020-03-01"}},
		{name: "disk not presented", need: backend.StandbyNeeds{Volumes: map[string]backend.Volume{"data": disk}},
			recs: []Recording{allFeatures(false), diskAnswer(false)},
			want: []string{"volume data (SharedDisk:6000C29D) is not visible to this node: present the disk to it"}},
		{name: "mirror resynchronizing to this node", need: backend.StandbyNeeds{Volumes: map[string]backend.Volume{"mirror": mirror}},
			recs: []Recording{allFeatures(false), mirrorAnswer("Target", map[string]any{"system": "node3", "state": "Mirroring"}, map[string]any{"system": "node2", "state": "Resync"})},
			want: []string{"volume mirror (Mirror:E) is resynchronizing to node2: this node's copy is not current"}},
		{name: "mirror paused", need: backend.StandbyNeeds{Volumes: map[string]backend.Volume{"mirror": mirror}},
			recs: []Recording{allFeatures(false), mirrorAnswer("Target", map[string]any{"system": "node2", "state": "Paused"})},
			want: []string{"target node2 is Paused"}},
		{name: "not a mirror here", need: backend.StandbyNeeds{Volumes: map[string]backend.Volume{"mirror": mirror}},
			recs: []Recording{allFeatures(false), mirrorAnswer("None")},
			want: []string{"volume mirror (Mirror:E) is not mirrored to this node"}},
		{name: "mirror through emcmd, paused", need: backend.StandbyNeeds{Volumes: map[string]backend.Volume{"mirror": mirror}},
			recs: []Recording{allFeatures(false), psRec(scriptMirror, failure("ModuleMissing", "DataKeeper's PowerShell module is not installed"), 1),
				{Name: emcmdPath(`C:\DK`), Args: EmcmdArgs("GETVOLUMEINFO", "E", "1"), Stdout: "Volume E:\r\n  Role: TARGET\r\n"},
				{Name: emcmdPath(`C:\DK`), Args: EmcmdArgs("GETMIRRORVOLINFO", "E"), Stdout: "E: 1 10.0.0.12 4\r\n"}},
			want: []string{"volume mirror (Mirror:E) is not mirroring (state 4)"}},
		{name: "address held by a third host", need: backend.StandbyNeeds{Addresses: []backend.Address{addr}},
			recs: []Recording{allFeatures(false)}, answer: "00-50-56-aa-bb-cc",
			want: []string{"address 10.0.0.50 is answered by 00-50-56-aa-bb-cc while no node serves the group: another host holds it"}},
		{name: "address free", need: backend.StandbyNeeds{Addresses: []backend.Address{addr}},
			recs: []Recording{allFeatures(false)}},
		{name: "script failure is not ready", need: backend.StandbyNeeds{Certificates: []backend.Binding{https}},
			recs: []Recording{allFeatures(false), psRec(scriptCerts, failure("BadRequest", `certificate store "My Store" is not a store name`), 1)},
			want: []string{"could not read certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			b, err := New(Options{Runner: NewReplay(tt.recs...), DataDir: t.TempDir(), Log: logr.Discard(), ExtMirrBase: `C:\DK`, Hostname: "node2",
				WhoHas: func(ip string) (string, bool) { asked = append(asked, ip); return tt.answer, tt.answer != "" }})
			if err != nil {
				t.Fatal(err)
			}
			got := b.CheckStandby(context.Background(), tt.need)
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %d like %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %q lacks %q", got[i], tt.want[i])
				}
			}
			if tt.need.ServedBy != "" && len(asked) > 0 {
				t.Errorf("probed %v for a group served by %s: its answer tells nothing", asked, tt.need.ServedBy)
			}
		})
	}
}

// TestCheckStandbyAsksOncePerPass: the standby checks of many groups on
// one node ask PowerShell once per feature set, certificate and volume
// within standbyMemoFor, and the requests are the ones recorded here.
func TestCheckStandbyAsksOncePerPass(t *testing.T) {
	r := NewReplay(allFeatures(true), certAnswer(nil), diskAnswer(true))
	b, err := New(Options{Runner: r, DataDir: t.TempDir(), Log: logr.Discard(), WhoHas: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	need := backend.StandbyNeeds{Features: []string{"Web-Server", "Web-Ftp-Server"},
		Certificates: []backend.Binding{{Protocol: "https", IP: "10.0.0.50", Port: 443, CertHash: thumb, CertStore: "WebHosting"}},
		Volumes:      map[string]backend.Volume{"data": {ID: backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: "6000C29D"}, Root: `S:\`}}}
	for i := 0; i < 200; i++ {
		if got := b.CheckStandby(context.Background(), need); len(got) != 0 {
			t.Fatalf("ready node: %q", got)
		}
	}
	if len(r.Calls) != 3 {
		t.Errorf("%d PowerShell requests for 200 groups, want 3 (features, certificate, disk)", len(r.Calls))
	}
	golden(t, "standby.txt", rendered(r.Calls))
}

// TestStandbyMemoAsksOnceForConcurrentCallers: callers asking the same
// while the first is asking wait for its answer instead of asking again.
func TestStandbyMemoAsksOnceForConcurrentCallers(t *testing.T) {
	var m standbyMemo
	var asked atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := m.get("features", func() []string { asked.Add(1); <-release; return []string{"missing"} })
			if len(got) != 1 || got[0] != "missing" {
				t.Errorf("answer %q", got)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := asked.Load(); n != 1 {
		t.Errorf("asked %d times for 16 callers at once, want 1", n)
	}
}
