package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

func startStore(t testing.TB) *Store {
	t.Helper()
	srv, err := StartServer(context.Background(), ServerOptions{DataDir: t.TempDir(), Fast: true, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	st, err := Connect([]string{srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

const set = `apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip1}
spec: {address: 127.0.30.1/32}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol1}
spec: {driveLetter: E, source: {mirror: {volume: E}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: web1}
spec:
  siteID: 2
  physicalPath: 'E:\web1'
  bindings: [{protocol: http, ipRef: vip1, port: 8080}]
  placement: {nodes: [node1, node2]}
`

func objects(t *testing.T, y string) []v1alpha1.Object {
	t.Helper()
	docs, errs := manifest.Decode("t.yaml", []byte(y))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return manifest.Objects(docs)
}

func outcomes(rs []store.ApplyResult) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Ref.String()+"="+string(r.Outcome))
	}
	return strings.Join(s, " ")
}

func TestApplyLifecycle(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	rs, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got != "IPResource/vip1=created VolumeResource/vol1=created IISSite/web1=created" {
		t.Errorf("first apply: %s", got)
	}
	rs, _ = st.Apply(ctx, objects(t, set), store.ApplyOptions{})
	if got := outcomes(rs); strings.Count(got, "unchanged") != 3 {
		t.Errorf("second apply: %s", got)
	}
	web, err := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	if web.Meta().Generation != 1 || web.Meta().UID == "" || web.Meta().CreationTimestamp == nil || web.Meta().ResourceVersion == "" {
		t.Errorf("server-set metadata: %+v", web.Meta())
	}
	labelled := strings.Replace(set, "metadata: {name: web1}", "metadata: {name: web1, labels: {team: a}}", 1)
	rs, _ = st.Apply(ctx, objects(t, labelled), store.ApplyOptions{})
	web2, _ := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "web1"})
	if !strings.Contains(outcomes(rs), "IISSite/web1=configured") || web2.Meta().Generation != 1 {
		t.Errorf("label change: %s, generation %d (want configured, generation unchanged)", outcomes(rs), web2.Meta().Generation)
	}
	changed := strings.Replace(labelled, "port: 8080", "port: 8081", 1)
	if _, err := st.Apply(ctx, objects(t, changed), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	web3, _ := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "web1"})
	if web3.Meta().Generation != 2 {
		t.Errorf("spec change: generation %d, want 2", web3.Meta().Generation)
	}
	// A write carrying a stale resourceVersion is a conflict, never a lost update.
	stale := objects(t, changed)
	stale[2].Meta().ResourceVersion = web.Meta().ResourceVersion
	if _, err := st.Apply(ctx, stale, store.ApplyOptions{}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("stale resourceVersion: %v, want ErrConflict", err)
	}
}

func TestApplyRefusesInvalidSetAndKeepsWhatIsStored(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := st.List(ctx)
	// A second site on the same ip:port:host is valid alone but not with
	// what is stored.
	clash := `apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: web2}
spec:
  siteID: 3
  physicalPath: 'E:\web2'
  bindings: [{protocol: http, ipRef: vip1, port: 8080}]
  placement: {nodes: [node1, node2]}
`
	_, err := st.Apply(ctx, objects(t, clash), store.ApplyOptions{})
	var ve *store.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Error(), "already claimed by IISSite \"web1\"") {
		t.Fatalf("clash: %v", err)
	}
	after, _ := st.List(ctx)
	if len(after.Objects) != len(before.Objects) {
		t.Errorf("a refused apply stored something: %d objects, had %d", len(after.Objects), len(before.Objects))
	}
}

func TestConcurrentAppliesLoseNothingSilently(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			y := strings.Replace(set, "port: 8080", fmt.Sprintf("port: %d", 18080+i), 1)
			_, errs[i] = st.Apply(ctx, objects(t, y), store.ApplyOptions{})
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, store.ErrConflict) {
			t.Errorf("unexpected error: %v", err)
		}
	}
	web, _ := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "web1"})
	// Every apply that reported success wrote a new generation: none was
	// silently overwritten by a concurrent one based on the same read.
	if web.Meta().Generation != int64(1+ok) {
		t.Errorf("generation %d after %d successful concurrent applies, want %d", web.Meta().Generation, ok, 1+ok)
	}
}

