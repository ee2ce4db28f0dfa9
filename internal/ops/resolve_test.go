package ops

import (
	"context"
	"errors"
	"testing"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

func TestResolve(t *testing.T) {
	st := startStore(t, twoGroups(), store.ApplyOptions{})
	ctx := context.Background()
	tests := []struct {
		name, want, closest string
	}{
		{"site-0", "site-0", ""},
		{"SITE-1", "site-1", ""},    // IIS names are case-insensitive
		{"site-9", "", "site-0"},    // a typo: the closest name
		{"nothing-like-it", "", ""}, // nothing near
	}
	for _, tt := range tests {
		got, err := Resolve(ctx, st, v1alpha1.Ref{Kind: "IISSite", Name: tt.name})
		var nf *NotFoundError
		switch {
		case tt.want != "" && (err != nil || got.Name != tt.want):
			t.Errorf("%s: %v, %v; want %s", tt.name, got, err, tt.want)
		case tt.want == "" && (!errors.As(err, &nf) || !errors.Is(err, store.ErrNotFound) || nf.Closest != tt.closest):
			t.Errorf("%s: %v; want not found, closest %q", tt.name, err, tt.closest)
		}
	}
	if _, err := ResolveNode("node9", []string{"node1", "node2"}); err == nil || err.Error() != `node "node9": not found (did you mean "node1"?)` {
		t.Errorf("unknown node: %v", err)
	}
	if n, err := ResolveNode("NODE2", []string{"node1", "node2"}); err != nil || n != "node2" {
		t.Errorf("NODE2: %s, %v", n, err)
	}
}
