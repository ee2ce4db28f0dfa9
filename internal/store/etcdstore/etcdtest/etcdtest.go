// Package etcdtest starts an embedded etcd store for the tests and
// benchmarks of the packages that use the store, closed when the test ends.
package etcdtest

import (
	"context"
	"os"
	"testing"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// ClientEnv, set to "inprocess", makes the tests' stores use the client
// that calls the member inside the process (what `sitekeeper up` uses)
// instead of one over the loopback socket; `make unit` runs the store's
// tests both ways.
const ClientEnv = "SITEKEEPER_TEST_STORE_CLIENT"

// Start starts a one-member store in a temporary folder and connects to it.
// Fast skips fsync (tests); benchmarks measure with it.
func Start(tb testing.TB, fast bool) *etcdstore.Store {
	tb.Helper()
	st, _ := StartAt(tb, fast)
	return st
}

// StartAt is Start, and also returns the store's endpoint (for commands
// run against it).
func StartAt(tb testing.TB, fast bool) (*etcdstore.Store, string) {
	tb.Helper()
	srv, err := etcdstore.StartServer(context.Background(), etcdstore.ServerOptions{DataDir: tb.TempDir(), Fast: fast, Log: logr.Discard()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	var st *etcdstore.Store
	if os.Getenv(ClientEnv) == "inprocess" {
		st = srv.Connect() // the client `up` uses
	} else {
		var err error
		if st, err = etcdstore.Connect([]string{srv.Endpoint}); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { st.Close() })
	return st, srv.Endpoint
}
