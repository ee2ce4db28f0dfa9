package windows

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// answer is what a fake host does with one request: a reply line, or one
// of the failures the host must survive.
type answer struct {
	reply   string // a reply envelope, without the id
	noise   string // a line printed before the reply (Write-Host, a warning)
	hang    bool   // never answer
	die     bool   // exit without answering
	garbage string // a line that is not a reply
	wrongID bool   // answer another request's id
}

// hostRequest is one request line as the host reads it.
type hostRequest struct {
	ID      uint64          `json:"id"`
	Script  string          `json:"script"`
	Request json.RawMessage `json:"request"`
	Batch   []ScriptRequest `json:"batch"`
}

// fakeHost is an in-process host: it checks the bootstrap line is the
// host script, says it is ready, and answers each request with handle.
type fakeHost struct {
	t      *testing.T
	handle func(hostRequest) answer

	mu       sync.Mutex
	requests []hostRequest
	ran      []string // the scripts of batches that ran
}

type fakeProc struct {
	inW    *io.PipeWriter
	outW   *io.PipeWriter
	outR   *io.PipeReader
	killed chan struct{}
	once   sync.Once
}

func (p *fakeProc) Stdin() io.Writer  { return p.inW }
func (p *fakeProc) Stdout() io.Reader { return p.outR }
func (p *fakeProc) Stderr() string    { return "fake host stderr" }
func (p *fakeProc) Kill() {
	p.once.Do(func() {
		close(p.killed)
		_ = p.inW.Close()
		_ = p.outW.Close()
	})
}

func (f *fakeHost) start() (HostProcess, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &fakeProc{inW: inW, outW: outW, outR: outR, killed: make(chan struct{})}
	want, err := HostScript()
	if err != nil {
		return nil, err
	}
	go func() {
		defer outW.Close()
		rd := bufio.NewReader(inR)
		boot, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		text, err := base64.StdEncoding.DecodeString(strings.TrimSpace(boot))
		if err != nil || string(text) != want {
			f.t.Errorf("the bootstrap line is not the host script (%d bytes)", len(boot))
			return
		}
		fmt.Fprintln(outW, "Windows PowerShell banner noise")
		fmt.Fprintln(outW, `{"ready":true,"pid":4242,"psVersion":"5.1.20348.2652"}`)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			var req hostRequest
			if err := json.Unmarshal([]byte(line), &req); err != nil {
				f.t.Errorf("request line is not JSON: %q", line)
				return
			}
			f.mu.Lock()
			f.requests = append(f.requests, req)
			f.mu.Unlock()
			if req.Batch != nil {
				fmt.Fprintln(outW, f.batch(req))
				continue
			}
			a := f.handle(req)
			switch {
			case a.hang:
				<-p.killed
				return
			case a.die:
				return
			case a.garbage != "":
				fmt.Fprintln(outW, a.garbage)
				continue
			}
			if a.noise != "" {
				fmt.Fprintln(outW, a.noise)
			}
			id := req.ID
			if a.wrongID {
				id += 100
			}
			var env map[string]any
			_ = json.Unmarshal([]byte(a.reply), &env)
			env["id"] = id
			b, _ := json.Marshal(env)
			fmt.Fprintln(outW, string(b))
		}
	}()
	return p, nil
}

// batch answers a batch as _host.ps1 does: each call in order until one
// fails, the results listed, done counted.
func (f *fakeHost) batch(req hostRequest) string {
	results := []json.RawMessage{}
	for done, it := range req.Batch {
		f.mu.Lock()
		f.ran = append(f.ran, it.Script)
		f.mu.Unlock()
		var env envelope
		_ = json.Unmarshal([]byte(f.handle(hostRequest{ID: req.ID, Script: it.Script, Request: it.Request}).reply), &env)
		if !env.OK {
			b, _ := json.Marshal(map[string]any{"id": req.ID, "ok": false, "error": env.Error, "result": results, "done": done})
			return string(b)
		}
		results = append(results, env.Result)
	}
	b, _ := json.Marshal(map[string]any{"id": req.ID, "ok": true, "result": results, "done": len(req.Batch)})
	return string(b)
}