func TestTwoPhaseDelete(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := v1alpha1.Ref{Kind: "IISSite", Name: "web1"}
	if err := st.MarkDeleted(ctx, ref); err != nil {
		t.Fatal(err)
	}
	o, err := st.Get(ctx, ref)
	if err != nil || o.Meta().DeletionTimestamp == nil {
		t.Fatalf("after MarkDeleted: %v %+v", err, o)
	}
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "being deleted") {
		t.Errorf("apply during delete: %v", err)
	}
	if err := st.Remove(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, ref); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after Remove: %v", err)
	}
}

// TestDamagedValuesAreSkippedAndReplaced: a value that does not decode
// under objects/ or placement/ (or one stored under another object's key)
// is listed as damaged and skipped; the other objects still list, get and
// apply; an apply of the damaged object's name replaces the bad value; the
// leader's compare-and-swap on the damaged decision's revision replaces it.
func TestDamagedValuesAreSkippedAndReplaced(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	vip := v1alpha1.Ref{Kind: "IPResource", Name: "vip1"}
	vol := v1alpha1.Ref{Kind: "VolumeResource", Name: "vol1"}
	good, err := st.client.Get(ctx, objectKey(vol))
	if err != nil {
		t.Fatal(err)
	}
	mustPut := func(k, v string) {
		t.Helper()
		if _, err := st.client.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(objectKey(vip), "{garbage")
	mustPut(objectKey(v1alpha1.Ref{Kind: "VolumeResource", Name: "copy"}), string(good.Kvs[0].Value))
	mustPut(decisionKey("web1"), "\x00\x01")
	snap, err := st.List(ctx)
	if err != nil {
		t.Fatalf("one bad value stopped the listing: %v", err)
	}
	var names, damaged []string
	for _, o := range snap.Objects {
		names = append(names, v1alpha1.RefOf(o).String())
	}
	for _, k := range snap.Damaged {
		damaged = append(damaged, strings.TrimPrefix(k.Key, family(store.FamilyObjects)))
	}
	if got := strings.Join(names, " "); got != "IISSite/web1 VolumeResource/vol1" {
		t.Errorf("listed %q, want the two good objects", got)
	}
	if got := strings.Join(damaged, " "); got != "IPResource/vip1 VolumeResource/copy" {
		t.Errorf("damaged %q, want the garbage and the copy under another name", got)
	}
	if _, err := st.Get(ctx, vip); !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), "doctor") {
		t.Errorf("get of the damaged object: %v, want ErrDamaged naming the fix", err)
	}
	ds, err := st.Decisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := ds["web1"]
	if d.Damaged == "" || d.Revision == 0 {
		t.Fatalf("the damaged decision: %+v, want Damaged with its revision", d)
	}
	if err := st.PutDecision(ctx, store.Decision{Group: "web1", Active: "node1", Revision: d.Revision}, store.LeaderGuard{}); err != nil {
		t.Fatalf("replacing the damaged decision: %v", err)
	}
	rs, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{})
	if err != nil {
		t.Fatalf("apply over the damaged object: %v", err)
	}
	if !strings.Contains(outcomes(rs), "IPResource/vip1=created") {
		t.Errorf("apply over the damaged object: %s", outcomes(rs))
	}
	if _, err := st.Get(ctx, vip); err != nil {
		t.Errorf("after the apply: %v", err)
	}
}

