//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func binary(t *testing.T) string {
	t.Helper()
	b := os.Getenv("SITEKEEPER_BIN")
	if b == "" {
		t.Fatal("SITEKEEPER_BIN is not set; run `make test-e2e`")
	}
	return b
}

func sitekeeper(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return code, string(out)
}

func TestValidateBinary(t *testing.T) {
	root := filepath.Join("..", "..", "manifests")
	code, out := sitekeeper(t, "", "validate", "-R", "-f", filepath.Join(root, "examples"))
	if code != 0 || !strings.Contains(out, "resource groups: 7") {
		t.Fatalf("examples: exit %d\n%s", code, out)
	}
	code, out = sitekeeper(t, "", "validate", "-f", filepath.Join(root, "invalid"))
	if code != 1 || strings.Count(out, "\n") < 20 {
		t.Fatalf("invalid: exit %d\n%s", code, out)
	}
	code, _ = sitekeeper(t, "", "validate", "-f")
	if code != 2 {
		t.Fatalf("usage: exit %d, want 2", code)
	}
	code, out = sitekeeper(t, "kind: IISSite\n", "validate", "-f", "-")
	if code != 1 || !strings.Contains(out, "-:1: ") {
		t.Fatalf("stdin: exit %d\n%s", code, out)
	}
}
