package conformance

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"

	"github.com/sitekeeper/sitekeeper/internal/backend/windows"
)

// recorder keeps every request the kit makes and what it answered, in the
// form replay tests load (windows.LoadReplay): a script call as the
// process-per-call command line that names it, a program as its argv.
type recorder struct {
	mu   sync.Mutex
	recs []windows.Recording
}

func (r *recorder) add(rec windows.Recording) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
}

// write saves the recordings as one replay file in dir.
func (r *recorder) write(dir string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(r.recs, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "replay.json")
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}

// recordingScripts records each script call through the caller it wraps.
type recordingScripts struct {
	inner windows.ScriptCaller
	rec   *recorder
}

func (s recordingScripts) Call(ctx context.Context, script string, request []byte) ([]byte, error) {
	reply, err := s.inner.Call(ctx, script, request)
	args, aerr := windows.ScriptArgs(script)
	if aerr == nil {
		out := string(reply)
		if err != nil {
			out = ""
		}
		s.rec.add(windows.Recording{Name: windows.PowerShell, Args: args, Stdin: string(request), Stdout: out})
	}
	return reply, err
}

// recordingRunner records each program run through the runner it wraps.
type recordingRunner struct {
	inner windows.Runner
	rec   *recorder
}

func (r recordingRunner) Run(ctx context.Context, name string, args []string, stdin []byte) ([]byte, []byte, int, error) {
	stdout, stderr, exit, err := r.inner.Run(ctx, name, args, stdin)
	r.rec.add(windows.Recording{Name: name, Args: args, Stdin: string(stdin), Stdout: string(stdout), Stderr: string(stderr), Exit: exit})
	return stdout, stderr, exit, err
}