// TestCallsEndWhenTheStoreDies: with the store gone, a call made without a
// deadline of its own ends after the request timeout (it used to wait in
// the gRPC picker forever), and says it timed out.
func TestCallsEndWhenTheStoreDies(t *testing.T) {
	srv, err := StartServer(context.Background(), ServerOptions{DataDir: t.TempDir(), Fast: true, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := ConnectTLS([]string{srv.Endpoint}, TLSFiles{}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Apply(context.Background(), objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	for name, call := range map[string]func() error{
		"list": func() error { _, err := st.List(context.Background()); return err },
		"apply": func() error {
			_, err := st.Apply(context.Background(), objects(t, set), store.ApplyOptions{})
			return err
		},
		"lease": func() error {
			_, err := st.RegisterNode(context.Background(), store.NodeInfo{Name: "n1"}, time.Second)
			return err
		},
	} {
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			if !IsTimeout(err) {
				t.Errorf("%s with the store gone: %v, want a timeout", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s with the store gone did not end", name)
		}
	}
}

// TestConcurrentAppliesOfDifferentFieldsBothSurvive: applies from the same
// read, each changing another field of one object, all land; two that
// change the same field to different values: one lands, the other is a
// conflict naming the field.
func TestConcurrentAppliesOfDifferentFieldsBothSurvive(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	variants := []string{
		strings.Replace(set, "port: 8080", "port: 18080", 1),
		strings.Replace(set, "siteID: 2", "siteID: 7", 1),
		strings.Replace(set, "metadata: {name: web1}", "metadata: {name: web1, labels: {team: a}}", 1),
	}
	for round := range 5 {
		if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		// Every apply reads before any writes: they start from one base.
		var read sync.WaitGroup
		read.Add(len(variants))
		st.afterRead = func() { read.Done(); read.Wait() }
		var wg sync.WaitGroup
		errs := make([]error, len(variants))
		for i, y := range variants {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = st.Apply(ctx, objects(t, y), store.ApplyOptions{})
			}()
		}
		wg.Wait()
		st.afterRead = nil
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		o, _ := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "web1"})
		web := o.(*v1alpha1.IISSite)
		if web.Spec.Bindings[0].Port != 18080 || web.Spec.SiteID != 7 || web.Meta().Labels["team"] != "a" {
			t.Fatalf("round %d: a concurrent change was lost: port %d, siteID %d, labels %v", round, web.Spec.Bindings[0].Port, web.Spec.SiteID, web.Meta().Labels)
		}
	}
}

// TestConcurrentAppliesOfOneFieldConflict: two applies from one read that
// set the same field to different values: one lands, the other is a
// conflict that names the field; with --force-conflicts it lands too.
func TestConcurrentAppliesOfOneFieldConflict(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		var read sync.WaitGroup
		read.Add(2)
		st.afterRead = func() { read.Done(); read.Wait() }
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, port := range []int{28080 + 10*btoi(force), 28081 + 10*btoi(force)} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = st.Apply(ctx, objects(t, strings.Replace(set, "port: 8080", fmt.Sprintf("port: %d", port), 1)), store.ApplyOptions{ForceConflicts: force})
			}()
		}
		wg.Wait()
		st.afterRead = nil
		failed := 0
		for _, err := range errs {
			var fc *FieldConflictError
			switch {
			case err == nil:
			case errors.As(err, &fc) && slices.Equal(fc.Fields, []string{"spec.bindings"}) && errors.Is(err, store.ErrConflict):
				failed++
			default:
				t.Errorf("force %t: unexpected error %v", force, err)
			}
		}
		if want := map[bool]int{false: 1, true: 0}[force]; failed != want {
			t.Errorf("force %t: %d conflicts, want %d (%v)", force, failed, want, errs)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestApplyAgainstABaseRevision: two applies written against one revision,
// one after the other, each changing another field: both land, as they
// would had they raced; the same field changed by both is a conflict.
func TestApplyAgainstABaseRevision(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	snap, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := store.ApplyOptions{BaseRevision: snap.Revision}
	if _, err := st.Apply(ctx, objects(t, strings.Replace(set, "siteID: 2", "siteID: 7", 1)), base); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, objects(t, strings.Replace(set, "port: 8080", "port: 18080", 1)), base); err != nil {
		t.Fatal(err)
	}
	o, _ := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "web1"})
	if web := o.(*v1alpha1.IISSite); web.Spec.SiteID != 7 || web.Spec.Bindings[0].Port != 18080 {
		t.Fatalf("siteID %d port %d: one of the two changes was undone", web.Spec.SiteID, web.Spec.Bindings[0].Port)
	}
	_, err = st.Apply(ctx, objects(t, strings.Replace(set, "port: 8080", "port: 28080", 1)), base)
	var fc *FieldConflictError
	if !errors.As(err, &fc) || !slices.Equal(fc.Fields, []string{"spec.bindings"}) {
		t.Fatalf("the same field from the same base: %v, want a conflict on spec.bindings", err)
	}
}

