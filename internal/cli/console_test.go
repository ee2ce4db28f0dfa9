package cli

import (
	"strings"
	"testing"

	"github.com/sitekeeper/sitekeeper/internal/console"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

func TestHTTPListenRefusesOpenAccessBeyondLoopback(t *testing.T) {
	for _, tc := range []struct {
		name          string
		addr          string
		dev, insecure bool
		wantErr       string
		anonymous     string
	}{
		{"up on loopback acts", "127.0.0.1:0", true, false, "", console.RoleAdmin},
		{"up beyond loopback", "0.0.0.0:0", true, false, "loopback only", ""},
		{"up beyond loopback in a lab", "0.0.0.0:0", true, true, "", console.RoleAdmin},
		{"an agent on loopback reads", "127.0.0.1:0", false, false, "", console.RoleViewer},
		{"an agent beyond loopback without certificates", "0.0.0.0:0", false, false, "--etcd-cacert", ""},
		{"an agent beyond loopback in a lab reads", "0.0.0.0:0", false, true, "", console.RoleViewer},
		{"not an address", "9650", false, false, "host:port", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := openHTTP(tc.addr, etcdstore.TLSFiles{}, tc.dev, tc.insecure)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer h.ln.Close()
			if h.anonymous != tc.anonymous {
				t.Fatalf("a caller without a certificate gets %q, want %q", h.anonymous, tc.anonymous)
			}
		})
	}
	if h, err := openHTTP("off", etcdstore.TLSFiles{}, true, false); h != nil || err != nil {
		t.Fatalf("off: %v %v", h, err)
	}
}
