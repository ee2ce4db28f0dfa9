package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlanCommand(t *testing.T) {
	code, out, errOut := run(t, "", "plan", "-f", "../../manifests/examples/active-active", "--node", "node2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := []string{
		"node2: create (stopped) IISSite/FTPsite1 (site FTPsite1 (ID 4) does not exist on node2)",
		"node2: create (stopped) IISSite/WebSite1 (site WebSite1 (ID 2) does not exist on node2)",
		"node2: bring online VolumeResource/vol-web2 at F:\\ (group WebSite2 is active here)",
		"node2: add address of IPResource/vip-web2 10.0.0.52/24 (group WebSite2 is active here)",
		"node2: create (stopped) IISSite/WebSite2 (site WebSite2 (ID 3) does not exist on node2)",
		"node2: start IISSite/WebSite2 (group WebSite2 is active here)",
	}
	// bring-ups of the active groups come first, then standby instances
	want = append(want[2:], want[:2]...)
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(out), "\n")); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}

	code, out, _ = run(t, "", "plan", "-f", "../../manifests/examples/shared-ip", "--node", "node1", "--active", "blog=node2", "-o", "json")
	var steps []struct{ Action, Target string }
	if code != 0 || json.Unmarshal([]byte(out), &steps) != nil {
		t.Fatalf("json plan: exit %d\n%s", code, out)
	}
	if diff := cmp.Diff([]struct{ Action, Target string }{{"CreateSite", "IISSite/blog"}, {"CreateSite", "IISSite/wiki"}}, steps); diff != "" {
		t.Errorf("standby plan (-want +got):\n%s", diff)
	}

	code, _, errOut = run(t, "", "plan", "-f", "../../manifests/examples/shared-ip", "--active", "blog=node9")
	if code != 2 || !strings.Contains(errOut, "not in the placement") {
		t.Errorf("bad --active: exit %d %s", code, errOut)
	}
}