// TestFieldManagersConflictAcrossAppliers: applies one after the other from
// different appliers. A field another manager set is not silently changed
// back: the apply is a conflict naming the field and that manager, and
// nothing is written; the same manager may change its own fields;
// --force-conflicts takes the field over; a folder (Owner) is the truth
// for what it holds and never conflicts.
func TestFieldManagersConflictAcrossAppliers(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	web := v1alpha1.Ref{Kind: "IISSite", Name: "web1"}
	as := func(mgr string, force bool) store.ApplyOptions {
		return store.ApplyOptions{Manager: mgr, ForceConflicts: force}
	}
	port := func() int {
		o, err := st.Get(ctx, web)
		if err != nil {
			t.Fatal(err)
		}
		return int(o.(*v1alpha1.IISSite).Spec.Bindings[0].Port)
	}
	withPort := func(p int) string { return strings.Replace(set, "port: 8080", fmt.Sprintf("port: %d", p), 1) }

	if _, err := st.Apply(ctx, objects(t, set), as("alice@a", false)); err != nil {
		t.Fatal(err)
	}
	// Bob changes the port alice set: a conflict naming both.
	_, err := st.Apply(ctx, objects(t, withPort(9090)), as("bob@b", false))
	var mc *ManagerConflictError
	if !errors.As(err, &mc) || mc.Fields["spec.bindings"] != "alice@a" || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("bob changing alice's field: %v, want a conflict on spec.bindings set by alice@a", err)
	}
	for _, want := range []string{"spec.bindings", "alice@a", "bob@b", "--force-conflicts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("conflict message %q does not name %q", err, want)
		}
	}
	if p := port(); p != 8080 {
		t.Fatalf("port %d after a refused apply, want 8080 (nothing written)", p)
	}
	// Alice changes her own field; the same manifest from bob is then
	// unchanged, not a conflict.
	if _, err := st.Apply(ctx, objects(t, withPort(9091)), as("alice@a", false)); err != nil {
		t.Fatalf("alice changing her own field: %v", err)
	}
	res, err := st.Apply(ctx, objects(t, withPort(9091)), as("bob@b", false))
	if err != nil {
		t.Fatalf("bob applying alice's values: %v, want unchanged", err)
	}
	for _, r := range res {
		if r.Outcome != store.Unchanged {
			t.Fatalf("bob applying alice's values: %s %s, want unchanged", r.Ref, r.Outcome)
		}
	}
	// Forced, bob takes the field over; now alice's old manifest conflicts
	// with bob.
	if _, err := st.Apply(ctx, objects(t, withPort(9092)), as("bob@b", true)); err != nil {
		t.Fatalf("bob with --force-conflicts: %v", err)
	}
	if p := port(); p != 9092 {
		t.Fatalf("port %d after bob's forced apply, want 9092", p)
	}
	o, _ := st.Get(ctx, web)
	if mf := o.Meta().ManagedFields; !slices.Contains(mf["bob@b"], "spec.bindings") || slices.Contains(mf["alice@a"], "spec.bindings") {
		t.Fatalf("managed fields after the takeover: %v, want spec.bindings with bob@b only", mf)
	}
	_, err = st.Apply(ctx, objects(t, withPort(9091)), as("alice@a", false))
	if !errors.As(err, &mc) || mc.Fields["spec.bindings"] != "bob@b" {
		t.Fatalf("alice after bob's takeover: %v, want a conflict naming bob@b", err)
	}
	// A folder that owns the objects is applied whatever the CLI set.
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{Owner: "prod"}); err != nil {
		t.Fatalf("folder apply over CLI-managed fields: %v", err)
	}
	if p := port(); p != 8080 {
		t.Fatalf("port %d after the folder's apply, want 8080", p)
	}
}

