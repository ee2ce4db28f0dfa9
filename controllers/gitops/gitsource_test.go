package gitops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/gitrev/gittest"
	"github.com/sitekeeper/sitekeeper/internal/notify"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore/etcdtest"
)

// remote is a bare repository and a work tree that pushes to it.
type remote struct {
	t    testing.TB
	bare string
	work string
}

func newRemote(t *testing.T) *remote { return newRemoteTB(t) }

func newRemoteTB(t testing.TB) *remote {
	t.Helper()
	r := &remote{t: t, bare: filepath.Join(t.TempDir(), "sites.git"), work: t.TempDir()}
	gittest.Run(t, filepath.Dir(r.bare), "init", "-q", "--bare", "-b", "main", r.bare)
	gittest.Run(t, r.work, "init", "-q", "-b", "main")
	gittest.Run(t, r.work, "remote", "add", "origin", r.bare)
	return r
}

func (r *remote) git(args ...string) string { return gittest.Run(r.t, r.work, args...) }

// commit writes files (path -> content; "" removes it), commits and
// pushes main, and returns the commit.
func (r *remote) commit(msg string, files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if content == "" {
			os.Remove(p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A", ".")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	r.git("push", "-q", "-f", "origin", "HEAD:main")
	return r.git("rev-parse", "HEAD")
}

func sitePort(t *testing.T, st *etcdstore.Store, i int) int32 {
	t.Helper()
	o, err := st.Get(context.Background(), v1alpha1.Ref{Kind: "IISSite", Name: fmt.Sprintf("site-%d", i)})
	if err != nil {
		t.Fatal(err)
	}
	return o.(*v1alpha1.IISSite).Spec.Bindings[0].Port
}

func addSource(t testing.TB, st *etcdstore.Store, gs v1alpha1.GitSource) {
	t.Helper()
	gs.APIVersion, gs.Kind = v1alpha1.APIVersion, v1alpha1.KindGitSource
	if errs := gs.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	_, rev, _, err := st.GitSource(context.Background(), gs.Metadata.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutGitSource(context.Background(), gs, rev); err != nil {
		t.Fatal(err)
	}
}

func sourceRecord(t testing.TB, st *etcdstore.Store, name string) store.Source {
	t.Helper()
	src, _, err := st.Source(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func newController(st *etcdstore.Store) *GitSources {
	return &GitSources{Store: st, Node: "node1", Log: logr.Discard()}
}

// TestFetchApplyAndNeverBackward, over file:// and over HTTP (git's own
// http-backend): a commit is fetched and applied with its commit as the
// revision; .sitekeeperignore and hidden files are not loaded; a
// force-push to an older commit is refused naming both commits and the
// applied one stays; a reconcile asking for the rollback applies it; a
// file removed is pruned; a suspended source is not fetched; a new leader (a new
// controller, nothing cached) applies the remote's commit, not an older one.
func TestFetchApplyAndNeverBackward(t *testing.T) {
	for _, transport := range []string{"file", "http"} {
		t.Run(transport, func(t *testing.T) {
			ctx := context.Background()
			st := etcdtest.Start(t, true)
			rem := newRemote(t)
			url := "file://" + rem.bare
			if transport == "http" {
				url = serveHTTP(t, rem.bare)
			}
			first := rem.commit("two groups", map[string]string{
				"sites/g0.yaml":             group(0, 8080),
				"sites/g1.yaml":             group(1, 8080),
				"sites/azure-pipelines.yml": "trigger: [main]\n",
				"sites/.sitekeeperignore":   "azure-pipelines.yml\n",
				"sites/.hidden/x.yaml":      "not: a manifest\n",
				"README.md":                 "not under path\n",
			})
			addSource(t, st, v1alpha1.GitSource{Metadata: v1alpha1.ObjectMeta{Name: "sites"}, Spec: v1alpha1.GitSourceSpec{URL: url, Path: "sites"}})
			c := newController(st)
			if err := c.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			src := sourceRecord(t, st, "sites")
			if src.Revision != "git:"+first || src.Git == nil || src.Git.Resolved != first || len(src.Inventory) != 6 {
				t.Fatalf("after the first pass: revision %s, git %+v, %d owned; want git:%s and 6 objects", src.Revision, src.Git, len(src.Inventory), first)
			}
			if src.Inventory[0].File == "" || !strings.HasPrefix(src.Inventory[0].File, "sites/") {
				t.Errorf("inventory file %q, want the repository path", src.Inventory[0].File)
			}

			second := rem.commit("port 9090", map[string]string{"sites/g0.yaml": group(0, 9090)})
			c.sources["sites"].next = time.Time{} // due now
			if err := c.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			if p := sitePort(t, st, 0); p != 9090 {
				t.Fatalf("port %d after the second commit, want 9090", p)
			}
			if src := sourceRecord(t, st, "sites"); src.Revision != "git:"+second {
				t.Fatalf("after the second commit: %s, want git:%s", src.Revision, second)
			}

			// A force-push back to the first commit is refused.
			rem.git("reset", "-q", "--hard", first)
			rem.git("push", "-q", "-f", "origin", "HEAD:main")
			c.sources["sites"].next = time.Time{}
			err := c.Pass(ctx)
			if err == nil || !strings.Contains(err.Error(), first[:12]) || !strings.Contains(err.Error(), second[:12]) || !strings.Contains(err.Error(), "--allow-rollback") {
				t.Fatalf("force-push to an older commit: %v, want a refusal naming both commits", err)
			}
			if p := sitePort(t, st, 0); p != 9090 {
				t.Fatalf("port %d after the refused rollback, want 9090", p)
			}
			src = sourceRecord(t, st, "sites")
			if src.Revision != "git:"+second || src.Git.Resolved != first || len(src.Git.History) < 3 || src.Git.History[0].Error == "" {
				t.Fatalf("after the refusal: revision %s, resolved %s, history %+v", src.Revision, src.Git.Resolved, src.Git.History)
			}

			// A new leader resolves the ref itself: still refused, nothing rolls back.
			if err := newController(st).Pass(ctx); err == nil {
				t.Fatal("a new leader applied the older commit")
			}

			// reconcile --allow-rollback applies it, once.
			gs, rev, _, err := st.GitSource(ctx, "sites")
			if err != nil {
				t.Fatal(err)
			}
			gs.Metadata.Annotations = map[string]string{v1alpha1.AnnotationReconcile: "t1;allow-rollback"}
			if err := st.PutGitSource(ctx, gs, rev); err != nil {
				t.Fatal(err)
			}
			if err := c.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			if p := sitePort(t, st, 0); p != 8080 {
				t.Fatalf("port %d after reconcile --allow-rollback, want 8080", p)
			}
			if src := sourceRecord(t, st, "sites"); src.Git.HandledReconcile != "t1;allow-rollback" || src.Revision != "git:"+first {
				t.Fatalf("reconcile not recorded: %+v", src.Git)
			}

			// A file removed: its objects are pruned.
			rem.commit("g1 removed", map[string]string{"sites/g1.yaml": ""})
			c.sources["sites"].next = time.Time{}
			if err := c.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			if src := sourceRecord(t, st, "sites"); len(src.Inventory) != 3 {
				t.Fatalf("after g1's file was removed: %d owned, want 3", len(src.Inventory))
			}

			// Suspended: a new commit is not fetched.
			gs, rev, _, _ = st.GitSource(ctx, "sites")
			gs.Spec.Suspend = true
			if err := st.PutGitSource(ctx, gs, rev); err != nil {
				t.Fatal(err)
			}
			rem.commit("while suspended", map[string]string{"sites/g0.yaml": group(0, 7070)})
			c.sources["sites"].next = time.Time{}
			if err := c.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			if p := sitePort(t, st, 0); p != 8080 {
				t.Fatalf("port %d while suspended, want 8080", p)
			}
		})
	}
}

// serveHTTP serves the bare repository over git's smart HTTP protocol
// through git http-backend, as a git server does.
func serveHTTP(t *testing.T, bare string) string {
	t.Helper()
	backend, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	h := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(backend)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(bare)
}

// TestRefs: a tag, a semver range (the highest tag in it) and a commit.
func TestRefs(t *testing.T) {
	rem := newRemote(t)
	c1 := rem.commit("one", map[string]string{"g0.yaml": group(0, 8081)})
	rem.git("tag", "v1.0.0")
	c2 := rem.commit("two", map[string]string{"g0.yaml": group(0, 8082)})
	rem.git("tag", "-a", "v1.2.0", "-m", "annotated")
	c3 := rem.commit("three", map[string]string{"g0.yaml": group(0, 8083)})
	rem.git("tag", "v2.0.0")
	rem.git("push", "-q", "origin", "--tags")
	repo, err := newRepository("file://" + rem.bare)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.fetch(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref  v1alpha1.GitRef
		want string
	}{
		{v1alpha1.GitRef{Branch: "main"}, c3},
		{v1alpha1.GitRef{Tag: "v1.0.0"}, c1},
		{v1alpha1.GitRef{Tag: "v1.2.0"}, c2}, // annotated: its commit
		{v1alpha1.GitRef{SemVer: ">=1.0.0 <2.0.0"}, c2},
		{v1alpha1.GitRef{SemVer: "^2"}, c3},
		{v1alpha1.GitRef{Commit: c1}, c1},
	} {
		got, err := repo.resolve(tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.ref, got, err, tc.want)
		}
	}
	for _, ref := range []v1alpha1.GitRef{{Branch: "nope"}, {Tag: "v9"}, {SemVer: ">=3"}, {Commit: strings.Repeat("ab", 20)}} {
		if _, err := repo.resolve(ref); err == nil {
			t.Errorf("%s resolved", ref)
		}
	}
}

// TestFetchFailureKeepsWhatWasApplied: an unreachable repository is a
// fetch error in the status and a Warning event, once; the applied
// revision stays.
func TestFetchFailureKeepsWhatWasApplied(t *testing.T) {
	ctx := context.Background()
	st := etcdtest.Start(t, true)
	rem := newRemote(t)
	first := rem.commit("one", map[string]string{"g0.yaml": group(0, 8080)})
	addSource(t, st, v1alpha1.GitSource{Metadata: v1alpha1.ObjectMeta{Name: "s"}, Spec: v1alpha1.GitSourceSpec{URL: "file://" + rem.bare}})
	c := newController(st)
	if err := c.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(rem.bare); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c.sources["s"].next = time.Time{}
		if err := c.Pass(ctx); err == nil {
			t.Fatal("a fetch of a removed repository worked")
		}
	}
	src := sourceRecord(t, st, "s")
	if src.Revision != "git:"+first || src.Git.FetchError == "" {
		t.Fatalf("after a failed fetch: revision %s, fetch error %q", src.Revision, src.Git.FetchError)
	}
	evs, _, err := st.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Reason == v1alpha1.EventSourceFetchFailed {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d SourceFetchFailed events for two failed fetches of one error, want 1", n)
	}
}

// TestWebhooks: an applied revision, one that is not served after the
// source's timeout (degraded, told once), a failover of a group the source
// applied and a refused revision are posted, signed; a receiver that fails
// first is retried.
func TestWebhooks(t *testing.T) {
	ctx := context.Background()
	notify.Backoff = 10 * time.Millisecond
	key := filepath.Join(t.TempDir(), "hook.key")
	if err := os.WriteFile(key, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []notify.Notice
	calls := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusBadGateway) // the first call fails
			return
		}
		if !notify.Verify([]byte("s3cret"), body, r.Header.Get(notify.SignatureHeader)) {
			w.WriteHeader(http.StatusUnauthorized)
			t.Errorf("bad signature %q", r.Header.Get(notify.SignatureHeader))
			return
		}
		var n notify.Notice
		if err := json.Unmarshal(body, &n); err != nil {
			t.Error(err)
		}
		got = append(got, n)
	}))
	defer hook.Close()

	st := etcdtest.Start(t, true)
	rem := newRemote(t)
	first := rem.commit("one", map[string]string{"g0.yaml": group(0, 8080)})
	addSource(t, st, v1alpha1.GitSource{Metadata: v1alpha1.ObjectMeta{Name: "s"}, Spec: v1alpha1.GitSourceSpec{URL: "file://" + rem.bare,
		Timeout: v1alpha1.Duration{Duration: time.Millisecond},
		Notify:  []v1alpha1.Webhook{{URL: hook.URL, SecretFile: key}}}})
	c := newController(st)
	if err := c.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	c.wg.Wait()

	// The site never becomes Ready: degraded, once.
	site := v1alpha1.Ref{Kind: v1alpha1.KindIISSite, Name: "site-0"}
	notReady := v1alpha1.Status{Conditions: []v1alpha1.Condition{{Type: v1alpha1.ConditionReady, Status: v1alpha1.ConditionFalse, Reason: "Stalled"}}}
	if err := st.PutStatus(ctx, site, notReady); err != nil {
		t.Fatal(err)
	}
	c.sources["s"].next = time.Now().Add(time.Hour) // no fetch: health only
	for range 2 {
		c.sources["s"].checked = time.Time{}
		if err := c.Pass(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.wg.Wait()

	// The placement leader fails the group over.
	c.Record(store.Event{Type: store.Normal, Reason: v1alpha1.ReasonFailedOver, Object: "group/site-0", Message: "node1 lost its lease; moving to node2"})
	c.Record(store.Event{Type: store.Normal, Reason: v1alpha1.ReasonFailedOver, Object: "group/not-ours", Message: "another group"})
	c.wg.Wait()

	rem.commit("bad", map[string]string{"g0.yaml": "apiVersion: sitekeeper.io/v1alpha1\nkind: IISSite\nmetadata: {name: broken}\nspec: {}\n"})
	c.sources["s"].next = time.Time{}
	if err := c.Pass(ctx); err == nil {
		t.Fatal("a bad commit was applied")
	}
	c.wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	var events []string
	for _, n := range got {
		events = append(events, n.Event)
	}
	if strings.Join(events, " ") != "applied degraded failover refused" {
		t.Fatalf("notices %v, want applied degraded failover refused", events)
	}
	if got[0].Revision != "git:"+first || got[1].Revision != "git:"+first || !strings.Contains(got[1].Message, "IISSite/site-0") ||
		got[2].Object != "group/site-0" || got[3].Message == "" {
		t.Errorf("notices %+v", got)
	}
	if calls != 5 {
		t.Errorf("%d calls, want 5 (the first failed and was retried)", calls)
	}
}
