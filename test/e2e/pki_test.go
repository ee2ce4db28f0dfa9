//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

func freePortText(t *testing.T) string { return strconv.Itoa(freePort(t)) }

// adminFlags are the CLI's flags to reach ep as the admin of the PKI in p.
func adminFlags(ep, p string) []string {
	return []string{"--endpoints", ep, "--etcd-cacert", filepath.Join(p, "ca.crt"), "--etcd-cert", filepath.Join(p, "admin.crt"), "--etcd-key", filepath.Join(p, "admin.key"), "--request-timeout", "3s"}
}

// TestInitJoinAndClientCertificates: init makes a CA, this node's and an
// admin's certificates and a token; a witness started with them serves the
// join endpoint and a store that takes only clients with a certificate of
// that CA: the admin's works, none, another CA's, an expired one and a
// second init on the same folder are refused; join gets a node certificate with the token,
// and a second cluster's token is refused.
func TestInitJoinAndClientCertificates(t *testing.T) {
	root := t.TempDir()
	sk := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(binary(t), args...)
		cmd.Env = append(os.Environ(), "HOME="+root, "XDG_CONFIG_HOME="+filepath.Join(root, "config"))
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	w := filepath.Join(root, "w")
	code, out := sk("init", "--name", "t", "--node", "w", "--host", "127.0.0.1", "--data-dir", w)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s", code, out)
	}
	token := regexp.MustCompile(`skt1\.[0-9a-f.]+`).FindString(out)
	if token == "" {
		t.Fatalf("init printed no token:\n%s", out)
	}
	if code, out := sk("init", "--name", "t", "--node", "w", "--host", "127.0.0.1", "--data-dir", w); code == 0 || !strings.Contains(out, "already holds a CA") {
		t.Fatalf("a second init: exit %d\n%s", code, out)
	}
	p := filepath.Join(w, "pki")
	peer, client, join := freePortText(t), freePortText(t), freePortText(t)
	wit := exec.Command(binary(t), "witness", "--data-dir", w, "--etcd-name", "w", "--peer-url", "https://127.0.0.1:"+peer,
		"--client-url", "https://127.0.0.1:"+client, "--initial-cluster", "w=https://127.0.0.1:"+peer,
		"--etcd-cacert", filepath.Join(p, "ca.crt"), "--etcd-cert", filepath.Join(p, "w.crt"), "--etcd-key", filepath.Join(p, "w.key"),
		"--join-listen", "127.0.0.1:"+join, "--etcd-fast")
	log := &syncBuffer{}
	wit.Stdout, wit.Stderr = log, log
	if err := wit.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wit.Process.Signal(syscall.SIGINT); wit.Wait() })
	ep := "https://127.0.0.1:" + client
	admin := adminFlags(ep, p)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out := sk(append([]string{"get", "nodes"}, admin...)...)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin cannot read the secured store: exit %d\n%s\n--- witness:\n%s", code, out, log.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
	if code, out := sk("get", "nodes", "--endpoints", ep, "--etcd-cacert", filepath.Join(p, "ca.crt"), "--request-timeout", "2s"); code == 0 || !strings.Contains(out, "--etcd-cert") {
		t.Errorf("a client without a certificate: exit %d, want a refusal naming --etcd-cert:\n%s", code, out)
	}

	// Another cluster: its admin and its token are refused here.
	other := filepath.Join(root, "other")
	code, out = sk("init", "--name", "o", "--node", "x", "--host", "127.0.0.1", "--data-dir", other)
	if code != 0 {
		t.Fatal(out)
	}
	otherToken := regexp.MustCompile(`skt1\.[0-9a-f.]+`).FindString(out)
	op := filepath.Join(other, "pki")
	if code, _ := sk("get", "nodes", "--endpoints", ep, "--etcd-cacert", filepath.Join(p, "ca.crt"), "--etcd-cert", filepath.Join(op, "admin.crt"), "--etcd-key", filepath.Join(op, "admin.key"), "--request-timeout", "2s"); code == 0 {
		t.Error("another CA's admin read the store")
	}
	if code, out := sk("join", "--server", "https://127.0.0.1:"+join, "--token", otherToken, "--node", "node9", "--host", "127.0.0.1", "--data-dir", filepath.Join(root, "n9")); code == 0 || !strings.Contains(out, "did not show the CA") {
		t.Errorf("join with another cluster's token: exit %d\n%s", code, out)
	}

	n1 := filepath.Join(root, "n1")
	if code, out := sk("join", "--server", "https://127.0.0.1:"+join, "--token", token, "--node", "node1", "--host", "127.0.0.1", "--data-dir", n1); code != 0 {
		t.Fatalf("join: exit %d\n%s", code, out)
	}
	np := filepath.Join(n1, "pki")
	if fi, err := os.Stat(filepath.Join(np, "node1.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("node key: %v %v", fi, err)
	}
	// The node's certificate is a client of the store too.
	if code, out := sk("get", "nodes", "--endpoints", ep, "--etcd-cacert", filepath.Join(np, "ca.crt"), "--etcd-cert", filepath.Join(np, "node1.crt"), "--etcd-key", filepath.Join(np, "node1.key"), "--request-timeout", "3s"); code != 0 {
		t.Errorf("the joined node's certificate: exit %d\n%s", code, out)
	}
	// The joined node becomes a member: a learner first, which cannot
	// promote itself with authentication on; the node holding the CA
	// promotes it, and its agent registers.
	npeer, nclient := freePortText(t), freePortText(t)
	if code, out := sk(append([]string{"member", "add", "node1", "--peer-url", "https://127.0.0.1:" + npeer}, adminFlags(ep, p)...)...); code != 0 {
		t.Fatalf("member add: exit %d\n%s", code, out)
	}
	agent := exec.Command(binary(t), "agent", "--http-listen", "127.0.0.1:0", "--node", "node1", "--backend", "sim", "--etcd-member", "--data-dir", n1,
		"--peer-url", "https://127.0.0.1:"+npeer, "--client-url", "https://127.0.0.1:"+nclient,
		"--initial-cluster", "w=https://127.0.0.1:"+peer+",node1=https://127.0.0.1:"+npeer, "--initial-cluster-state", "existing",
		"--etcd-cacert", filepath.Join(np, "ca.crt"), "--etcd-cert", filepath.Join(np, "node1.crt"), "--etcd-key", filepath.Join(np, "node1.key"), "--etcd-fast")
	agent.Stdout, agent.Stderr = log, log
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Signal(syscall.SIGINT); agent.Wait() })
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, out := sk(append([]string{"get", "nodes"}, adminFlags(ep, p)...)...)
		if code == 0 && strings.Contains(out, "node1") && strings.Contains(out, "Ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the joined learner never served: exit %d\n%s\n--- processes:\n%s", code, out, log.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code, out := sk("certs", "operator", "alice", "--role", "operator", "--data-dir", w, "--out", filepath.Join(root, "alice")); code != 0 || !strings.Contains(out, "alice (operator)") {
		t.Errorf("certs operator: exit %d\n%s", code, out)
	}
	if code, out := sk("token", "create", "--ttl", "10m", "--data-dir", w); code != 0 || !strings.HasPrefix(out, "skt1.") {
		t.Errorf("token create: exit %d\n%s", code, out)
	}

	// An expired certificate of the right CA is refused.
	bob := filepath.Join(root, "bob")
	if code, out := sk("certs", "operator", "bob", "--role", "admin", "--ttl", "2s", "--data-dir", w, "--out", bob); code != 0 {
		t.Fatalf("certs operator bob: exit %d\n%s", code, out)
	}
	time.Sleep(3 * time.Second)
	if code, _ := sk("get", "nodes", "--endpoints", ep, "--etcd-cacert", filepath.Join(p, "ca.crt"), "--etcd-cert", filepath.Join(bob, "bob.crt"), "--etcd-key", filepath.Join(bob, "bob.key"), "--request-timeout", "2s"); code == 0 {
		t.Error("an expired certificate read the store")
	}
}