// TestListDecodesOnlyWhatChanged: a second listing reuses the objects
// decoded by the first when their revision did not move, decodes a
// changed one afresh, and a listing with status never writes status into
// the shared objects.
func TestListDecodesOnlyWhatChanged(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	web := v1alpha1.Ref{Kind: "IISSite", Name: "web1"}
	if err := st.PutStatus(ctx, web, v1alpha1.Status{ActiveNode: "node1"}); err != nil {
		t.Fatal(err)
	}
	byRef := func(snap store.Snapshot) map[v1alpha1.Ref]v1alpha1.Object {
		m := map[v1alpha1.Ref]v1alpha1.Object{}
		for _, o := range snap.Objects {
			m[v1alpha1.RefOf(o)] = o
		}
		return m
	}
	list := func(withStatus bool) map[v1alpha1.Ref]v1alpha1.Object {
		snap, err := st.list(ctx, withStatus, "")
		if err != nil {
			t.Fatal(err)
		}
		return byRef(snap)
	}
	first, withStatus := list(false), list(true)
	if withStatus[web].StatusRef().ActiveNode != "node1" {
		t.Fatalf("List lost the status: %+v", withStatus[web].StatusRef())
	}
	second := list(false)
	if second[web].StatusRef().ActiveNode != "" {
		t.Errorf("a listing with status wrote it into the shared object")
	}
	for ref, o := range second {
		if o != first[ref] {
			t.Errorf("%s decoded again though unchanged", ref)
		}
	}
	if _, err := st.Apply(ctx, objects(t, strings.Replace(set, "siteID: 2", "siteID: 7", 1)), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	third := list(false)
	if third[web] == first[web] || third[web].(*v1alpha1.IISSite).Spec.SiteID != 7 {
		t.Errorf("the changed object was not decoded afresh: siteID %d", third[web].(*v1alpha1.IISSite).Spec.SiteID)
	}
}

// TestListKind: one kind's objects with their status, and no other kind.
func TestListKind(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	web := v1alpha1.Ref{Kind: "IISSite", Name: "web1"}
	if err := st.PutStatus(ctx, web, v1alpha1.Status{ActiveNode: "node1"}); err != nil {
		t.Fatal(err)
	}
	all, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sites, err := st.ListKind(ctx, "IISSite")
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, o := range all.Objects {
		if o.GetKind() == "IISSite" {
			want++
		}
	}
	if len(sites.Objects) != want || want == 0 || want == len(all.Objects) {
		t.Fatalf("%d sites listed, want %d of %d objects", len(sites.Objects), want, len(all.Objects))
	}
	for _, o := range sites.Objects {
		if o.GetKind() != "IISSite" {
			t.Errorf("%s listed as a site", v1alpha1.RefOf(o))
		}
		if v1alpha1.RefOf(o) == web && o.StatusRef().ActiveNode != "node1" {
			t.Errorf("web1's status lost: %+v", o.StatusRef())
		}
	}
}

// TestSwitchoverMarkOutlivesApplies: the mark a switchover leaves is kept
// by an apply that does not write it, and is no field a manager owns.
func TestSwitchoverMarkOutlivesApplies(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	web := v1alpha1.Ref{Kind: "IISSite", Name: "web1"}
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{Manager: "alice@a"}); err != nil {
		t.Fatal(err)
	}
	o, err := st.Get(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	c := v1alpha1.DeepCopy(o)
	c.Meta().Annotations = map[string]string{v1alpha1.AnnotationSwitchover: "2026-12-01T01:00:00Z"}
	c.PlacementSpec().ActiveNode = "node2"
	if err := st.UpdateSpecs(ctx, c); err != nil {
		t.Fatal(err)
	}
	// alice applies her manifest again, which says nothing of the mark.
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{Manager: "alice@a"}); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Get(ctx, web)
	if got.Meta().Annotations[v1alpha1.AnnotationSwitchover] != "2026-12-01T01:00:00Z" {
		t.Errorf("the apply dropped the switchover mark: %v", got.Meta().Annotations)
	}
	if fields := got.Meta().ManagedFields["alice@a"]; slices.ContainsFunc(fields, func(f string) bool { return strings.Contains(f, "switchover") }) {
		t.Errorf("alice owns the mark: %v", fields)
	}
}

