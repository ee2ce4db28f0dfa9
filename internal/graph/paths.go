package graph

import "strings"

// WinPath is a normalised Windows path: an upper-case drive letter and
// its components, compared case-insensitively as Windows does.
type WinPath struct {
	Drive string   // "E"
	Parts []string // lower-cased components
}

// ParseWinPath parses "E:\a\b", "e:/a/b" or "E:". It reports ok=false for
// a path that is not absolute or that contains "." or ".." components.
func ParseWinPath(p string) (WinPath, bool) {
	p = strings.ReplaceAll(p, "/", `\`)
	if len(p) < 2 || p[1] != ':' || !isLetter(p[0]) {
		return WinPath{}, false
	}
	w := WinPath{Drive: strings.ToUpper(p[:1])}
	rest := p[2:]
	if rest != "" && rest[0] != '\\' {
		return WinPath{}, false // "E:foo" is relative to the drive's cwd
	}
	for _, c := range strings.Split(rest, `\`) {
		switch c {
		case "":
			continue
		case ".", "..":
			return WinPath{}, false
		}
		w.Parts = append(w.Parts, strings.ToLower(c))
	}
	return w, true
}

// HasDotDot reports whether p has a "." or ".." component.
func HasDotDot(p string) bool {
	for _, c := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if c == ".." || c == "." {
			return true
		}
	}
	return false
}

// Within reports whether p is root or lies below it.
func (p WinPath) Within(root WinPath) bool {
	if p.Drive != root.Drive || len(p.Parts) < len(root.Parts) {
		return false
	}
	for i := range root.Parts {
		if p.Parts[i] != root.Parts[i] {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') }
