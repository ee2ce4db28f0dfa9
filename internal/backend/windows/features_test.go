package windows

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

func TestCheckFeatures(t *testing.T) {
	all := []any{}
	for _, f := range append(RequiredFeatures, FTPFeature) {
		all = append(all, map[string]any{"name": f.Name, "installed": true})
	}
	noFTP := append([]any(nil), all[:len(all)-1]...)
	noFTP = append(noFTP, map[string]any{"name": FTPFeature.Name, "installed": false})
	ctx := context.Background()

	b, r, _ := newTestBackend(t, psRec(scriptFeatures, reply(map[string]any{"features": noFTP}), 0))
	if err := b.CheckFeatures(ctx, false); err != nil {
		t.Errorf("web only, all web features installed: %v", err)
	}
	err := b.CheckFeatures(ctx, true)
	if !errors.Is(err, ErrFeatureMissing) || !backend.NeedsHuman(err) {
		t.Fatalf("FTP missing: %v", err)
	}
	for _, must := range []string{"FTP Server (Web-Ftp-Server)", "Install-WindowsFeature Web-Ftp-Server"} {
		if !strings.Contains(err.Error(), must) {
			t.Errorf("error %q lacks %q", err, must)
		}
	}
	golden(t, "features.txt", rendered(r.Calls))

	// Client SKUs answer with the optional-feature names.
	client := []any{}
	for _, f := range RequiredFeatures {
		client = append(client, map[string]any{"name": f.Optional, "installed": f.Name != "Web-Mgmt-Tools"})
	}
	b2, _, _ := newTestBackend(t, psRec(scriptFeatures, reply(map[string]any{"features": client}), 0))
	if err := b2.CheckFeatures(ctx, false); err == nil || !strings.Contains(err.Error(), "IIS Management Tools (Web-Mgmt-Tools)") {
		t.Errorf("client SKU without management tools: %v", err)
	}
}
