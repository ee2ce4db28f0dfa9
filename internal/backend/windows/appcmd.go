package windows

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/windows/iisconfig"
	"github.com/sitekeeper/sitekeeper/internal/diag"
)

// appcmd is the second read path: `appcmd list site /config:* /xml` is
// stable and not localised. The backend lists through it when the
// PowerShell path says IIS management is missing, and CrossCheck compares
// the two.

// appcmdPath is where IIS installs appcmd; it is not on PATH.
const appcmdPath = `C:\Windows\System32\inetsrv\appcmd.exe`

// AppcmdListArgs is the argv that lists every site with its whole
// configuration as XML.
func AppcmdListArgs() []string { return []string{"list", "site", "/config:*", "/xml"} }

// AppcmdError is an `ERROR ( [hresult:X, ]message:M )` line, written by
// appcmd on stdout (stderr stays empty), with the process's exit code.
type AppcmdError struct {
	Exit    int
	HResult string
	Message string
}

func (e *AppcmdError) Error() string {
	s := fmt.Sprintf("appcmd exited %d: %s", e.Exit, e.Message)
	if e.HResult != "" {
		s += " (HRESULT 0x" + e.HResult + ")"
	}
	return s
}

// Unwrap keeps IIS's meaning of the exit code: 183 duplicate, 1168 not
// found, 50 wrong identifier for the verb.
func (e *AppcmdError) Unwrap() error {
	switch {
	case e.Exit == 183:
		return backend.ErrExists
	case e.Exit == 1168:
		return backend.ErrNotFound
	case e.Exit == 50, strings.EqualFold(e.HResult, hresultInvalidObject[2:]):
		return backend.ErrUnsupported
	}
	return nil
}

var appcmdErrorRE = regexp.MustCompile(`(?s)ERROR \(\s*(?:hresult:([0-9A-Fa-f]{8}),\s*)?message:(.*?)\s*\)\s*$`)

// ParseAppcmdError finds appcmd's ERROR line in stdout; the message may span
// lines and is returned with its whitespace folded.
func ParseAppcmdError(stdout []byte, exit int) (*AppcmdError, bool) {
	text := strings.TrimPrefix(string(stdout), "\ufeff")
	i := strings.Index(text, "ERROR (")
	if i < 0 {
		return nil, false
	}
	m := appcmdErrorRE.FindStringSubmatch(strings.TrimSpace(text[i:]))
	if m == nil {
		return &AppcmdError{Exit: exit, Message: strings.Join(strings.Fields(text[i:]), " ")}, true
	}
	return &AppcmdError{Exit: exit, HResult: strings.ToUpper(m[1]), Message: strings.Join(strings.Fields(m[2]), " ")}, true
}

// SiteLine is one line of `appcmd list site` text output.
type SiteLine struct {
	Name     string
	ID       int64
	Bindings []backend.Binding
	State    backend.SiteState
}

var siteLineRE = regexp.MustCompile(`^SITE "(.*)" \((.*)\)$`)

// ParseSiteLines reads `appcmd list site` text output. bindings can be
// empty or hold commas inside IPv6 brackets, so id is read from the left and
// state from the right, as appcmd prints them. CRLF or LF, BOM or not; an
// ERROR line is returned as an *AppcmdError.
func ParseSiteLines(stdout []byte, exit int) ([]SiteLine, error) {
	if e, ok := ParseAppcmdError(stdout, exit); ok {
		return nil, e
	}
	var out []SiteLine
	text := strings.TrimPrefix(string(stdout), "\ufeff")
	for n, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		m := siteLineRE.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("appcmd list site line %d: not a SITE line: %q", n+1, diag.Clip(line))
		}
		body := m[2]
		idPart, rest, ok := strings.Cut(body, ",bindings:")
		st := strings.LastIndex(rest, ",state:")
		if !ok || st < 0 || !strings.HasPrefix(idPart, "id:") {
			return nil, fmt.Errorf("appcmd list site line %d: want (id:N,bindings:...,state:S): %q", n+1, diag.Clip(line))
		}
		id, err := strconv.ParseInt(strings.TrimPrefix(idPart, "id:"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("appcmd list site line %d: bad id: %w", n+1, err)
		}
		sl := SiteLine{Name: m[1], ID: id, State: runState(rest[st+len(",state:"):])}
		if bs := rest[:st]; bs != "" {
			for _, one := range splitBindings(bs) {
				proto, info, _ := strings.Cut(one, "/")
				b, err := iisconfig.ParseBinding(proto, info)
				if err != nil {
					return nil, fmt.Errorf("appcmd list site line %d: %w", n+1, err)
				}
				sl.Bindings = append(sl.Bindings, b)
			}
		}
		out = append(out, sl)
	}
	return out, nil
}

