package windows

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// PowerShell is Windows PowerShell 5.1, present on every supported Windows
// Server; the IIS, NetTCPIP and Storage modules ship for it.
const PowerShell = "powershell.exe"

//go:embed scripts/*.ps1
var scriptFS embed.FS

const scriptMark = "# sitekeeper:"

// Script returns the full text PowerShell runs for name: a first line naming
// the script, the shared prelude, the script, and the request loop.
func Script(name string) (string, error) {
	body, err := scriptFS.ReadFile("scripts/" + name)
	if err != nil {
		return "", fmt.Errorf("no embedded script %q", name)
	}
	prelude, _ := scriptFS.ReadFile("scripts/_prelude.ps1")
	loop, _ := scriptFS.ReadFile("scripts/_main.ps1")
	return scriptMark + name + "\n" + string(prelude) + "\n" + string(body) + "\n" + string(loop), nil
}

// ScriptArgs is the argument vector that runs one embedded script in a
// process of its own, as replay recordings hold calls. The script travels
// as -EncodedCommand (base64 of UTF-16LE, PowerShell's own format), so
// nothing is written to disk for another user to swap; the request goes on
// stdin as JSON, so no user text is ever on the command line. The agent
// itself runs scripts in its host (HostArgs).
func ScriptArgs(name string) ([]string, error) {
	text, err := Script(name)
	if err != nil {
		return nil, err
	}
	return []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-InputFormat", "Text", "-OutputFormat", "Text", "-EncodedCommand", encodeCommand(text)}, nil
}

func encodeCommand(s string) string {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeCommand(s string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%2 != 0 {
		return "", false
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u)), true
}

// DescribeArgs returns args with an -EncodedCommand value replaced by
// "{{name}}" (the embedded script it holds), for golden files, replay keys
// and logs.
func DescribeArgs(args []string) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if !strings.EqualFold(out[i], "-EncodedCommand") {
			continue
		}
		if text, ok := decodeCommand(out[i+1]); ok && strings.HasPrefix(text, scriptMark) {
			name, _, _ := strings.Cut(strings.TrimPrefix(text, scriptMark), "\n")
			out[i+1] = "{{" + name + "}}"
		}
	}
	return out
}

// scriptError is a script's typed failure, as _main.ps1 writes it.
type scriptError struct {
	Kind     string   `json:"kind"`
	HResults []string `json:"hresults"`
	Message  string   `json:"message"`
}

type envelope struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  *scriptError    `json:"error"`
	// Done is, for a batch, how many of its calls completed.
	Done int `json:"done"`
}

// HRESULTs that keep their IIS meaning.
const (
	hresultExists        = "0x800700B7" // ERROR_ALREADY_EXISTS (183)
	hresultNotFound      = "0x80070490" // ERROR_NOT_FOUND (1168)
	hresultInvalidObject = "0x800710D8" // site not run by W3SVC (FTP-only)
)

// ErrCertificateMissing: a binding's certificate is not in the node's
// LocalMachine store; a human must import it.
var ErrCertificateMissing = fmt.Errorf("certificate not in the LocalMachine store: %w", backend.ErrUnsupported)

// ErrFeatureMissing: a Windows feature Sitekeeper needs is not installed.
var ErrFeatureMissing = fmt.Errorf("windows feature missing: %w", backend.ErrUnsupported)

// asError maps a script failure onto the backend's typed errors.
func (e *scriptError) asError() error {
	var base error
	switch e.Kind {
	case "NotFound":
		base = backend.ErrNotFound
	case "Exists":
		base = backend.ErrExists
	case "BindingConflict":
		base = backend.ErrBindingConflict
	case "AddressInUse":
		base = backend.ErrAddressInUse
	case "LeaseInDoubt":
		base = backend.ErrLeaseInDoubt
	case "VolumeReserved":
		base = backend.ErrVolumeReserved
	case "CertificateMissing":
		base = ErrCertificateMissing
	case "ModuleMissing", "FeatureMissing":
		base = ErrFeatureMissing
	case "VolumeUnusable", "DhcpEnabled":
		base = backend.ErrUnsupported
	}
	if base == nil {
		for _, h := range e.HResults {
			switch strings.ToUpper(strings.TrimPrefix(h, "0x")) {
			case hresultExists[2:]:
				base = backend.ErrExists
			case hresultNotFound[2:]:
				base = backend.ErrNotFound
			case hresultInvalidObject[2:]:
				base = fmt.Errorf("IIS has no run state for this site (HRESULT %s: an FTP-only or non-HTTP site): %w", hresultInvalidObject, backend.ErrUnsupported)
			}
			if base != nil {
				break
			}
		}
	}
	msg := strings.TrimSpace(e.Message)
	if base == nil {
		if len(e.HResults) > 0 {
			return fmt.Errorf("%s (HRESULT %s)", msg, e.HResults[0])
		}
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %w", msg, base)
}

// runScript runs one embedded script with req as its JSON request and
// decodes the reply's result into resp (which may be nil).
func runScript(ctx context.Context, sc ScriptCaller, name string, req, resp any) error {
	stdin, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request for %s: %w", name, err)
	}
	reply, err := sc.Call(ctx, name, stdin)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := decodeReply(reply, resp); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// decodeReply reads a script's reply: its result into resp (which may be
// nil), or its failure as a typed error.
func decodeReply(stdout []byte, resp any) error {
	env, err := parseEnvelope(stdout)
	if err != nil {
		return err
	}
	if !env.OK {
		if env.Error == nil {
			return errors.New("failed without saying why")
		}
		return env.Error.asError()
	}
	if resp == nil || len(env.Result) == 0 {
		return nil
	}
	if err := json.Unmarshal(env.Result, resp); err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	return nil
}

// parseEnvelope reads a script's one JSON document. It accepts a UTF-8 BOM,
// CRLF or LF, and text before the document (a profile or module that printed
// a warning despite -NoProfile): the reply is the last line that starts with
// '{'.
func parseEnvelope(stdout []byte) (envelope, error) {
	var env envelope
	data := bytes.TrimPrefix(stdout, []byte("\xef\xbb\xbf"))
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(strings.TrimPrefix(lines[i], "\ufeff"))
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			return env, fmt.Errorf("reply is not JSON: %w", err)
		}
		return env, nil
	}
	return env, errors.New("no JSON reply on stdout")
}

// list is a JSON array that PowerShell may have unwrapped: ConvertTo-Json
// writes a one-element array as the element and an empty one as null.
type list[T any] []T

func (l *list[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*l = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var s []T
		err := json.Unmarshal(b, &s)
		*l = s
		return err
	default:
		var one T
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*l = list[T]{one}
		return nil
	}
}

// enum is a CIM enumeration as a string; a projection that lost its
// [string] cast gives the number, mapped through names.
type enum struct {
	s     string
	n     int
	isNum bool
}

func (e *enum) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &e.s)
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	e.isNum = true
	return json.Unmarshal(b, &e.n)
}

func (e enum) name(names []string) string {
	if !e.isNum {
		return e.s
	}
	if e.n >= 0 && e.n < len(names) {
		return names[e.n]
	}
	return fmt.Sprint(e.n)
}
