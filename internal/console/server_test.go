package console

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore/etcdtest"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// startStore is a real store with groups, each placed on node1 and
// reported converged there.
func startStore(t testing.TB, groups int) *etcdstore.Store {
	t.Helper()
	st := etcdtest.Start(t, true)
	ctx := context.Background()
	if _, err := st.Apply(ctx, testmanifests.Objects(groups, testmanifests.Options{Net: 93, Port: 8080, Nodes: []string{"node1", "node2"}}), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	var reps []store.Report
	for i := range groups {
		g := fmt.Sprintf("site-%d", i)
		if err := st.PutDecision(ctx, store.Decision{Group: g, Active: "node1", Reason: v1alpha1.ReasonPlaced, Message: "node1 serves the group"}, store.LeaderGuard{}); err != nil {
			t.Fatal(err)
		}
		reps = append(reps, store.Report{Node: "node1", Group: g, Active: true, Healthy: true, Phase: store.PhaseConverged},
			store.Report{Node: "node2", Group: g, Phase: store.PhaseConverged, Released: true})
	}
	if err := st.PutReports(ctx, reps); err != nil {
		t.Fatal(err)
	}
	return st
}

func withRole(r *http.Request, name, role string) *http.Request {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: name, Organization: []string{role}}}
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
	return r
}

func TestAccessByRole(t *testing.T) {
	st := startStore(t, 1)
	action := func() *http.Request {
		r := httptest.NewRequest("POST", "/api/groups/site-0/suspend", strings.NewReader(`{}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-Sitekeeper-Action", "1")
		return r
	}
	for _, tc := range []struct {
		name      string
		anonymous string
		req       *http.Request
		want      int
		body      string
	}{
		{"health needs nobody", "", httptest.NewRequest("GET", "/healthz", nil), 200, "ok"},
		{"metrics need a certificate beyond loopback", "", httptest.NewRequest("GET", "/metrics", nil), 401, "client certificate"},
		{"the page needs a certificate beyond loopback", "", httptest.NewRequest("GET", "/", nil), 401, "sitekeeper certs operator"},
		{"a viewer reads", "", withRole(httptest.NewRequest("GET", "/", nil), "vera", RoleViewer), 200, "vera (viewer)"},
		{"a viewer scrapes", "", withRole(httptest.NewRequest("GET", "/metrics", nil), "prom", RoleViewer), 200, "sitekeeper_group_active_node"},
		{"a viewer may not act", "", withRole(action(), "vera", RoleViewer), 403, "needs operator"},
		{"an operator acts", "", withRole(action(), "otto", RoleOperator), 200, "suspended"},
		{"a certificate without a role is refused", "", withRole(httptest.NewRequest("GET", "/", nil), "x", "other"), 401, "client certificate"},
		{"loopback without certificate reads", RoleViewer, httptest.NewRequest("GET", "/api/state", nil), 200, `"groups"`},
		{"loopback without certificate may not act on an agent", RoleViewer, action(), 403, "needs operator"},
		{"up's loopback acts", RoleAdmin, action(), 200, "suspended"},
		{"an action without its header is refused", RoleAdmin, func() *http.Request {
			r := action()
			r.Header.Del("X-Sitekeeper-Action")
			return r
		}(), 400, "X-Sitekeeper-Action"},
		{"an unknown group", RoleAdmin, func() *http.Request {
			r := action()
			r.URL.Path = "/api/groups/nope/suspend"
			return r
		}(), 404, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Store: st, Anonymous: tc.anonymous, Title: "test", Log: logr.Discard(), Metrics: metrics.New()})
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, tc.req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("HTTP %d %q, want %d with %q", rec.Code, rec.Body.String(), tc.want, tc.body)
			}
		})
	}
	evs, _, err := st.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var by []string
	for _, e := range evs {
		if e.Reason == v1alpha1.EventSuspended {
			by = append(by, e.By)
		}
	}
	if len(by) != 2 || by[0] != "otto (dashboard)" {
		t.Fatalf("suspensions recorded by %q, want otto's from the dashboard first, then the local user's", by)
	}
}

func TestReadyzSaysWhy(t *testing.T) {
	ready, why := false, "fenced: no lease renewal for 1.6s"
	s := New(Options{Store: startStore(t, 1), Ready: func() (bool, string) { return ready, why }, Log: logr.Discard()})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), why) {
		t.Fatalf("not ready: HTTP %d %q, want 503 with the reason", rec.Code, rec.Body.String())
	}
	ready = true
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Fatalf("ready: HTTP %d, want 200", rec.Code)
	}
}

// The stream sends the state at once, then each change, unasked.
func TestStreamSendsChanges(t *testing.T) {
	st := startStore(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(Options{Store: st, Anonymous: RoleAdmin, Log: logr.Discard()})
	go s.live.run(ctx)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	states := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				states <- d
			}
		}
	}()
	next := func() string {
		select {
		case d := <-states:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("no state sent")
			return ""
		}
	}
	if first := next(); !strings.Contains(first, `"name":"site-1"`) || strings.Contains(first, `"suspended":true`) {
		t.Fatalf("first state: %s", first)
	}
	if err := st.SetSuspended(ctx, "IISSite", "site-1", true); err != nil {
		t.Fatal(err)
	}
	for {
		if d := next(); strings.Contains(d, `"suspended":true`) {
			return
		}
	}
}

// The state gauges: where each group runs, its ready standbys.
func TestStateGauges(t *testing.T) {
	m := metrics.New()
	New(Options{Store: startStore(t, 2), Metrics: m, Log: logr.Discard()})
	got, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]float64{
		`sitekeeper_group_active_node{group=site-1,node=node1}`: 1,
		`sitekeeper_group_healthy_nodes{group=site-1}`:          1,
		`sitekeeper_group_standby_nodes{group=site-0}`:          0, // node2 holds no lease
		`sitekeeper_group_suspended{group=site-0}`:              0,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %t), want %v", k, g, ok, v)
		}
	}
}

// A group suspended through any of its objects (the CLI names one) is
// resumed by the dashboard's one click.
func TestResumeClearsEveryMember(t *testing.T) {
	st := startStore(t, 1)
	ctx := context.Background()
	if err := st.SetSuspended(ctx, "IPResource", "vip-0", true); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Store: st, Anonymous: RoleAdmin, Log: logr.Discard()})
	r := httptest.NewRequest("POST", "/api/groups/site-0/resume", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Sitekeeper-Action", "1")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	if rec.Code != 200 {
		t.Fatalf("resume: HTTP %d %s", rec.Code, rec.Body.String())
	}
	sus, err := st.Suspensions(ctx)
	if err != nil || len(sus) != 0 {
		t.Fatalf("still suspended: %v %v", sus, err)
	}
}
