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
	pprofrt "runtime/pprof"
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

// CPUEnv names a file to write a CPU profile of the whole command to: the
// way to look inside a one-shot command (get, apply) that ends before a
// profile could be fetched from SITEKEEPER_PPROF.
const CPUEnv = "SITEKEEPER_CPUPROFILE"

// StartCPU starts the CPU profile CPUEnv asks for; stop writes it out.
func StartCPU() (stop func(), err error) {
	path := os.Getenv(CPUEnv)
	if path == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CPUEnv, err)
	}
	if err := pprofrt.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", CPUEnv, err)
	}
	return func() {
		pprofrt.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", CPUEnv, err)
		}
	}, nil
}
