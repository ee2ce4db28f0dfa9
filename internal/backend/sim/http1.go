package sim

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The simulated sites answer HTTP/1.x themselves instead of through
// net/http's server: a node checked every few seconds keeps one connection
// open per site (as a load balancer does), and net/http holds a 4 KiB
// reader, a 4 KiB writer and a large goroutine stack on every idle one:
// 11 MB of a 1,000-group `up`'s live heap. A connection here holds a
// 512-byte reader and its goroutine between requests. Handlers are the
// same net/http ones (http.ServeContent, http.FileServer, http.Error).

const (
	// httpIdle is how long an idle connection is kept: IIS's default
	// connection timeout.
	httpIdle = 120 * time.Second
	// httpHeaderWait bounds the wait for a request's headers once it began.
	httpHeaderWait = 5 * time.Second
	// httpMaxHead bounds a request's line and headers, as net/http's
	// server does (IIS's default is 16 KiB per header, 64 KiB in all).
	httpMaxHead = 64 << 10
	// httpBuffered is the largest answer without a Content-Length that is
	// held to be sent with one; a larger one closes the connection at its
	// end instead.
	httpBuffered = 256 << 10
)

// serve accepts connections on l until it closes, each in a session of
// its own, closed with the listener.
func (l *listener) serve(session func(net.Conn)) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.track(c) {
			return
		}
		go func() {
			defer l.untrack(c)
			session(c)
		}()
	}
}

// track records c so that closing the listener closes it; false when the
// listener closed already (c is then closed).
func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		_ = c.Close()
		return false
	}
	l.conns[c] = true
	return true
}

func (l *listener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	_ = c.Close()
}

// httpSession answers the requests of one connection in turn.
func (n *Node) httpSession(l *listener, c net.Conn) {
	lim := &headLimit{conn: c, left: -1}
	br := bufio.NewReaderSize(lim, 512)
	for {
		_ = c.SetReadDeadline(time.Now().Add(httpIdle))
		if _, err := br.Peek(1); err != nil {
			return // closed, or idle too long
		}
		_ = c.SetReadDeadline(time.Now().Add(httpHeaderWait))
		lim.left = httpMaxHead + int64(br.Buffered())
		req, err := http.ReadRequest(br)
		lim.left = -1 // the body: as long as its length says
		switch {
		case errors.Is(err, errHeadTooLarge):
			refuse(c, http.StatusRequestHeaderFieldsTooLarge)
			return
		case err != nil:
			if !errors.Is(err, io.EOF) {
				refuse(c, http.StatusBadRequest)
			}
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		req.RemoteAddr = c.RemoteAddr().String()
		if tc, ok := c.(*tls.Conn); ok {
			st := tc.ConnectionState()
			req.TLS = &st
		}
		w := &responseWriter{conn: c, req: req, header: http.Header{}}
		n.serveHTTP(l.key, l.proto, w, req)
		if err := w.finish(); err != nil || w.close {
			return
		}
		// What the handler did not read of the body (GETs have none); a
		// longer rest ends the connection rather than being read as the
		// next request.
		if n, err := io.Copy(io.Discard, io.LimitReader(req.Body, 64<<10)); err != nil || n == 64<<10 {
			lingerClose(c)
			return
		}
		if req.Body.Close() != nil {
			return
		}
	}
}

var errHeadTooLarge = errors.New("request head too large")

// refuse answers a request that cannot be read with status and its text,
// and ends the connection.
func refuse(c net.Conn, status int) {
	body := http.StatusText(status) + "\n"
	_, _ = io.WriteString(c, "HTTP/1.1 "+strconv.Itoa(status)+" "+http.StatusText(status)+"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	lingerClose(c)
}

// lingerClose ends the sending side and reads what the client still
// sends for a moment before the connection is closed: closed with unread
// data, it would be reset, and the client could lose the answer (net/http
// does the same).
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 256<<10))
}

// headLimit reads the connection, at most left bytes while a request's
// head is read (left < 0: no limit).
type headLimit struct {
	conn net.Conn
	left int64
}

func (h *headLimit) Read(p []byte) (int, error) {
	if h.left < 0 {
		return h.conn.Read(p)
	}
	if h.left == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > h.left {
		p = p[:h.left]
	}
	n, err := h.conn.Read(p)
	h.left -= int64(n)
	return n, err
}

// responseWriter is http.ResponseWriter for one answer on a kept
// connection: an answer up to httpBuffered is held and sent with its head
// in one write (with its length); a larger one is streamed, with the
// length its handler gave or else ended by closing the connection.
type responseWriter struct {
	conn   net.Conn
	req    *http.Request
	header http.Header
	status int
	sent   bool // the status line and headers are out
	body   []byte
	close  bool
	err    error
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.err != nil {
		return 0, w.err
	}
	if !w.sent && len(w.body)+len(p) <= httpBuffered {
		// Held, also when the length is known: the head and a small
		// body then go out in one write (one segment, one syscall).
		w.body = append(w.body, p...)
		return len(p), nil
	}
	if !w.sent {
		if w.header.Get("Content-Length") == "" {
			w.close = true // the end of the answer is the end of the connection
		}
		w.sendHead()
		w.body = nil
	}
	if w.req.Method == http.MethodHead || w.err != nil {
		return len(p), w.err
	}
	return w.conn.Write(p)
}

// finish sends what was held.
func (w *responseWriter) finish() error {
	w.WriteHeader(http.StatusOK)
	if !w.sent {
		if w.header.Get("Content-Length") == "" && bodyAllowed(w.status) {
			w.header.Set("Content-Length", strconv.Itoa(len(w.body)))
		}
		w.sendHead()
	}
	return w.err
}

func (w *responseWriter) sendHead() {
	w.sent = true
	if w.req.Close {
		w.close = true
	}
	if w.close {
		w.header.Set("Connection", "close")
	} else if w.req.ProtoMajor == 1 && w.req.ProtoMinor == 0 {
		w.header.Set("Connection", "keep-alive")
	}
	if w.header.Get("Date") == "" {
		w.header.Set("Date", httpDate())
	}
	if !bodyAllowed(w.status) {
		w.header.Del("Content-Length")
	}
	// The head and what is held of the body, in one write.
	buf := make([]byte, 0, 256+len(w.body))
	buf = append(buf, "HTTP/1.1 "...)
	buf = strconv.AppendInt(buf, int64(w.status), 10)
	buf = append(buf, ' ')
	buf = append(buf, http.StatusText(w.status)...)
	buf = append(buf, "\r\n"...)
	for k, vs := range w.header {
		for _, v := range vs {
			// Values come from the handlers; a line break would
			// split the head, so it is dropped as net/http does.
			buf = append(buf, k...)
			buf = append(buf, ": "...)
			if strings.ContainsAny(v, "\r\n") {
				v = headerValue.Replace(v)
			}
			buf = append(buf, v...)
			buf = append(buf, "\r\n"...)
		}
	}
	buf = append(buf, "\r\n"...)
	if w.req.Method != http.MethodHead {
		buf = append(buf, w.body...)
	}
	_, w.err = w.conn.Write(buf)
}

var headerValue = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

// httpDate is the Date header's value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := lastDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	lastDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var lastDate atomic.Pointer[dateText]

// bodyAllowed is whether an answer with this status has a body (RFC 9110).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}
