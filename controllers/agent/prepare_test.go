package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/fake"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// windowsLike is a fake node with the Windows backend's extra interfaces.
type windowsLike struct {
	*fake.Node
	missing   error
	checks    []bool
	protected []backend.Volume
	updates   []backend.SiteChange
}

func (w *windowsLike) CheckFeatures(_ context.Context, needFTP bool) error {
	w.checks = append(w.checks, needFTP)
	return w.missing
}

func (w *windowsLike) Protect(vols []backend.Volume) { w.protected = vols }

func (w *windowsLike) UpdateSite(ctx context.Context, site string, c backend.SiteChange) error {
	w.updates = append(w.updates, c)
	return nil
}

func TestMissingFeatureChangesNothing(t *testing.T) {
	w := &windowsLike{Node: fake.New(), missing: errors.New("this node lacks FTP Server (Web-Ftp-Server): windows feature missing: " + backend.ErrUnsupported.Error())}
	rec := &recorder{}
	a := &Agent{Node: "node1", Backend: w, Source: staticSource{desiredFor(t, 8080, "node1")}, Reporter: rec, Log: logr.Discard()}
	ctx := context.Background()
	_, err := a.Reconcile(ctx, "web1")
	if !IsStalled(err) {
		t.Fatalf("err = %v, want stalled", err)
	}
	if calls := w.TakeCalls(); len(calls) != 0 {
		t.Errorf("a node without its prerequisites made changes: %v", calls)
	}
	if len(rec.reports) != 1 || rec.reports[0].Phase != store.PhaseStalled {
		t.Errorf("reports: %+v", rec.reports)
	}

	// Installed: the next reconcile converges, and the check is not run
	// again once it passed.
	w.missing = nil
	for range 2 {
		if _, err := a.Reconcile(ctx, "web1"); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]bool{false, false}, w.checks); diff != "" {
		t.Errorf("checks (needFTP) (-want +got):\n%s", diff)
	}
	if len(w.protected) != 1 || w.protected[0].ID.String() != "Mirror:E" || w.protected[0].Root != `E:\` {
		t.Errorf("protected volumes: %+v", w.protected)
	}
	if diff := cmp.Diff([]string{"BringOnline Mirror:E", "AddAddress 127.0.20.1/32", "CreateSite web1", "StartSite web1"}, w.TakeCalls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestConfigChangesToOneSiteAreOneCommit(t *testing.T) {
	w := &windowsLike{Node: fake.New()}
	a := &Agent{Node: "node1", Backend: w, Source: staticSource{desiredFor(t, 8080, "node1")}, Reporter: &recorder{}, Log: logr.Discard()}
	ctx := context.Background()
	if _, err := a.Reconcile(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	w.TakeCalls()
	// Drift on two settings at once: the port and serverAutoStart.
	for _, s := range w.Sites {
		s.Bindings[0].Port = 8081
		s.AutoStart = true
	}
	if _, err := a.Reconcile(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if len(w.updates) != 1 {
		t.Fatalf("UpdateSite called %d times, want one commit: %+v", len(w.updates), w.updates)
	}
	u := w.updates[0]
	if len(u.Add) != 1 || u.Add[0].Port != 8080 || len(u.Remove) != 1 || u.Remove[0].Port != 8081 || u.AutoStart == nil || *u.AutoStart {
		t.Errorf("change: %+v", u)
	}
}
