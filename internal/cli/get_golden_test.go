package cli

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore/etcdtest"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGetGolden: the tables and encodings of get, against golden files
// (go test -run GetGolden -update rewrites them): a List with camelCase
// keys for many, one alone when named.
func TestGetGolden(t *testing.T) {
	st, endpoint := etcdtest.StartAt(t, true)
	ctx := context.Background()
	objs := testmanifests.Objects(2, testmanifests.Options{Net: 95, Port: 8080, Nodes: []string{"node1", "node2"}})
	if _, err := st.Apply(ctx, objs, store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	for g, n := range map[string]string{"site-0": "node1", "site-1": "node2"} {
		if err := st.PutDecision(ctx, store.Decision{Group: g, Active: n, Reason: "Placed", Message: n + " serves the group"}, store.LeaderGuard{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"get-groups.golden", []string{"get", "groups"}},
		{"get-groups-json.golden", []string{"get", "groups", "-o", "json"}},
		{"get-group-yaml.golden", []string{"get", "groups", "site-1", "-o", "yaml"}},
	} {
		code, out, errOut := run(t, "", append(tc.args, "--endpoints", endpoint)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		path := filepath.Join("testdata", tc.golden)
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if diff := cmp.Diff(string(want), out); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tc.args, diff)
		}
	}
}
