package windows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sitekeeper/sitekeeper/internal/diag"
)

// Recording is one command and what it answered, as a replay file holds it.
type Recording struct {
	// Name and Args are the argument vector.
	Name string   `json:"name"`
	Args []string `json:"args"`
	// Stdin is the request the command read; part of the key unless
	// AnyStdin is set.
	Stdin    string `json:"stdin,omitempty"`
	AnyStdin bool   `json:"anyStdin,omitempty"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr,omitempty"`
	Exit     int    `json:"exit"`
}

// Key identifies a command: its argv and a hash of its stdin.
func (r Recording) Key() string {
	if r.AnyStdin {
		return anyStdinKey(r.Name, r.Args)
	}
	return CommandKey(r.Name, r.Args, []byte(r.Stdin))
}

func anyStdinKey(name string, args []string) string {
	return name + "\x00" + strings.Join(DescribeArgs(args), "\x00") + "\x00*"
}

// CommandKey is the replay key of a command: the argv (with an encoded
// PowerShell script shown by its name, see DescribeArgs) joined with NUL, and
// the first 16 hex digits of stdin's SHA-256.
func CommandKey(name string, args []string, stdin []byte) string {
	sum := sha256.Sum256(stdin)
	return name + "\x00" + strings.Join(DescribeArgs(args), "\x00") + "\x00" + hex.EncodeToString(sum[:8])
}

// Replay is a Runner for tests: it serves recorded outputs keyed by command
// (argv and stdin, or argv alone for an AnyStdin recording), records every
// call, and fails a command it has no recording for.
type Replay struct {
	mu    sync.Mutex
	recs  map[string][]Recording // a key may answer differently on each call
	Calls []Recording
}

// NewReplay serves recs; several recordings of one command answer in turn,
// the last one repeating.
func NewReplay(recs ...Recording) *Replay {
	r := &Replay{recs: map[string][]Recording{}}
	for _, rec := range recs {
		r.Add(rec)
	}
	return r
}

// LoadReplay reads every *.json file in dir, each one Recording or a list.
func LoadReplay(dir string) (*Replay, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	r := NewReplay()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var list []Recording
		if err := json.Unmarshal(data, &list); err != nil {
			var one Recording
			if err2 := json.Unmarshal(data, &one); err2 != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			list = []Recording{one}
		}
		for _, rec := range list {
			r.Add(rec)
		}
	}
	return r, nil
}

// Add serves one more recording.
func (r *Replay) Add(rec Recording) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs[rec.Key()] = append(r.recs[rec.Key()], rec)
}

// Run implements Runner.
func (r *Replay) Run(_ context.Context, name string, args []string, stdin []byte) ([]byte, []byte, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	call := Recording{Name: name, Args: append([]string(nil), args...), Stdin: string(stdin)}
	r.Calls = append(r.Calls, call)
	key := call.Key()
	queue := r.recs[key]
	if len(queue) == 0 {
		key = anyStdinKey(name, args)
		queue = r.recs[key]
	}
	if len(queue) == 0 {
		return nil, nil, -1, fmt.Errorf("replay: no recording for %s %s (stdin %s)", name, strings.Join(DescribeArgs(args), " "), diag.Clip(string(stdin)))
	}
	rec := queue[0]
	if len(queue) > 1 {
		r.recs[key] = queue[1:]
	}
	return []byte(rec.Stdout), []byte(rec.Stderr), rec.Exit, nil
}
