package profiling

import (
	"net/http"
	"strings"
	"testing"
)

// TestStartServesOnLoopbackOnly: unset, nothing is served; a non-loopback
// or malformed address is refused with the variable named; a loopback one
// serves the profile index.
func TestStartServesOnLoopbackOnly(t *testing.T) {
	for _, tc := range []struct{ addr, err string }{
		{"", ""},
		{"0.0.0.0:6060", "loopback"},
		{"10.1.2.3:6060", "loopback"},
		{"nonsense", Env},
	} {
		t.Setenv(Env, tc.addr)
		_, err := Start()
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s=%q: %v, want an error containing %q", Env, tc.addr, err, tc.err)
		}
	}
	t.Setenv(Env, "127.0.0.1:0")
	addr, err := Start()
	if err != nil {
		t.Fatalf("a loopback address: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("index: HTTP %d", resp.StatusCode)
	}
}
