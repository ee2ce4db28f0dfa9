package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"valid folder", []string{"validate", "-f", "../../manifests/examples/shared-ip"}, 0, "coupled: IISSite/blog and IISSite/wiki share IP IPResource/vip-shared"},
		{"invalid file", []string{"validate", "-f", "../../manifests/invalid/binding-star.yaml"}, 1, `cannot fail over`},
		{"no -f", []string{"validate"}, 2, "no manifests given"},
		{"unknown flag", []string{"validate", "--bogus"}, 2, "unknown flag"},
		{"bad output", []string{"validate", "-f", "x", "-o", "xml"}, 2, "unknown output format"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"explain", []string{"explain", "ip.spec.addresses"}, 0, "real-IP mode"},
		{"explain unknown", []string{"explain", "pod"}, 2, "unknown kind"},
		{"version", []string{"version"}, 0, "sitekeeper dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out+errOut, tt.want) {
				t.Errorf("output does not contain %q:\n%s%s", tt.want, out, errOut)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	site := "apiVersion: sitekeeper.io/v1alpha1\nkind: IISSite\nmetadata:\n  name: web1\nspec:\n  siteID: 1\n  physicalPath: 'E:\\w'\n  bindings:\n  - protocol: http\n    ipRef: nope\n  placement:\n    nodes: [node1]\n"
	code, out, _ := run(t, site, "validate", "-f", "-", "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var got struct {
		Kind   string
		Valid  bool
		Errors []map[string]any
		Groups []any
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Kind != "ValidationResult" {
		t.Fatalf("want a ValidationResult: %v\n%s", err, out)
	}
	want := []map[string]any{
		{"file": "-", "line": float64(7), "kind": "IISSite", "name": "web1", "field": "spec.physicalPath", "message": `"E:\\w" does not lie on any VolumeResource, so it would not move with the site; declare a VolumeResource for its drive or mount path`},
		{"file": "-", "line": float64(10), "kind": "IISSite", "name": "web1", "field": "spec.bindings[0].ipRef", "message": `IPResource "nope" not found; declare it or fix the name`},
	}
	if got.Valid || len(got.Groups) != 0 {
		t.Errorf("valid=%v groups=%v, want invalid with no groups", got.Valid, got.Groups)
	}
	if diff := cmp.Diff(want, got.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// TestValidateWideAndYAML: -o wide names where each object was read; -o
// yaml is the same ValidationResult as -o json.
func TestValidateWideAndYAML(t *testing.T) {
	dir := "../../manifests/examples/active-active"
	code, out, _ := run(t, "", "validate", "-f", dir, "-o", "wide")
	if code != 0 || !strings.Contains(out, "website2.yaml:21") || !strings.Contains(out, "IISSite/WebSite2") {
		t.Errorf("validate -o wide: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "", "validate", "-f", dir, "-o", "yaml")
	if code != 0 || !strings.Contains(out, "kind: ValidationResult") || !strings.Contains(out, "valid: true") || !strings.Contains(out, "name: WebSite2") {
		t.Errorf("validate -o yaml: exit %d\n%s", code, out)
	}
}
