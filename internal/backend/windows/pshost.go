package windows

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/diag"
)

// ScriptCaller runs one embedded script with a JSON request and returns
// its reply: one JSON envelope ({"ok","result"} or {"ok":false,"error"}).
type ScriptCaller interface {
	Call(ctx context.Context, script string, request []byte) ([]byte, error)
}

// processPerCall starts one PowerShell process per script call, with the
// script as -EncodedCommand: how replay tests record and replay calls, by
// argv and stdin. The agent never runs scripts so: the encoded scripts
// outgrew the 32,767 characters Windows allows a command line; its host
// reads them from stdin.
type processPerCall struct{ run Runner }

func (p processPerCall) Call(ctx context.Context, script string, request []byte) ([]byte, error) {
	args, err := ScriptArgs(script)
	if err != nil {
		return nil, err
	}
	stdout, stderr, exit, err := p.run.Run(ctx, PowerShell, args, request)
	if err != nil {
		return nil, err
	}
	if _, perr := parseEnvelope(stdout); perr != nil {
		if msg := strings.TrimSpace(string(stderr)); msg != "" {
			return nil, fmt.Errorf("exited %d: %w (stderr: %s)", exit, perr, diag.Clip(msg))
		}
		return nil, fmt.Errorf("exited %d: %w", exit, perr)
	}
	return stdout, nil
}

// PowerShellPath is Windows PowerShell 5.1's absolute path under the
// system root, never found through PATH: a powershell.exe earlier on the
// PATH of the service account would run every step Sitekeeper takes.
func PowerShellPath(getenv func(string) string) string {
	return SystemPath(getenv, `System32\WindowsPowerShell\v1.0\powershell.exe`)
}

