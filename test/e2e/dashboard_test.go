//go:build e2e

package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A group applied by hand, beside the folder's two: the dashboard may
// switch it over; the folder's groups show the line to commit instead.
const handGroup = `apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-c}
spec: {address: 127.0.50.3/32}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-c}
spec: {driveLetter: G, source: {mirror: {volume: G}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: site-c}
spec:
  siteID: 4
  physicalPath: 'G:\c'
  bindings: [{protocol: http, ipRef: vip-c, port: 28080}]
  health: {interval: 500ms, timeout: 400ms, failureThreshold: 2}
  placement: {nodes: [node1, node2], switchback: Manual}
`

// chromium is the browser the test drives, or why there is none.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on this machine (.ci/run installs Debian's chromium package); the dashboard test needs a real browser")
	return ""
}

func TestDashboardInARealBrowser(t *testing.T) {
	browser := chromium(t)
	dir := t.TempDir()
	folder := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(folder, "sites.yaml"), []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startUp(t, dir, folder)
	if err := os.WriteFile(filepath.Join(dir, "hand.yaml"), []byte(handGroup), 0o644); err != nil {
		t.Fatal(err)
	}
	c.eventually("the folder applied", 20*time.Second, func() bool { _, ok := c.groups()["site-a"]; return ok })
	c.must("apply", "-f", filepath.Join(dir, "hand.yaml"))
	c.eventually("site-c served from node1", 20*time.Second, func() bool { return c.servedBy("http://127.0.50.3:28080/", "node1") })
	url := c.dashboard()

	if body, code := get(t, url+"readyz"); code != 200 {
		t.Fatalf("/readyz of a running up: HTTP %d %s", code, body)
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU)...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first call starts the browser and lives as long as it: no
	// deadline on it; each later step gets one of its own.
	if err := chromedp.Do(bctx, chromedp.Navigate(url)); err != nil {
		t.Skipf("Chromium at %s cannot start here: %v", browser, err)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v\n--- up log:\n%s", what, err, c.out.String())
		}
	}
	text := func(sel string) string {
		ctx, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		return strings.TrimSpace(s)
	}
	active := func(group string) string { return text(`tr[data-group="` + group + `"] td.active`) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("the page never showed %s; it shows:\n%s\n--- up log:\n%s", what, text("main"), c.out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("site-c on node1", func() bool { return active("site-c") == "node1" })
	// A mark on the page: a reload would lose it.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.sitekeeperTestMark = 42`)); err != nil {
		t.Fatal(err)
	}

	// A failover, seen without a reload.
	c.must("sim", "fail-node", "node1")
	waitFor("site-c moved to node2", func() bool { return active("site-c") == "node2" })
	if mark, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.sitekeeperTestMark || 0`)); err != nil || mark != 42 {
		t.Fatalf("the page was reloaded (mark %d, %v): it should update by itself", mark, err)
	}
	c.must("sim", "heal-node", "node1")
	waitFor("node1 ready again as a standby of site-c", func() bool {
		return strings.Contains(text(`tr[data-group="site-c"] td.standbys`), "node1 ✓ ready")
	})

	// A switchover, clicked and confirmed.
	do("click switchover of site-c and confirm",
		chromedp.Click(chromedp.CSS(`tr[data-group="site-c"] button.switchover`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		chromedp.SetValue(chromedp.CSS(`#confirm-node`), "node1"),
		chromedp.Click(chromedp.CSS(`#confirm-ok`)))
	waitFor("site-c back on node1", func() bool { return active("site-c") == "node1" })
	c.eventually("site-c served from node1 again", 20*time.Second, func() bool { return c.servedBy("http://127.0.50.3:28080/", "node1") })
	if ev := c.must("events"); !strings.Contains(ev, "switchover to node1 requested") || !strings.Contains(ev, "(dashboard)") {
		t.Fatalf("the switchover's event does not say who asked for it from the dashboard:\n%s", ev)
	}

	// A folder-owned group: the commit line, not a switchover.
	before := active("site-a")
	do("click switchover of folder-owned site-a and confirm",
		chromedp.Click(chromedp.CSS(`tr[data-group="site-a"] button.switchover`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		chromedp.Click(chromedp.CSS(`#confirm-ok`)),
		chromedp.WaitVisible(chromedp.CSS(`#notice-commit`)))
	if commit := text(`#notice-commit`); !strings.Contains(commit, "sites.yaml: IISSite/site-a: set spec.placement.activeNode: ") {
		t.Fatalf("the page shows %q, want the line to commit in sites.yaml", commit)
	}
	time.Sleep(time.Second)
	if got := c.groups()["site-a"].Active; got != before {
		t.Fatalf("site-a moved from %s to %s: a folder-owned group must not be switched over from the dashboard", before, got)
	}

	metrics, code := get(t, url+"metrics")
	for _, want := range []string{
		`sitekeeper_placement_moves_total{group="site-c",reason="FailedOver"} 1`,
		`sitekeeper_placement_moves_total{group="site-c",reason="SwitchedOver"} 1`,
		`sitekeeper_group_active_node{group="site-c",node="node1"} 1`,
		`sitekeeper_takeover_duration_seconds_count{reason="FailedOver"}`,
	} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Fatalf("/metrics (HTTP %d) lacks %s:\n%s", code, want, metrics)
		}
	}
}

func get(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}