// TestOwnershipHolds: a CLI manifest may not name an owner (it would hand
// its objects to that source's pruning); a source that takes over an
// object applied from the CLI says so: adopted, with its event.
func TestOwnershipHolds(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	owned := strings.Replace(set, "metadata: {name: web1}", "metadata: {name: web1, annotations: {sitekeeper.io/source: other-repo}}", 1)
	if owned == set {
		t.Fatal("the test manifest has no web1 to annotate")
	}
	_, err := st.Apply(ctx, objects(t, owned), store.ApplyOptions{Manager: "alice@a"})
	var ve *store.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "only a source") || ve.Errors[0].Field != "metadata.annotations[sitekeeper.io/source]" {
		t.Fatalf("a CLI apply naming an owner: %v", err)
	}
	if _, err := st.Get(ctx, v1alpha1.Ref{Kind: "IISSite", Name: "web1"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("something was written: %v", err)
	}
	if _, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{Manager: "alice@a"}); err != nil {
		t.Fatal(err)
	}
	res, err := st.Apply(ctx, objects(t, set), store.ApplyOptions{Owner: "site-repo"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Outcome != store.Adopted {
			t.Errorf("%s: %s, want adopted", r.Ref, r.Outcome)
		}
	}
	events, _, _ := st.Events(ctx)
	if !slices.ContainsFunc(events, func(e store.Event) bool { return e.Reason == v1alpha1.EventAdopted }) {
		t.Errorf("no Adopted event")
	}
}

// TestPortTakenIsRecognised: a listen on a port another process took is
// recognised, so that a store whose chosen port was taken before it bound
// it chooses again instead of failing (a flake seen with parallel tests).
func TestPortTakenIsRecognised(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = net.Listen("tcp", l.Addr().String())
	if err == nil || !portTaken(err) {
		t.Fatalf("second listen: %v, not recognised as a taken port", err)
	}
	if portTaken(errors.New("permission denied")) {
		t.Errorf("another error taken for a taken port")
	}
}

// TestEventsSayWhoMadeTheChange: a client with an actor records it on
// its events; an event that names one keeps its own.
func TestEventsSayWhoMadeTheChange(t *testing.T) {
	st := startStore(t)
	ctx := context.Background()
	st.SetActor("alice")
	st.EventBatch(ctx, []store.Event{{Type: store.Normal, Reason: "Suspended", Object: "group/a", Message: "suspended"}, {Type: store.Normal, Reason: "Resumed", Object: "group/a", Message: "resumed", By: "pipeline"}})
	evs, _, err := st.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]string{}
	for _, e := range evs {
		by[e.Reason] = e.By
	}
	if by["Suspended"] != "alice" || by["Resumed"] != "pipeline" {
		t.Errorf("events by %v, want Suspended by alice and Resumed by pipeline", by)
	}
}

// Every write a person makes records who in its event: git sources,
// removed damaged keys (objects, suspensions, switchovers and decisions
// are tested where they are made).
func TestAdministrativeWritesSayWho(t *testing.T) {
	ctx := context.Background()
	st := startStore(t)
	st.SetActor("alice")
	gs := v1alpha1.GitSource{Metadata: v1alpha1.ObjectMeta{Name: "shop"}}
	gs.Spec.URL = "https://git.example.com/shop.git"
	if err := st.PutGitSource(ctx, gs, 0); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.DeleteGitSource(ctx, "shop"); !ok || err != nil {
		t.Fatalf("delete: %t %v", ok, err)
	}
	if err := st.InjectRaw(ctx, "placement/web", "{not json"); err != nil {
		t.Fatal(err)
	}
	damaged, err := st.Damaged(ctx)
	if err != nil || len(damaged) != 1 {
		t.Fatalf("damaged keys %v, %v", damaged, err)
	}
	if _, err := st.RemoveDamaged(ctx, damaged); err != nil {
		t.Fatal(err)
	}
	evs, _, err := st.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range evs {
		got[e.Reason] = e.By
	}
	for _, reason := range []string{v1alpha1.EventSourceConfigured, v1alpha1.EventSourceDeleted, v1alpha1.EventDamagedKeyRemoved} {
		if got[reason] != "alice" {
			t.Errorf("%s recorded by %q, want alice (events %+v)", reason, got[reason], evs)
		}
	}
}
