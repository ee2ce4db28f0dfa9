package printer

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

type row struct {
	Name   string `json:"name"`
	Active string `json:"active"`
}

// TestItemsAreAListOrOneAlone: many items are a List with camelCase keys,
// none is an empty list (not null), one named is printed alone; yaml
// the same.
func TestItemsAreAListOrOneAlone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		items []row
		named bool
		want  string
	}{
		{"many", []row{{"a", "node1"}, {"b", "node2"}}, false, `{"apiVersion":"sitekeeper.io/v1alpha1","items":[{"name":"a","active":"node1"},{"name":"b","active":"node2"}],"kind":"GroupList"}`},
		{"none", nil, false, `{"apiVersion":"sitekeeper.io/v1alpha1","items":[],"kind":"GroupList"}`},
		{"one named", []row{{"a", "node1"}}, true, `{"name":"a","active":"node1"}`},
	} {
		var b bytes.Buffer
		if err := Items(&b, "json", "Group", tc.items, tc.named); err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b.Bytes()); err != nil {
			t.Fatal(err)
		}
		if compact.String() != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, compact.String(), tc.want)
		}
	}
	var y bytes.Buffer
	if err := Items(&y, "yaml", "Group", []row{{"a", "node1"}}, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(y.String(), "kind: GroupList") || !strings.Contains(y.String(), "- active: node1") {
		t.Errorf("yaml:\n%s", y.String())
	}
	if err := CheckFormat("xml", Formats...); err == nil || !strings.Contains(err.Error(), "table, wide, yaml or json") {
		t.Errorf("CheckFormat: %v", err)
	}
}
