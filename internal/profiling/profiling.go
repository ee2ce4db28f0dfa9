// Package profiling serves Go's profiles on a loopback address when
// SITEKEEPER_PPROF names one (SITEKEEPER_PPROF=127.0.0.1:6060), so that a
// slow or large node can be looked at with `go tool pprof` where it runs.
package profiling

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// Env is the variable that names the address.
const Env = "SITEKEEPER_PPROF"

// Start serves the profiles when Env is set, and returns the address it
// listens on ("" when unset); only loopback addresses are accepted, since
// the profiles show the process's memory.
func Start() (string, error) {
	addr := os.Getenv(Env)
	if addr == "" {
		return "", nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s=%q: %w", Env, addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("%s=%q: give a loopback address (127.0.0.1:6060); profiles show the process's memory", Env, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s: %w", Env, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go http.Serve(ln, mux) //nolint:errcheck // ends with the process
	return ln.Addr().String(), nil
}
