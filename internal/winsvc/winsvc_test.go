package winsvc

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestServiceArgsNameTheInstalledService: the agent runs, reports and
// logs under the name it was installed with.
func TestServiceArgsNameTheInstalledService(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"sitekeeper", []string{"agent", "--node", "node1"}, []string{"agent", "--node", "node1", "--service-name", "sitekeeper"}},
		{"sk-web", []string{"agent", "--node", "node1"}, []string{"agent", "--node", "node1", "--service-name", "sk-web"}},
		{"sk-web", []string{"agent", "--service-name=other"}, []string{"agent", "--service-name=other"}},
	} {
		c := Config{Name: tc.name, Exe: `C:\sitekeeper\sitekeeper.exe`, Args: tc.args}
		if diff := cmp.Diff(tc.want, c.ServiceArgs()); diff != "" {
			t.Errorf("%s %v (-want +got):\n%s", tc.name, tc.args, diff)
		}
		if len(c.Args) != len(tc.args) {
			t.Errorf("ServiceArgs changed Args")
		}
	}
}
