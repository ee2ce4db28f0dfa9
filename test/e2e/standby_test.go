//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const threeNodeSite = `apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-s}
spec: {address: 127.0.50.9/32}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-s}
spec: {driveLetter: S, source: {mirror: {volume: S}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: site-s}
spec:
  siteID: 9
  physicalPath: 'S:\s'
  bindings:
    - {protocol: http, ipRef: vip-s, port: 28080}
    - {protocol: https, ipRef: vip-s, port: 28443, certificate: {thumbprint: ` + simThumbprint + `}}
  health: {interval: 500ms, timeout: 400ms, failureThreshold: 2}
  placement: {nodes: [node1, node2, node3], switchback: Manual}
`

const simThumbprint = "5A1C0DE2B3F4A5968778695A4B3C2D1E0F9A8B7C"

// TestStandbyReadinessUnderSimFaults: each simulated fault shows in the
// STANDBY column, the StandbyReady condition, describe and the events,
// and a failover passes over the standby that is not ready.
func TestStandbyReadinessUnderSimFaults(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(f, []byte(threeNodeSite), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startUp(t, dir, f, "--nodes", "node1,node2,node3")
	const url = "http://127.0.50.9:28080/"
	c.eventually("site-s served by node1", 20*time.Second, func() bool { return c.servedBy(url, "node1") })
	standbys := func(want string) {
		t.Helper()
		c.eventually("STANDBY "+want, 15*time.Second, func() bool {
			for _, l := range strings.Split(c.must("get", "groups"), "\n") {
				if f := strings.Fields(l); len(f) > 2 && f[0] == "site-s" && f[2] == want {
					return true
				}
			}
			return false
		})
	}
	standbys("node2,node3")

	c.must("sim", "hide-volume", "node2", "vol-s")
	standbys("node3")
	if d := c.must("describe", "site", "site-s"); !strings.Contains(d, "Standby:    node2 not ready: volume vol-s (Mirror:S) is not visible to this node") ||
		!strings.Contains(d, "StandbyReady") {
		t.Fatalf("describe does not say why node2 is not ready:\n%s", d)
	}

	c.must("sim", "remove-feature", "node3", "Web-Server")
	standbys("-")
	c.eventually("a StandbyNotReady warning", 10*time.Second, func() bool {
		return strings.Contains(c.must("events"), "StandbyNotReady")
	})
	if d := c.must("describe", "site", "site-s"); !strings.Contains(d, "NoReadyStandby") || !strings.Contains(d, "IIS role Web-Server is not installed") {
		t.Fatalf("describe does not show StandbyReady False with node3's reason:\n%s", d)
	}
	c.must("sim", "add-feature", "node3", "Web-Server")
	standbys("node3")
	c.must("sim", "remove-cert", "node3", simThumbprint)
	standbys("-")
	if d := c.must("describe", "site", "site-s"); !strings.Contains(d, "node3 not ready: certificate "+simThumbprint) || !strings.Contains(d, "NoReadyStandby") {
		t.Fatalf("describe does not say node3 lacks the certificate, with StandbyReady False:\n%s", d)
	}
	c.eventually("a StandbyNotReady warning naming the certificate", 10*time.Second, func() bool {
		for _, l := range strings.Split(c.must("events"), "\n") {
			if strings.Contains(l, "StandbyNotReady") && strings.Contains(l, "certificate "+simThumbprint) {
				return true
			}
		}
		return false
	})
	c.must("sim", "add-cert", "node3", simThumbprint)
	standbys("node3")

	// node2 comes first in the placement, but cannot see the volume.
	c.must("sim", "fail-node", "node1")
	c.eventually("site-s served by node3", 20*time.Second, func() bool { return c.servedBy(url, "node3") })
	if g := c.groups()["site-s"]; g.Active != "node3" || !strings.Contains(g.Reason, "node2 is not a ready standby: volume vol-s") {
		t.Fatalf("failover went to %s (%s): want node3, saying why node2 was passed over", g.Active, g.Reason)
	}
	c.must("sim", "show-volume", "node2", "vol-s")
	standbys("node2")
}

// TestWhatIfMatchesWhatHappens: plan --simulate predicts, without changing
// anything, where each group goes; the same fault made for real ends there.
func TestWhatIfMatchesWhatHappens(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	predict := func(fault string) map[string]string {
		t.Helper()
		var w struct {
			Groups []struct{ Group, From, To string }
		}
		if err := json.Unmarshal([]byte(c.must("plan", "--simulate", fault, "-o", "json")), &w); err != nil || len(w.Groups) != 2 {
			t.Fatalf("plan --simulate %s: %d groups, %v", fault, len(w.Groups), err)
		}
		out := map[string]string{}
		for _, g := range w.Groups {
			out[g.Group] = g.To
		}
		return out
	}
	actual := func() map[string]string {
		out := map[string]string{}
		for name, g := range c.groups() {
			out[name] = g.Active
		}
		return out
	}
	same := func(a, b map[string]string) bool { return a["site-a"] == b["site-a"] && a["site-b"] == b["site-b"] }

	drain := predict("drain-node=node1")
	if before := actual(); !same(before, map[string]string{"site-a": "node1", "site-b": "node1"}) {
		t.Fatalf("plan --simulate changed something: %v", before)
	}
	c.must("drain", "node1", "--timeout", "30s")
	if got := actual(); !same(got, drain) {
		t.Fatalf("drain: predicted %v, happened %v", drain, got)
	}
	c.must("uncordon", "node1")
	c.eventually("site-b back on node1", 20*time.Second, func() bool { return c.servedBy(urlB, "node1") })

	// site-a fails where it runs and stays failing: local recovery
	// cannot help, so the group moves where the what-if said.
	before := actual()
	site := predict("fail-site=site-a")
	if site["site-a"] == before["site-a"] || site["site-a"] == "" || site["site-b"] != before["site-b"] {
		t.Fatalf("fail-site=site-a predicted %v from %v: want site-a on its other node and site-b where it is", site, before)
	}
	c.must("sim", "fail-site", before["site-a"], "site-a")
	c.eventually("site-a settles as predicted", 30*time.Second, func() bool {
		g := c.groups()
		return g["site-a"].Moving == "" && same(actual(), site) && c.servedBy(urlA, site["site-a"])
	})
	c.must("sim", "heal-site", before["site-a"], "site-a")

	fail := predict("fail-node=node2")
	c.must("sim", "fail-node", "node2")
	c.eventually("the groups settle as predicted", 20*time.Second, func() bool {
		g := c.groups()
		return g["site-a"].Moving == "" && g["site-b"].Moving == "" && same(actual(), fail)
	})
}
