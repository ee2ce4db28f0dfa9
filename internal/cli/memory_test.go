package cli

import (
	"runtime/debug"
	"testing"

	"github.com/spf13/cobra"
)

// TestLongRunningCommandsCollectSooner: up, agent and witness run the
// collector at longRunningGCPercent unless GOGC says otherwise; one-shot
// commands keep the default.
func TestLongRunningCommandsCollectSooner(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1)) // apply sets one
	for _, c := range []struct {
		cmd, gogc string
		want      int
	}{
		{"up", "", longRunningGCPercent},
		{"agent", "", longRunningGCPercent},
		{"witness", "", longRunningGCPercent},
		{"up", "200", 100}, // the user's GOGC is the runtime's own
		{"get", "", 100},
		{"apply", "", 100},
	} {
		t.Setenv("GOGC", c.gogc)
		debug.SetGCPercent(100)
		limitMemory(&cobra.Command{Use: c.cmd})
		if got := debug.SetGCPercent(100); got != c.want {
			t.Errorf("%s with GOGC=%q: GC percent %d, want %d", c.cmd, c.gogc, got, c.want)
		}
	}
}