// TestHostScriptHoldsEveryScript: the host loads the prelude and every
// script once, each as a here-string it can compile, and the command line
// stays short and fixed.
func TestHostScriptHoldsEveryScript(t *testing.T) {
	text, err := HostScript()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{scriptIISList, scriptIISChange, scriptIISRun, scriptIP, scriptDisk, scriptFeatures} {
		if !strings.Contains(text, "$SkScripts['"+name+"'] = @'\n") {
			t.Errorf("host script lacks %s", name)
		}
	}
	for _, must := range []string{"function Get-ServerManager", "function Get-SkError", "Send-Line @{ ready = $true"} {
		if !strings.Contains(text, must) {
			t.Errorf("host script lacks %q", must)
		}
	}
	line := strings.Join(append([]string{PowerShellPath(func(string) string { return `C:\Windows` })}, HostArgs()...), " ")
	if len(line) > 400 {
		t.Errorf("the host's command line is %d characters; it should hold no script", len(line))
	}
	args, _ := ScriptArgs(scriptIISChange)
	t.Logf("host command line: %d characters; iis-change as -EncodedCommand: %d", len(line), len(strings.Join(args, " ")))
}

func TestPowerShellPathIsAbsoluteUnderTheSystemRoot(t *testing.T) {
	for _, tc := range []struct{ root, want string }{
		{`C:\Windows`, `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`},
		{`D:\WINNT\`, `D:\WINNT\System32\WindowsPowerShell\v1.0\powershell.exe`},
		{"", `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`},
	} {
		got := PowerShellPath(func(k string) string {
			if k == "SystemRoot" {
				return tc.root
			}
			return ""
		})
		if got != tc.want {
			t.Errorf("SystemRoot %q: %s, want %s", tc.root, got, tc.want)
		}
	}
}

// TestHostServesManyRequestsFromOneProcess: requests and replies travel as
// JSON lines; noise lines are skipped; one process serves them all.
func TestHostServesManyRequestsFromOneProcess(t *testing.T) {
	f := &fakeHost{t: t}
	f.handle = func(r hostRequest) answer {
		return answer{reply: reply(map[string]any{"echo": string(r.Request), "script": r.Script}), noise: "WARNING: a module said something"}
	}
	h := &Host{Start: f.start, Log: logr.Discard()}
	for i := range 20 {
		req := fmt.Sprintf(`{"op":"list","n":%d}`, i)
		var res struct{ Echo, Script string }
		if err := runScript(context.Background(), h, scriptIP, json.RawMessage(req), &res); err != nil {
			t.Fatal(err)
		}
		if res.Echo != req || res.Script != scriptIP {
			t.Fatalf("request %d answered %+v", i, res)
		}
	}
	if h.Starts() != 1 {
		t.Errorf("%d host processes for 20 requests, want 1", h.Starts())
	}
}

// TestHostFailuresAreTypedAndRecovered: a host that hangs, dies, writes
// garbage or answers another request is stopped, the request fails with a
// HostError naming what happened, and the next request runs on a new host.
func TestHostFailuresAreTypedAndRecovered(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  answer
		want HostFailure
	}{
		{"hang", answer{hang: true}, HostHung},
		{"die", answer{die: true}, HostDied},
		{"garbage", answer{garbage: "{this is not json"}, HostGarbage},
		{"wrong id", answer{reply: reply(nil), wrongID: true}, HostGarbage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeHost{t: t}
			f.handle = func(r hostRequest) answer {
				if strings.Contains(string(r.Request), "misbehave") {
					return tc.bad
				}
				return answer{reply: reply("fine")}
			}
			h := &Host{Start: f.start, Log: logr.Discard()}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := runScript(ctx, h, scriptIISRun, map[string]string{"op": "misbehave"}, nil)
			var he *HostError
			if !errors.As(err, &he) || he.Failure != tc.want || !errors.Is(err, ErrHost) {
				t.Fatalf("err = %v, want a HostError %q", err, tc.want)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the failed request took %s", took)
			}
			var got string
			if err := runScript(context.Background(), h, scriptIISRun, map[string]string{"op": "start"}, &got); err != nil || got != "fine" {
				t.Fatalf("the next request: %q, %v; want it served by a new host", got, err)
			}
			if h.Starts() != 2 {
				t.Errorf("%d starts, want 2 (the failed host and its replacement)", h.Starts())
			}
		})
	}
}

// TestHostScriptFailureKeepsTheHost: a script that fails (a typed error)
// is an answer, not a host failure: the host keeps running.
func TestHostScriptFailureKeepsTheHost(t *testing.T) {
	f := &fakeHost{t: t, handle: func(hostRequest) answer {
		return answer{reply: failure("AddressInUse", "10.0.0.5 is held by another machine")}
	}}
	h := &Host{Start: f.start, Log: logr.Discard()}
	for range 3 {
		err := runScript(context.Background(), h, scriptIP, map[string]string{"op": "add"}, nil)
		if !errors.Is(err, backend.ErrAddressInUse) || errors.Is(err, ErrHost) {
			t.Fatalf("err = %v, want ErrAddressInUse from the script", err)
		}
	}
	if h.Starts() != 1 {
		t.Errorf("%d starts, want 1", h.Starts())
	}
}

// failoverHost answers a group's steps as a healthy node does; the
// address add fails when failAdd is set.
func failoverHost(t *testing.T, failAdd bool) *fakeHost {
	f := &fakeHost{t: t}
	f.handle = func(r hostRequest) answer {
		var req struct{ Op string }
		_ = json.Unmarshal(r.Request, &req)
		switch {
		case r.Script == scriptIP && req.Op == "add" && failAdd:
			return answer{reply: failure("AddressInUse", "10.0.0.50 is held by another machine on the network")}
		case r.Script == scriptIP && req.Op == "add":
			return answer{reply: reply(map[string]any{"interfaceAlias": "Ethernet0", "gateway": "10.0.0.1"})}
		case r.Script == scriptDisk && req.Op == "online":
			return answer{reply: reply(map[string]any{"serial": "WD-1", "found": true, "volumes": []any{map[string]any{"driveLetter": "E", "fileSystem": "NTFS", "health": "Healthy"}}})}
		}
		return answer{reply: reply(nil)}
	}
	return f
}

var (
	testVolume  = backend.Volume{ID: backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: "serial:WD-1"}, Root: `E:\`}
	testAddress = backend.Address{CIDR: "10.0.0.50/24", Interface: "Ethernet0"}
	takeDown    = []backend.GroupOp{{Action: "StopSite", Site: "WebSite1"}, {Action: "RemoveAddress", Address: &testAddress}, {Action: "VolumeOffline", Volume: &testVolume}}
	bringUp     = []backend.GroupOp{{Action: "VolumeOnline", Volume: &testVolume}, {Action: "AddAddress", Address: &testAddress}, {Action: "StartSite", Site: "WebSite1"}}
)

// TestFailoverOfOneGroupIsOneRequestEachWay: once the host runs, a
// group's take-down is one request and its bring-up one more, with one
// reply each listing what was done; no process starts.
func TestFailoverOfOneGroupIsOneRequestEachWay(t *testing.T) {
	f := failoverHost(t, false)
	h := &Host{Start: f.start, Log: logr.Discard()}
	var announced []string
	b, err := New(Options{Scripts: h, Runner: NewReplay(), DataDir: t.TempDir(), Log: logr.Discard(),
		Announce: func(ip, gw string) error { announced = append(announced, ip+" via "+gw); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The host starts with the agent's first observation.
	if err := runScript(ctx, h, scriptIP, map[string]string{"op": "list"}, nil); err != nil {
		t.Fatal(err)
	}
	before := h.Starts()
	for _, ops := range [][]backend.GroupOp{takeDown, bringUp} {
		if done, err := b.RunGroup(ctx, ops); err != nil || done != 3 {
			t.Fatalf("RunGroup: %d done, %v", done, err)
		}
	}
	if started := h.Starts() - before; started != 0 {
		t.Errorf("a failover of one group started %d processes, want 0", started)
	}
	var got []string
	for _, r := range f.requests[1:] {
		var calls []string
		for _, it := range r.Batch {
			var op struct{ Op string }
			_ = json.Unmarshal(it.Request, &op)
			calls = append(calls, it.Script+" "+op.Op)
		}
		got = append(got, strings.Join(calls, ", "))
	}
	want := []string{"iis-run.ps1 stop, ip.ps1 remove, disk.ps1 offline", "disk.ps1 online, ip.ps1 add, iis-run.ps1 start"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"10.0.0.50 via 10.0.0.1"}, announced); diff != "" {
		t.Errorf("announced (-want +got):\n%s", diff)
	}
}

// TestGroupBringUpStopsAtTheFailingStep: the batch stops at the step that
// fails; the reply says how many ran, the error keeps its type, and the
// site is never started.
func TestGroupBringUpStopsAtTheFailingStep(t *testing.T) {
	f := failoverHost(t, true)
	b, err := New(Options{Scripts: &Host{Start: f.start, Log: logr.Discard()}, Runner: NewReplay(), DataDir: t.TempDir(), Log: logr.Discard(), Announce: func(string, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	done, err := b.RunGroup(context.Background(), bringUp)
	if done != 1 || !errors.Is(err, backend.ErrAddressInUse) || !strings.Contains(err.Error(), "add address 10.0.0.50/24") {
		t.Fatalf("RunGroup: %d done, %v; want 1 done and the address error", done, err)
	}
	if diff := cmp.Diff([]string{scriptDisk, scriptIP}, f.ran); diff != "" {
		t.Errorf("scripts run (-want +got), the site must not start after its address failed:\n%s", diff)
	}
}

// TestGroupRunWithoutAHostRunsStepByStep: through a Runner (replay
// tests, no host), the same ops run one script call each, in order.
func TestGroupRunWithoutAHostRunsStepByStep(t *testing.T) {
	b, r, _ := newTestBackend(t,
		psRec(scriptIISRun, reply(nil), 0), psRec(scriptIP, reply(nil), 0), psRec(scriptDisk, reply(map[string]any{"changed": true}), 0))
	if done, err := b.RunGroup(context.Background(), takeDown); err != nil || done != 3 {
		t.Fatalf("RunGroup: %d done, %v", done, err)
	}
	if len(r.Calls) != 3 {
		t.Errorf("%d calls, want 3", len(r.Calls))
	}
}

// A real host process: the test binary itself, when this variable is set,
// speaks the host protocol and misbehaves on request, so that the kill of
// a real process is proven too.
const realHostEnv = "SITEKEEPER_TEST_PSHOST"

func TestMain(m *testing.M) {
	if os.Getenv(realHostEnv) == "1" {
		runTestHost()
		return
	}
	os.Exit(m.Run())
}

func runTestHost() {
	rd := bufio.NewReader(os.Stdin)
	if _, err := rd.ReadString('\n'); err != nil {
		os.Exit(3)
	}
	fmt.Printf(`{"ready":true,"pid":%d}`+"\n", os.Getpid())
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			os.Exit(0)
		}
		var req hostRequest
		_ = json.Unmarshal([]byte(line), &req)
		if strings.Contains(string(req.Request), "hang") {
			fmt.Fprintln(os.Stderr, "stuck in Get-Disk")
			select {}
		}
		fmt.Printf(`{"id":%d,"ok":true,"result":%d}`+"\n", req.ID, os.Getpid())
	}
}

func TestRealHostProcessIsKilledWhenItHangs(t *testing.T) {
	t.Setenv(realHostEnv, "1")
	h := &Host{Start: func() (HostProcess, error) { return StartHostProcess(os.Args[0]) }, Log: logr.Discard()}
	ctx := context.Background()
	var pid1 int
	if err := runScript(ctx, h, scriptIISRun, map[string]string{"op": "start"}, &pid1); err != nil {
		t.Fatal(err)
	}
	hctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := runScript(hctx, h, scriptIISRun, map[string]string{"op": "hang"}, nil)
	var he *HostError
	if !errors.As(err, &he) || he.Failure != HostHung || !strings.Contains(err.Error(), "stuck in Get-Disk") {
		t.Fatalf("err = %v, want HostHung with the host's stderr", err)
	}
	var pid2 int
	if err := runScript(ctx, h, scriptIISRun, map[string]string{"op": "start"}, &pid2); err != nil {
		t.Fatal(err)
	}
	if pid2 == pid1 || h.Starts() != 2 {
		t.Errorf("after the hang: pid %d (was %d), %d starts; want a new process", pid2, pid1, h.Starts())
	}
}

// BenchmarkHostRequest is the cost of one request through a running host
// (JSON line out, JSON line back), against a process start per request.
func BenchmarkHostRequest(b *testing.B) {
	b.Setenv(realHostEnv, "1")
	start := func() (HostProcess, error) { return StartHostProcess(os.Args[0]) }
	ctx := context.Background()
	b.Run("persistent-host", func(b *testing.B) {
		h := &Host{Start: start, Log: logr.Discard()}
		for b.Loop() {
			if err := runScript(ctx, h, scriptIISRun, map[string]string{"op": "start"}, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(h.Starts()), "starts")
	})
	b.Run("process-per-request", func(b *testing.B) {
		var starts int
		for b.Loop() {
			h := &Host{Start: start, Log: logr.Discard()}
			if err := runScript(ctx, h, scriptIISRun, map[string]string{"op": "start"}, nil); err != nil {
				b.Fatal(err)
			}
			starts += int(h.Starts())
			h.conn.proc.Kill()
		}
		b.ReportMetric(float64(starts)/float64(b.N), "starts/op")
	})
}
