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
	var list struct {
		Kind  string
		Items []struct{ Action, Target string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || list.Kind != "StepList" {
		t.Fatalf("json plan: exit %d, want a StepList\n%s", code, out)
	}
	if diff := cmp.Diff([]struct{ Action, Target string }{{"CreateSite", "IISSite/blog"}, {"CreateSite", "IISSite/wiki"}}, list.Items); diff != "" {
		t.Errorf("standby plan (-want +got):\n%s", diff)
	}

	// wide: a column per field, the step's detail among them.
	code, out, _ = run(t, "", "plan", "-f", "../../manifests/examples/active-active", "--node", "node2", "-o", "wide")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 7 || strings.Join(strings.Fields(lines[0]), " ") != "NODE GROUP ACTION TARGET DETAIL REASON" ||
		strings.Join(strings.Fields(lines[2])[:5], " ") != "node2 WebSite2 AddAddress IPResource/vip-web2 10.0.0.52/24" {
		t.Errorf("plan -o wide: exit %d\n%s", code, out)
	}
	// "text", the old name of the table, still works; an unknown format names the four.
	if code, out, _ := run(t, "", "plan", "-f", "../../manifests/examples/active-active", "--node", "node2", "-o", "text"); code != 0 || !strings.HasPrefix(out, "node2: bring online") {
		t.Errorf("plan -o text: exit %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "", "plan", "-f", "../../manifests/examples/active-active", "-o", "xml"); code != 2 || !strings.Contains(errOut, "table, wide, yaml or json") {
		t.Errorf("plan -o xml: exit %d %s", code, errOut)
	}

	code, _, errOut = run(t, "", "plan", "-f", "../../manifests/examples/shared-ip", "--active", "blog=node9")
	if code != 2 || !strings.Contains(errOut, "not in the placement") {
		t.Errorf("bad --active: exit %d %s", code, errOut)
	}
}
