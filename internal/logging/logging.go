// Package logging builds the logr logger every command uses: one line per
// record, "time name message key=value ...", to the given writer.
package logging

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// New returns a logger writing to w; verbosity 0 shows Info and errors,
// 1 and more show V(1)... records.
func New(w io.Writer, verbosity int) logr.Logger {
	return logr.New(&sink{w: w, mu: &sync.Mutex{}, verbosity: verbosity})
}

type sink struct {
	w         io.Writer
	mu        *sync.Mutex
	verbosity int
	name      string
	values    []any
}

func (s *sink) Init(logr.RuntimeInfo)  {}
func (s *sink) Enabled(level int) bool { return level <= s.verbosity }

func (s *sink) Info(level int, msg string, kv ...any) { s.write("", msg, nil, kv) }

func (s *sink) Error(err error, msg string, kv ...any) { s.write("ERROR ", msg, err, kv) }

func (s *sink) write(prefix, msg string, err error, kv []any) {
	var b strings.Builder
	b.WriteString(time.Now().Format("15:04:05.000"))
	b.WriteByte(' ')
	if s.name != "" {
		b.WriteString(s.name + " ")
	}
	b.WriteString(prefix + msg)
	all := append(append([]any{}, s.values...), kv...)
	for i := 0; i+1 < len(all); i += 2 {
		fmt.Fprintf(&b, " %v=%s", all[i], quote(fmt.Sprint(all[i+1])))
	}
	if err != nil {
		fmt.Fprintf(&b, " error=%s", quote(err.Error()))
	}
	b.WriteByte('\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = io.WriteString(s.w, b.String())
}

func quote(v string) string {
	if v == "" || strings.ContainsAny(v, " \t\n\"=") {
		return fmt.Sprintf("%q", v)
	}
	return v
}

func (s *sink) WithValues(kv ...any) logr.LogSink {
	c := *s
	c.values = append(append([]any{}, s.values...), kv...)
	return &c
}

func (s *sink) WithName(name string) logr.LogSink {
	c := *s
	if c.name != "" {
		c.name += "/" + name
	} else {
		c.name = name
	}
	return &c
}
