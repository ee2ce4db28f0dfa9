//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// TestNamesThatDoNotExist: every command that names an object or a node
// says "not found" (with the closest name) for one that does not exist,
// names match case-insensitively as IIS's do, and an unknown subcommand
// is a usage error.
func TestNamesThatDoNotExist(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"suspend", "site", "nosuch"}, 1, `IISSite "nosuch": not found`},
		{[]string{"resume", "site", "nosuch"}, 1, `IISSite "nosuch": not found`},
		{[]string{"clear-failures", "site", "site-c"}, 1, `not found (did you mean "site-a"?)`},
		{[]string{"switchover", "site", "nosuch", "--to", "node2"}, 1, "not found"},
		{[]string{"describe", "site", "sit-a"}, 1, `did you mean "site-a"?`},
		{[]string{"delete", "site", "nosuch"}, 1, "not found"},
		{[]string{"delete", "site", "nosuch", "--ignore-not-found"}, 0, ""},
		{[]string{"sim", "fail-node", "node9"}, 1, `node "node9": not found`},
		{[]string{"suspend", "--node", "node9"}, 1, `node "node9": not found`},
		{[]string{"suspend", "site", "SITE-A"}, 0, "iissite/site-a suspended"},
		{[]string{"resume", "site", "Site-A"}, 0, "iissite/site-a resumed"},
		{[]string{"sim", "no-such-fault"}, 2, `unknown subcommand "no-such-fault"`},
		{[]string{"member", "lst"}, 2, `did you mean "list"?`},
	}
	for _, tt := range tests {
		code, out := c.sk(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", tt.args, code, tt.code, tt.want, out)
		}
	}
}
