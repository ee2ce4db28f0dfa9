package cli

import (
	"strings"
	"testing"
	"time"
)

func TestDurationFlagRanges(t *testing.T) {
	cases := []struct {
		name string
		err  func() error
		want string // "" when accepted
	}{
		{"lease 2s", func() error { return leaseTTLRange.check("--lease-ttl", 2*time.Second) }, ""},
		{"lease 1ns", func() error { return leaseTTLRange.check("--lease-ttl", time.Nanosecond) }, "--lease-ttl 1ns is out of range"},
		{"lease 2ms", func() error { return leaseTTLRange.check("--lease-ttl", 2*time.Millisecond) }, "between 1s and 10m0s"},
		{"lease 2500ms", func() error { return leaseTTLRange.check("--lease-ttl", 2500*time.Millisecond) }, "use 2s or 3s"},
		{"lease negative", func() error { return leaseTTLRange.check("--lease-ttl", -time.Second) }, "out of range"},
		{"latency 0", func() error { return stepLatencyRange.check("--sim-step-latency", 0) }, ""},
		{"latency 1h", func() error { return stepLatencyRange.check("--sim-step-latency", time.Hour) }, "between 0s and 1m0s"},
		{"resync 0", func() error { return resyncRange.check("--resync", 0) }, "--resync 0s is out of range"},
		{"election default", func() error { return checkElection(300*time.Millisecond, 2*time.Second) }, ""},
		{"election 300ms, lease 1s", func() error { return checkElection(300*time.Millisecond, time.Second) }, ""},
		{"election 1s, lease 2s", func() error { return checkElection(time.Second, 2*time.Second) }, "raise --lease-ttl to at least 6s"},
		{"election 1ms", func() error { return checkElection(time.Millisecond, 2*time.Second) }, "between 50ms and 10s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.err()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if err != nil {
				if _, ok := err.(usageError); !ok {
					t.Errorf("%v is not a usage error", err)
				}
			}
		})
	}
}

func TestTimeoutHint(t *testing.T) {
	for _, c := range []struct {
		command, want string
	}{
		{"apply", "may or may not have been stored. Check with `sitekeeper diff -f PATH`"},
		{"switchover", "`sitekeeper get groups`"},
		{"get", "does it have a quorum?"},
	} {
		if got := timeoutHint(c.command); !strings.Contains(got, c.want) {
			t.Errorf("hint for %s: %q, want it to contain %q", c.command, got, c.want)
		}
	}
}

// TestUpListensOnLoopbackOnly: up's plaintext store refuses an address
// other hosts reach unless --insecure-plaintext.
func TestUpListensOnLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		insecure bool
		ok       bool
	}{
		{"127.0.0.1:0", false, true},
		{"[::1]:23790", false, true},
		{"localhost:23790", false, true},
		{"0.0.0.0:23790", false, false},
		{":23790", false, false},
		{"10.0.0.5:23790", false, false},
		{"10.0.0.5:23790", true, true},
		{"nonsense", true, false},
	} {
		err := checkListen(tc.addr, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("--listen %s (insecure %t): %v, want ok=%t", tc.addr, tc.insecure, err, tc.ok)
		}
		if err != nil && tc.addr != "nonsense" && !strings.Contains(err.Error(), "--insecure-plaintext") {
			t.Errorf("--listen %s: %v does not name the flag that allows it", tc.addr, err)
		}
	}
}

// TestMembersServeOthersOnlyWithTLS: a member uses https with
// certificates, unless --insecure-plaintext, on loopback too (a local user
// is not an administrator); only `up` serves plaintext on loopback.
func TestMembersServeOthersOnlyWithTLS(t *testing.T) {
	certs := &globalFlags{}
	certs.tls.CA, certs.tls.Cert, certs.tls.Key = "ca.crt", "n.crt", "n.key"
	for _, tc := range []struct {
		name       string
		peer, cl   string
		g          *globalFlags
		insecure   bool
		wantErrSub string
	}{
		{"loopback plaintext", "http://127.0.0.1:2380", "http://127.0.0.1:2379", &globalFlags{}, false, "even on loopback"},
		{"loopback plaintext, allowed", "http://127.0.0.1:2380", "http://127.0.0.1:2379", &globalFlags{}, true, ""},
		{"LAN plaintext", "http://10.0.0.11:2380", "http://10.0.0.11:2379", &globalFlags{}, false, "--insecure-plaintext"},
		{"LAN plaintext, allowed", "http://10.0.0.11:2380", "http://10.0.0.11:2379", &globalFlags{}, true, ""},
		{"https without certificates", "https://10.0.0.11:2380", "https://10.0.0.11:2379", &globalFlags{}, false, "--etcd-cacert"},
		{"https with certificates", "https://10.0.0.11:2380", "https://10.0.0.11:2379", certs, false, ""},
		{"one URL plaintext", "https://10.0.0.11:2380", "http://10.0.0.11:2379", certs, false, "--client-url"},
	} {
		f := &memberFlags{peerURL: tc.peer, clientURL: tc.cl}
		g := *tc.g
		g.insecure = tc.insecure
		err := f.checkTLS(&g)
		if (err == nil) != (tc.wantErrSub == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErrSub)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErrSub)
		}
	}
}

// TestClientsReachOthersOnlyWithTLS: the CLI talks plaintext to a store on
// this machine only, unless --insecure-plaintext.
func TestClientsReachOthersOnlyWithTLS(t *testing.T) {
	certs := globalFlags{endpointsFrom: "--endpoints"}
	certs.tls.CA, certs.tls.Cert, certs.tls.Key = "ca.crt", "a.crt", "a.key"
	for _, tc := range []struct {
		eps      []string
		g        globalFlags
		insecure bool
		ok       bool
	}{
		{[]string{"127.0.0.1:2379"}, globalFlags{}, false, true},
		{[]string{"http://localhost:2379"}, globalFlags{}, false, true},
		{[]string{"10.0.0.11:2379"}, globalFlags{}, false, false},
		{[]string{"127.0.0.1:2379", "http://10.0.0.12:2379"}, globalFlags{}, false, false},
		{[]string{"10.0.0.11:2379"}, globalFlags{}, true, true},
		{[]string{"https://10.0.0.11:2379"}, certs, false, true},
		{[]string{"http://10.0.0.11:2379"}, certs, false, false},
		{[]string{"https://10.0.0.11:2379"}, globalFlags{}, false, false},
	} {
		g := tc.g
		g.insecure = tc.insecure
		err := g.checkPlaintext(tc.eps)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "--insecure-plaintext")) {
			t.Errorf("%v (certificates %t, insecure %t): %v, want ok=%t", tc.eps, tc.g.tls.Cert != "", tc.insecure, err, tc.ok)
		}
	}
}