// TestSecuredClusterRenewsWhileServing runs the README's secured cluster
// on loopback: init on the witness, two nodes joined with the token, TLS
// with client certificates everywhere, the CLI as the admin. The nodes'
// certificates live 30 s, so each agent renews its own (at a third of its
// life left) while the site serves: no node is fenced, nothing moves, and
// the cluster answers with the renewed certificates. The store's users are
// the certificates' names: a viewer reads and cannot write, an operator
// can, and each write's event names its maker.
func TestSecuredClusterRenewsWhileServing(t *testing.T) {
	base := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("sitekeeper %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	w := filepath.Join(base, "witness")
	token := regexp.MustCompile(`skt1\.[0-9a-f.]+`).FindString(run("init", "--name", "t", "--node", "witness", "--host", "127.0.0.1", "--data-dir", w))
	names := []string{"node1", "node2", "witness"}
	peer, client := map[string]string{}, map[string]string{}
	var ic, eps []string
	for _, n := range names {
		peer[n] = "https://127.0.0.1:" + freePortText(t)
		client[n] = "https://127.0.0.1:" + freePortText(t)
		ic = append(ic, n+"="+peer[n])
		eps = append(eps, client[n])
	}
	out := &syncBuffer{}
	start := func(args ...string) { startProcess(t, out, args...) }
	certs := func(dir, name string) []string {
		p := filepath.Join(dir, "pki")
		return []string{"--etcd-cacert", filepath.Join(p, "ca.crt"), "--etcd-cert", filepath.Join(p, name+".crt"), "--etcd-key", filepath.Join(p, name+".key")}
	}
	member := func(n string) []string {
		return append([]string{"--peer-url", peer[n], "--client-url", client[n], "--initial-cluster", strings.Join(ic, ","), "--data-dir", filepath.Join(base, n)}, certs(filepath.Join(base, n), n)...)
	}
	join := "127.0.0.1:" + freePortText(t)
	start(append([]string{"witness", "--etcd-name", "witness", "--join-listen", join, "--join-cert-ttl", "30s"}, member("witness")...)...)
	// node1 joins with `sitekeeper join`, then starts; node2's agent joins
	// by itself at start (--token, --server).
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd := exec.Command(binary(t), "join", "--server", "https://"+join, "--token", token, "--node", "node1", "--host", "127.0.0.1", "--data-dir", filepath.Join(base, "node1"))
		o, err := cmd.CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("join node1: %v\n%s\n--- processes:\n%s", err, o, out.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
	start(append([]string{"agent", "--http-listen", "127.0.0.1:0", "--node", "node1", "--backend", "sim", "--etcd-member"}, member("node1")...)...)
	start("agent", "--http-listen", "127.0.0.1:0", "--node", "node2", "--backend", "sim", "--etcd-member", "--token", token, "--server", "https://"+join,
		"--peer-url", peer["node2"], "--client-url", client["node2"], "--initial-cluster", strings.Join(ic, ","), "--data-dir", filepath.Join(base, "node2"))
	c := &cluster{t: t, endpoint: strings.Join(eps, ","), out: out}
	admin := certs(w, "admin")
	as := func(args ...string) []string { return append(args, admin...) }
	c.eventually("both agents registered", 30*time.Second, func() bool {
		code, o := c.sk(as("get", "nodes")...)
		return code == 0 && strings.Count(o, " Ready ") == 2
	})
	f := filepath.Join(base, "sites.yaml")
	if err := os.WriteFile(f, []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	c.must(as("apply", "-f", f)...)
	if o := c.must(as("events", "--object", "site-a")...); !strings.Contains(o, "created (generation 1) (by admin)") {
		t.Errorf("the apply's event does not say who made it (the certificate's name):\n%s", o)
	}
	c.eventually("both sites served by node1", 30*time.Second, func() bool {
		return c.servedBy(urlA, "node1") && c.servedBy(urlB, "node1")
	})
	p := poll(urlA)
	c.eventually("both agents renewed their certificates", 40*time.Second, func() bool {
		return strings.Count(out.String(), "Certificate renewed") >= 2
	})
	time.Sleep(3 * time.Second) // and kept serving on the renewed pairs
	if gap := p.done(); gap > 2*time.Second {
		t.Errorf("site-a was not served for %s during the renewals", gap)
	}
	if !c.servedBy(urlA, "node1") {
		t.Error("site-a moved during the renewals")
	}
	if o := c.must(as("events")...); strings.Contains(o, "Fenced") || strings.Contains(o, "FailedOver") {
		t.Errorf("a node was fenced or failed over during the renewals:\n%s", o)
	}
	if code, o := c.sk(as("get", "nodes")...); code != 0 || strings.Count(o, " Ready ") != 2 {
		t.Errorf("after the renewals: exit %d\n%s", code, o)
	}
	for _, n := range []string{"node1", "node2"} {
		if code, o := c.sk("get", "nodes", "--etcd-cacert", filepath.Join(base, n, "pki", "ca.crt"), "--etcd-cert", filepath.Join(base, n, "pki", n+".crt"), "--etcd-key", filepath.Join(base, n, "pki", n+".key")); code != 0 {
			t.Errorf("%s's renewed certificate: exit %d\n%s", n, code, o)
		}
	}

	// Roles: a viewer reads and cannot write; an operator can.
	for _, u := range [][2]string{{"vera", "viewer"}, {"otto", "operator"}} {
		run("certs", "operator", u[0], "--role", u[1], "--data-dir", w, "--out", filepath.Join(base, u[0]))
	}

	// A misbehaving operator floods the store for 15 s: reads of everything
	// in a loop, a thousand watches, writes over the size limit to a key
	// its role may write. The agents' lease renewals go on: nobody is
	// fenced, nothing moves.
	flooder := waitConnect(t, eps, etcdstore.TLSFiles{CA: filepath.Join(w, "pki", "ca.crt"), Cert: filepath.Join(base, "otto", "otto.crt"), Key: filepath.Join(base, "otto", "otto.key")})
	fp := poll(urlA)
	stats := flood(flooder, 15*time.Second)
	t.Logf("flood: %s", stats)
	if gap := fp.done(); gap > time.Second {
		t.Errorf("site-a was not served for %s during the flood", gap)
	}
	if stats.oversizedAccepted > 0 || !strings.Contains(stats.refusal, "too large") {
		t.Errorf("requests over the size limit: %s; want each refused as too large", stats)
	}
	if o := c.must(as("events")...); strings.Contains(o, "Fenced") || strings.Contains(o, "FailedOver") {
		t.Errorf("a node was fenced or failed over during the flood:\n%s", o)
	}
	as2 := func(who string, args ...string) []string { return append(args, certs(base, who)...) }
	certs = func(dir, name string) []string {
		p := filepath.Join(w, "pki")
		return []string{"--etcd-cacert", filepath.Join(p, "ca.crt"), "--etcd-cert", filepath.Join(dir, name, name+".crt"), "--etcd-key", filepath.Join(dir, name, name+".key")}
	}
	c.eventually("the viewer reads", 15*time.Second, func() bool {
		code, _ := c.sk(as2("vera", "get", "sites")...)
		return code == 0
	})
	if code, o := c.sk(as2("vera", "suspend", "site", "site-b")...); code == 0 || !strings.Contains(o, "permission denied") {
		t.Errorf("a viewer suspended a group: exit %d\n%s", code, o)
	}
	c.eventually("the operator suspends", 15*time.Second, func() bool {
		code, _ := c.sk(as2("otto", "suspend", "site", "site-b")...)
		return code == 0
	})
	if o := c.must(as("events", "--object", "site-b")...); !strings.Contains(o, "(by otto)") {
		t.Errorf("the suspension does not say who made it:\n%s", o)
	}
	// An operator switches over (the placement leader changes the objects
	// for them) but may not apply.
	if code, o := c.sk(as2("otto", "switchover", "site", "site-a", "--to", "node2", "--wait", "--timeout", "30s")...); code != 0 || !strings.Contains(o, "serving from node2") {
		t.Errorf("an operator's switchover: exit %d\n%s", code, o)
	}
	changed := filepath.Join(base, "changed.yaml")
	if err := os.WriteFile(changed, []byte(strings.Replace(manifests, "switchback: Automatic", "switchback: Manual", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, o := c.sk(as2("otto", "apply", "-f", changed)...); code == 0 || !strings.Contains(o, "an admin also applies and deletes") {
		t.Errorf("an operator applied a change: exit %d\n%s", code, o)
	}
	if code, o := c.sk("get", "nodes", "--etcd-cacert", filepath.Join(w, "pki", "ca.crt")); code == 0 {
		t.Errorf("a client without a certificate read the store:\n%s", o)
	}

	// The agents' dashboards: https with the (renewed) node certificate;
	// on loopback, reads need no certificate, acting needs an operator's.
	m := regexp.MustCompile(`sitekeeper agent: dashboard at (https://\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no agent printed an https dashboard:\n%s", out.String())
	}
	dash := m[1]
	httpsAs := func(who string) *http.Client {
		pool := x509.NewCertPool()
		ca, err := os.ReadFile(filepath.Join(w, "pki", "ca.crt"))
		if err != nil || !pool.AppendCertsFromPEM(ca) {
			t.Fatalf("read the CA: %v", err)
		}
		cfg := &tls.Config{RootCAs: pool}
		if who != "" {
			pair, err := tls.LoadX509KeyPair(filepath.Join(base, who, who+".crt"), filepath.Join(base, who, who+".key"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	act := func(who string) (int, string) {
		req, _ := http.NewRequest("POST", dash+"api/groups/site-a/suspend", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Sitekeeper-Action", "1")
		resp, err := httpsAs(who).Do(req)
		if err != nil {
			t.Fatalf("POST as %q: %v", who, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	resp, err := httpsAs("").Get(dash + "metrics")
	if err != nil {
		t.Fatalf("scrape the agent's https listener (its certificate renewed %d times): %v", strings.Count(out.String(), "Certificate renewed"), err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("a local scrape without a certificate: HTTP %d", resp.StatusCode)
	}
	for _, who := range []string{"", "vera"} {
		if code, body := act(who); code != http.StatusForbidden {
			t.Errorf("suspend from the dashboard as %q: HTTP %d %s, want 403", who, code, body)
		}
	}
	if code, body := act("otto"); code != 200 {
		t.Errorf("suspend from the dashboard as otto (operator): HTTP %d %s", code, body)
	}
	if o := c.must(as("events", "--object", "site-a")...); !strings.Contains(o, "(by otto (dashboard))") {
		t.Errorf("the dashboard's suspension does not say who made it:\n%s", o)
	}
}

// waitConnect connects to the store with files once it lets their name in
// (the CA node adds a new certificate's name within seconds).
func waitConnect(t *testing.T, eps []string, files etcdstore.TLSFiles) *etcdstore.Store {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := etcdstore.ConnectTLS(eps, files, 5*time.Second)
		if err == nil {
			if _, err = st.Decisions(context.Background()); err == nil {
				t.Cleanup(func() { st.Close() })
				return st
			}
			st.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect as %s: %v", files.Cert, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

type floodStats struct {
	reads, watches, oversized, oversizedAccepted int64
	refusal                                      string
}

func (f floodStats) String() string {
	return fmt.Sprintf("%d whole reads, %d watches held, %d oversized requests (%d accepted; refused with %q)", f.reads, f.watches, f.oversized, f.oversizedAccepted, f.refusal)
}

// flood reads everything in 8 loops, holds 1,000 watches and sends
// requests over the store's size limit, for d.
func flood(st *etcdstore.Store, d time.Duration) floodStats {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var reads, oversized, accepted atomic.Int64
	var refusal atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := st.List(ctx); err == nil {
					reads.Add(1)
				}
			}
		}()
	}
	for range 1000 {
		st.Changes(ctx, store.FamilyObjects, store.FamilyReports, store.FamilyNodes)
	}
	// Over the store's limit, under the client's own (so that it is sent).
	big := strings.Repeat("x", etcdstore.MaxRequestBytes+256<<10)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			oversized.Add(1)
			if err := st.InjectRaw(ctx, "events/flood", big); err == nil {
				accepted.Add(1)
			} else if ctx.Err() == nil {
				refusal.Store(err.Error())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	wg.Wait()
	why, _ := refusal.Load().(string)
	return floodStats{reads: reads.Load(), watches: 1000, oversized: oversized.Load(), oversizedAccepted: accepted.Load(), refusal: why}
}