// splitBindings splits appcmd's comma-joined bindings, keeping commas
// inside [IPv6] brackets.
func splitBindings(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// ParseAppcmdSites reads `appcmd list site /config:* /xml`: each <SITE>
// carries the run state, its <site> child the configuration.
func ParseAppcmdSites(stdout []byte, exit int) ([]backend.Site, error) {
	if e, ok := ParseAppcmdError(stdout, exit); ok {
		return nil, e
	}
	data := bytes.TrimPrefix(stdout, []byte("\xef\xbb\xbf"))
	states := map[string]backend.SiteState{}
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("appcmd xml: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "SITE" {
			var name, state string
			for _, a := range se.Attr {
				switch a.Name.Local {
				case "SITE.NAME":
					name = a.Value
				case "state":
					state = a.Value
				}
			}
			states[name] = runState(state)
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil // no site at all: appcmd may print nothing
	}
	cfgs, err := iisconfig.ParseSites(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("appcmd xml: %w", err)
	}
	out := make([]backend.Site, 0, len(cfgs))
	for _, c := range cfgs {
		st, ok := states[c.Name]
		if !ok {
			st = backend.SiteUnknown
		}
		out = append(out, backend.Site{SiteConfig: c.SiteConfig, State: st})
	}
	return out, nil
}

// listSitesAppcmd lists sites through appcmd.
func (b *Backend) listSitesAppcmd(ctx context.Context) ([]backend.Site, error) {
	stdout, _, exit, err := b.run.Run(ctx, appcmdPath, AppcmdListArgs(), nil)
	if err != nil {
		return nil, err
	}
	sites, err := ParseAppcmdSites(stdout, exit)
	if err == nil && exit != 0 {
		err = fmt.Errorf("appcmd list site exited %d", exit)
	}
	return sites, err
}

// CrossCheck lists sites through PowerShell and through appcmd and returns
// every difference in configuration or state, one line each. HTTP.sys
// certificates are not in appcmd's view and are left out.
func (b *Backend) CrossCheck(ctx context.Context) ([]string, error) {
	ps, err := b.ListSites(ctx)
	if err != nil {
		return nil, err
	}
	ac, err := b.listSitesAppcmd(ctx)
	if err != nil {
		return nil, fmt.Errorf("cross-check through appcmd: %w", err)
	}
	return compareListings(ps, ac), nil
}

func compareListings(ps, ac []backend.Site) []string {
	norm := func(s backend.Site) string {
		var bs []string
		for _, b := range s.Bindings {
			bs = append(bs, b.Protocol+" "+strings.ToLower(b.Endpoint()))
		}
		return fmt.Sprintf("id %d, bindings [%s], path %s, pool %s, serverAutoStart %t, state %s", s.ID, strings.Join(bs, " "), s.PhysicalPath, s.AppPool, s.AutoStart, s.State)
	}
	byName := map[string]backend.Site{}
	for _, s := range ac {
		byName[strings.ToLower(s.Name)] = s
	}
	var diffs []string
	for _, s := range ps {
		a, ok := byName[strings.ToLower(s.Name)]
		delete(byName, strings.ToLower(s.Name))
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("site %q: listed by PowerShell, not by appcmd", s.Name))
		case norm(s) != norm(a):
			diffs = append(diffs, fmt.Sprintf("site %q: PowerShell says %s; appcmd says %s", s.Name, norm(s), norm(a)))
		}
	}
	for _, a := range ac {
		if _, left := byName[strings.ToLower(a.Name)]; left {
			diffs = append(diffs, fmt.Sprintf("site %q: listed by appcmd, not by PowerShell", a.Name))
		}
	}
	return diffs
}
