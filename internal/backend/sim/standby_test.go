package sim

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

func TestCheckStandbyFindsEachFault(t *testing.T) {
	w := NewWorld(t.TempDir(), logr.Discard())
	t.Cleanup(w.Close)
	n := w.Node("node2")
	need := backend.StandbyNeeds{
		Certificates: []backend.Binding{{Protocol: "https", IP: "127.0.0.5", Port: 443, CertHash: "AB12", CertStore: "WebHosting"}},
		Volumes:      map[string]backend.Volume{"vol-web": {ID: backend.VolumeID{Kind: backend.VolumeMirror, ID: "E"}}},
		Features:     []string{"Web-Server", "Web-Ftp-Server"},
	}
	if got := n.CheckStandby(context.Background(), need); len(got) != 0 {
		t.Fatalf("a fresh node lacks %v", got)
	}
	for _, tc := range []struct {
		faults []string
		want   string
	}{
		{[]string{"cert:ab12"}, `certificate AB12 for https 127.0.0.5:443: is not in Cert:\LocalMachine\WebHosting with its private key`},
		{[]string{"volume:VOL-WEB"}, "volume vol-web (Mirror:E) is not visible to this node"},
		{[]string{"feature:web-ftp-server"}, "IIS role Web-Ftp-Server is not installed"},
	} {
		n.SetFaults(tc.faults)
		got := n.CheckStandby(context.Background(), need)
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("faults %v: %q, want [%q]", tc.faults, got, tc.want)
		}
	}
	n.SetFaults(nil)
	if got := n.CheckStandby(context.Background(), need); len(got) != 0 {
		t.Fatalf("after the faults were lifted: %v", got)
	}
	if got := strings.Join(n.CheckStandby(context.Background(), backend.StandbyNeeds{}), ""); got != "" {
		t.Fatalf("nothing needed, yet %q", got)
	}
}
