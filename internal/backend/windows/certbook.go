package windows

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sitekeeper/sitekeeper/internal/atomicfile"
	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// certBook remembers which certificate each https binding is served with.
// HTTP.sys holds a binding's certificate only while the site is up (it is
// created on bring-up and removed on take-down), so a standby's IIS cannot
// tell; without the book every stopped https site would look drifted.
type certBook struct {
	mu   sync.Mutex
	path string // empty: memory only
	// sites maps a lower-cased site name to its https bindings by endpoint.
	sites map[string]map[string]backend.Binding
}

func loadCertBook(path string) (*certBook, error) {
	cb := &certBook{path: path, sites: map[string]map[string]backend.Binding{}}
	if path == "" {
		return cb, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cb, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &cb.sites); err != nil {
		// Torn or damaged: start with an empty book, kept aside for a
		// person to look at. A stopped site's certificates are then read
		// again from its desired bindings when it is next brought up.
		cb.sites = map[string]map[string]backend.Binding{}
		bad := path + ".damaged"
		if rerr := os.Rename(path, bad); rerr != nil {
			return nil, fmt.Errorf("%s is damaged (%v) and could not be moved aside: %w", path, err, rerr)
		}
		return cb, &damagedBookError{path: path, keptAs: bad, err: err}
	}
	return cb, nil
}

// damagedBookError says the certificate book was damaged and set aside:
// the agent starts with an empty one.
type damagedBookError struct {
	path, keptAs string
	err          error
}

func (e *damagedBookError) Error() string {
	return fmt.Sprintf("%s is damaged (%v); kept as %s, starting with an empty certificate book", e.path, e.err, e.keptAs)
}

func endpointKey(b backend.Binding) string { return b.Protocol + " " + strings.ToLower(b.Endpoint()) }

func (cb *certBook) record(site string, add, remove []backend.Binding) error {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	m := cb.sites[strings.ToLower(site)]
	if m == nil {
		m = map[string]backend.Binding{}
		cb.sites[strings.ToLower(site)] = m
	}
	for _, b := range remove {
		delete(m, endpointKey(b))
	}
	for _, b := range add {
		if b.Protocol == "https" && b.CertHash != "" {
			m[endpointKey(b)] = b
		}
	}
	return cb.saveLocked()
}

func (cb *certBook) rename(from, to string) error {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if m, ok := cb.sites[strings.ToLower(from)]; ok {
		delete(cb.sites, strings.ToLower(from))
		cb.sites[strings.ToLower(to)] = m
	}
	return cb.saveLocked()
}

func (cb *certBook) forget(site string) error {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	delete(cb.sites, strings.ToLower(site))
	return cb.saveLocked()
}

func (cb *certBook) bindings(site string) []backend.Binding {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	var out []backend.Binding
	for _, b := range cb.sites[strings.ToLower(site)] {
		out = append(out, b)
	}
	backend.SortBindings(out)
	return out
}

// fill gives a site that is not running the certificates its https bindings
// are served with; a running site shows HTTP.sys's own, so a certificate
// binding lost on the active node is drift.
func (cb *certBook) fill(sites []backend.Site) {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	for i := range sites {
		s := &sites[i]
		if s.State == backend.SiteStarted {
			continue
		}
		m := cb.sites[strings.ToLower(s.Name)]
		for j := range s.Bindings {
			b := &s.Bindings[j]
			if rec, ok := m[endpointKey(*b)]; ok && b.Protocol == "https" && b.CertHash == "" {
				b.CertHash, b.CertStore = rec.CertHash, rec.CertStore
			}
		}
		backend.SortBindings(s.Bindings)
	}
}

func (cb *certBook) saveLocked() error {
	if cb.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(cb.sites, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cb.path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(cb.path, data, 0o600)
}
