package chaos

import (
	"io"
	"net"
	"sync"
	"time"
)

// freezer is a TCP proxy in front of the store that can stop passing bytes
// for a while, both ways, with the connections kept open: to a client it
// is a store that froze (a SIGSTOPped member, a hung disk), not one that
// went away.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	until  time.Time
}

func newFreezer(target string) (*freezer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &freezer{ln: ln, target: target}
	go f.serve()
	return f, nil
}

func (f *freezer) Addr() string { return f.ln.Addr().String() }

func (f *freezer) Close() error { return f.ln.Close() }

// Freeze holds every byte for d from now.
func (f *freezer) Freeze(d time.Duration) {
	f.mu.Lock()
	f.until = time.Now().Add(d)
	f.mu.Unlock()
}

func (f *freezer) wait() {
	for {
		f.mu.Lock()
		left := time.Until(f.until)
		f.mu.Unlock()
		if left <= 0 {
			return
		}
		time.Sleep(left)
	}
}

func (f *freezer) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", f.target)
			if err != nil {
				return
			}
			defer s.Close()
			done := make(chan struct{}, 2)
			go func() { f.pipe(s, c); done <- struct{}{} }()
			go func() { f.pipe(c, s); done <- struct{}{} }()
			<-done
		}()
	}
}

// pipe copies src to dst, each chunk waiting out a freeze first.
func (f *freezer) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.wait()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