// SystemPath is rel under the system root (SystemRoot, else C:\Windows).
func SystemPath(getenv func(string) string, rel string) string {
	root := strings.TrimRight(getenv("SystemRoot"), `\/`)
	if root == "" {
		root = `C:\Windows`
	}
	return root + `\` + rel
}

// hostBootstrap is the whole command line of the host: it reads the host
// script as one base64 line from stdin and runs it. The command line holds
// no script and no user text, however large the scripts grow (Windows
// allows 32,767 characters; the encoded iis-change script alone took
// 22,892 when it travelled as -EncodedCommand).
const hostBootstrap = `$ErrorActionPreference='Stop';$l=[Console]::In.ReadLine();. ([ScriptBlock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($l))))`

// HostArgs is the host's argument vector after the program.
func HostArgs() []string {
	return []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", hostBootstrap}
}

// HostScript is the text the host runs: the prelude, every embedded
// script as a here-string in $SkScripts, and the request loop.
func HostScript() (string, error) {
	entries, err := scriptFS.ReadDir("scripts")
	if err != nil {
		return "", err
	}
	prelude, _ := scriptFS.ReadFile("scripts/_prelude.ps1")
	loop, _ := scriptFS.ReadFile("scripts/_host.ps1")
	var b strings.Builder
	b.WriteString(scriptMark + "host\n")
	b.Write(prelude)
	b.WriteString("\n$SkScripts = @{}\n")
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "_") {
			continue
		}
		body, _ := scriptFS.ReadFile("scripts/" + name)
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "'@") {
				return "", fmt.Errorf("script %s: a line starts with '@, which would end its here-string in the host", name)
			}
		}
		fmt.Fprintf(&b, "$SkScripts['%s'] = @'\n%s\n'@\n", name, strings.TrimRight(string(body), "\n"))
	}
	b.Write(loop)
	return b.String(), nil
}

// HostProcess is a running host: its stdin and stdout, and how to end it.
type HostProcess interface {
	Stdin() io.Writer
	Stdout() io.Reader
	// Kill ends the process at once; Stderr is the end of what it wrote
	// there, for messages.
	Kill()
	Stderr() string
}

// HostFailure says how a host failed a request.
type HostFailure string

// The ways a host fails; each kills it, and the next request starts a
// new one.
const (
	HostStartFailed HostFailure = "did not start"
	HostDied        HostFailure = "died"
	HostHung        HostFailure = "did not answer before the request's deadline"
	HostGarbage     HostFailure = "answered something that is not a reply"
)

// ErrHost matches every HostError.
var ErrHost = errors.New("powershell host failed")

// HostError is a request the host failed: the step fails with it, and the
// agent's loop retries on a new host.
type HostError struct {
	Script  string
	Failure HostFailure
	Detail  string
}

func (e *HostError) Error() string {
	msg := fmt.Sprintf("powershell host %s running %s (it was stopped; the next request starts a new one)", e.Failure, e.Script)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is makes errors.Is(err, ErrHost) hold.
func (e *HostError) Is(target error) bool { return target == ErrHost }

// Host keeps one PowerShell process for every script call of an agent:
// Microsoft.Web.Administration and the IIS, NetTCPIP and Storage modules
// load once, not once a step (a Windows PowerShell start with those
// modules costs about a second; Puppet's ruby-pwsh keeps one process for
// its DSC calls for the same reason). Calls run one at a time, each under
// its own deadline.
type Host struct {
	// Start runs a new host process; nil runs powershell.exe at its
	// absolute path.
	Start func() (HostProcess, error)
	// ReadyTimeout bounds the host's start, module loading included
	// (default 60 s).
	ReadyTimeout time.Duration
	// RequestTimeout bounds a request whose context has no deadline
	// (default 2 min): a host never holds the agent forever.
	RequestTimeout time.Duration
	Log            logr.Logger

	turn   chan struct{} // one call at a time, waiting on ctx
	once   sync.Once
	conn   *hostConn
	nextID uint64
	starts atomic.Int64
}

type hostConn struct {
	proc  HostProcess
	lines chan []byte // closed when stdout ends
}

// Stop kills the running host, if any; the next request starts a new one
// (how the conformance kit proves a replacement on a real server).
func (h *Host) Stop() {
	h.once.Do(func() { h.turn = make(chan struct{}, 1) })
	h.turn <- struct{}{}
	defer func() { <-h.turn }()
	if h.conn != nil {
		h.conn.proc.Kill()
		h.conn = nil
	}
}

// Starts is how many host processes were started.
func (h *Host) Starts() int64 { return h.starts.Load() }

// ScriptRequest is one script call of a batch.
type ScriptRequest struct {
	Script  string          `json:"script"`
	Request json.RawMessage `json:"request"`
}

// BatchCaller is a ScriptCaller that runs several script calls as one
// request: in order, stopping at the first failure. The reply's result is
// the list of results, and its done field how many calls completed.
type BatchCaller interface {
	CallBatch(ctx context.Context, items []ScriptRequest) ([]byte, error)
}

// Call implements ScriptCaller.
func (h *Host) Call(ctx context.Context, script string, request []byte) ([]byte, error) {
	if len(bytes.TrimSpace(request)) == 0 {
		request = []byte("null")
	}
	return h.exchange(ctx, script, func(id uint64) any {
		return struct {
			ID      uint64          `json:"id"`
			Script  string          `json:"script"`
			Request json.RawMessage `json:"request"`
		}{id, script, request}
	})
}

// CallBatch implements BatchCaller.
func (h *Host) CallBatch(ctx context.Context, items []ScriptRequest) ([]byte, error) {
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it.Script
	}
	return h.exchange(ctx, strings.Join(names, "+"), func(id uint64) any {
		return struct {
			ID    uint64          `json:"id"`
			Batch []ScriptRequest `json:"batch"`
		}{id, items}
	})
}

// exchange sends one request line (message builds it for its id) and
// waits for its reply; label names the scripts in errors.
func (h *Host) exchange(ctx context.Context, script string, message func(id uint64) any) ([]byte, error) {
	h.once.Do(func() { h.turn = make(chan struct{}, 1) })
	if _, ok := ctx.Deadline(); !ok {
		d := h.RequestTimeout
		if d <= 0 {
			d = 2 * time.Minute
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	select {
	case h.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the powershell host: %w", ctx.Err())
	}
	defer func() { <-h.turn }()
	if h.conn == nil {
		if err := h.startLocked(ctx, script); err != nil {
			return nil, err
		}
	}
	h.nextID++
	id := h.nextID
	line, err := json.Marshal(message(id))
	if err != nil {
		return nil, fmt.Errorf("encode request for %s: %w", script, err)
	}
	if _, err := h.conn.proc.Stdin().Write(append(line, '\n')); err != nil {
		return nil, h.fail(script, HostDied, "write the request: "+err.Error())
	}
	for {
		select {
		case <-ctx.Done():
			return nil, h.fail(script, HostHung, ctx.Err().Error())
		case reply, ok := <-h.conn.lines:
			if !ok {
				return nil, h.fail(script, HostDied, "")
			}
			if !bytes.HasPrefix(reply, []byte("{")) {
				// Windows PowerShell writes Write-Host and some module
				// warnings to stdout: noise, not a reply.
				h.Log.V(1).Info("PowerShell host wrote a line that is not a reply", "line", diag.Clip(string(reply)))
				continue
			}
			var got struct {
				ID *uint64 `json:"id"`
			}
			if err := json.Unmarshal(reply, &got); err != nil || got.ID == nil || *got.ID != id {
				return nil, h.fail(script, HostGarbage, diag.Clip(string(reply)))
			}
			return reply, nil
		}
	}
}

// fail stops the host and says why the request failed.
func (h *Host) fail(script string, f HostFailure, detail string) error {
	proc := h.conn.proc
	h.conn = nil
	proc.Kill()
	if stderr := strings.TrimSpace(proc.Stderr()); stderr != "" {
		if detail != "" {
			detail += "; "
		}
		detail += "stderr: " + diag.Clip(stderr)
	}
	err := &HostError{Script: script, Failure: f, Detail: detail}
	h.Log.Info("PowerShell host stopped", "script", script, "failure", string(f), "detail", detail)
	return err
}

func (h *Host) startLocked(ctx context.Context, script string) error {
	text, err := HostScript()
	if err != nil {
		return err
	}
	start := h.Start
	if start == nil {
		start = startPowerShell
	}
	proc, err := start()
	if err != nil {
		return &HostError{Script: script, Failure: HostStartFailed, Detail: err.Error()}
	}
	h.starts.Add(1)
	c := &hostConn{proc: proc, lines: make(chan []byte, 1)}
	go readLines(proc.Stdout(), c.lines)
	h.conn = c
	boot := base64.StdEncoding.EncodeToString([]byte(text)) + "\n"
	if _, err := proc.Stdin().Write([]byte(boot)); err != nil {
		return h.fail(script, HostStartFailed, "write the host script: "+err.Error())
	}
	wait := h.ReadyTimeout
	if wait <= 0 {
		wait = 60 * time.Second
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return h.fail(script, HostStartFailed, "not ready before the request's deadline: "+ctx.Err().Error())
		case <-timer.C:
			return h.fail(script, HostStartFailed, fmt.Sprintf("not ready within %s", wait))
		case line, ok := <-c.lines:
			if !ok {
				return h.fail(script, HostStartFailed, "exited before it was ready")
			}
			var ready struct {
				Ready     bool   `json:"ready"`
				PID       int    `json:"pid"`
				PSVersion string `json:"psVersion"`
			}
			if json.Unmarshal(line, &ready) != nil || !ready.Ready {
				continue // a banner or a warning before the host is ready
			}
			h.Log.Info("PowerShell host ready", "pid", ready.PID, "psVersion", ready.PSVersion)
			return nil
		}
	}
}

// readLines sends each line of r (without its line end) until r ends.
func readLines(r io.Reader, out chan<- []byte) {
	defer close(out)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(bytes.TrimPrefix(sc.Bytes(), []byte("\xef\xbb\xbf")))
		if len(line) == 0 {
			continue
		}
		out <- slices.Clone(line)
	}
}

// execHost is a host process run with os/exec.
type execHost struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.Reader
	stderr *tailBuffer
}

func (e *execHost) Stdin() io.Writer  { return e.stdin }
func (e *execHost) Stdout() io.Reader { return e.stdout }
func (e *execHost) Stderr() string    { return e.stderr.String() }
func (e *execHost) Kill() {
	_ = e.stdin.Close()
	_ = e.cmd.Process.Kill()
	go func() { _ = e.cmd.Wait() }()
}

// StartHostProcess runs program with args as a host process.
func StartHostProcess(program string, args ...string) (HostProcess, error) {
	cmd := exec.Command(program, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	tail := &tailBuffer{max: 4096}
	cmd.Stderr = tail
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", program, err)
	}
	return &execHost{cmd: cmd, stdin: stdin, stdout: stdout, stderr: tail}, nil
}

func startPowerShell() (HostProcess, error) {
	return StartHostProcess(PowerShellPath(os.Getenv), HostArgs()...)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
