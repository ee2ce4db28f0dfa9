package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/atomicfile"
	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// The simulated machines outlive the process that simulates them, as real
// nodes outlive their agent: IIS's configuration, run state and addresses
// are saved under the world's root after every change and restored (sockets
// reopened) by NewWorld. Killing `sitekeeper up` is an agent crash, not a
// power loss.

type savedSite struct {
	Config  backend.SiteConfig `json:"config"`
	Started bool               `json:"started"`
}

type savedNode struct {
	Powered bool              `json:"powered"`
	Sites   []savedSite       `json:"sites"`
	Addrs   []backend.Address `json:"addresses"`
}

type savedWorld struct {
	Nodes     map[string]savedNode `json:"nodes"`
	AddrOwner map[string]string    `json:"addressOwners"`
	VolOwner  map[string]string    `json:"volumeOwners"`
	VolRoots  map[string]string    `json:"volumeRoots"`
}

func (w *World) statePath() string { return filepath.Join(w.root, "state.json") }

// persist schedules a save of the world shortly after a change, so that a
// burst of changes is written once. A save encodes every site: with
// thousands of sites saving every 20 ms was a fifth of a failover's CPU, so
// the wait grows to ten times the last save's encoding.
func (w *World) persist() {
	if w.root == "" {
		return
	}
	w.saveMu.Lock()
	defer w.saveMu.Unlock()
	if w.saveQueued || w.closed {
		return
	}
	w.saveQueued = true
	time.AfterFunc(max(saveDelay, 10*w.saveTook), func() {
		w.saveMu.Lock()
		w.saveQueued = false
		w.saveMu.Unlock()
		w.Save()
	})
}

const saveDelay = 20 * time.Millisecond

// Save writes the world now. It takes the locks one at a time, never the
// world's and a node's together, so it cannot deadlock with a node method.
func (w *World) Save() {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	w.saveMu.Lock()
	closed := w.closed
	w.saveMu.Unlock()
	if closed {
		return
	}
	// Only the encoding is timed: it is the CPU a save costs, and it grows
	// with the sites. The write's fsync is a wait, not work, and counting
	// it delayed saves on a slow disk by a tenth of a second or more, so
	// a kill -9 right after a change found the change unsaved.
	start := time.Now()
	w.mu.Lock()
	nodes := make(map[string]*Node, len(w.nodes))
	for k, v := range w.nodes {
		nodes[k] = v
	}
	sw := savedWorld{Nodes: map[string]savedNode{}, AddrOwner: clone(w.addrOwner), VolOwner: clone(w.volOwner), VolRoots: clone(w.volRoots)}
	w.mu.Unlock()
	for name, n := range nodes {
		n.mu.Lock()
		sn := savedNode{Powered: n.powered.Load()}
		for _, s := range n.sites {
			sn.Sites = append(sn.Sites, savedSite{Config: s.cfg, Started: s.started})
		}
		for _, a := range n.addrs {
			sn.Addrs = append(sn.Addrs, a)
		}
		n.mu.Unlock()
		sw.Nodes[name] = sn
	}
	b, err := json.Marshal(sw)
	w.saveMu.Lock()
	w.saveTook = time.Since(start)
	w.saveMu.Unlock()
	if err != nil {
		w.log.Error(err, "Could not encode the simulated world's state")
		return
	}
	if err := os.MkdirAll(w.root, 0o700); err != nil {
		w.log.Error(err, "Could not save the simulated world's state", "path", w.statePath())
		return
	}
	if err := atomicfile.WriteFile(w.statePath(), b, 0o600); err != nil {
		w.log.Error(err, "Could not save the simulated world's state", "path", w.statePath())
	}
}

func clone(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// restore loads a saved world and reopens the sockets of started sites.
func (w *World) restore() {
	b, err := os.ReadFile(w.statePath())
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			w.log.Error(err, "Could not read the simulated world's state; starting from an empty world", "path", w.statePath())
		}
		return
	}
	var sw savedWorld
	if err := json.Unmarshal(b, &sw); err != nil {
		// Torn or damaged (an older version wrote it without sync): the
		// nodes start empty and the agents rebuild them from the store.
		bad := w.statePath() + ".damaged"
		rerr := os.Rename(w.statePath(), bad)
		w.log.Error(err, "The simulated world's state is damaged; starting from an empty world, which the agents rebuild from the store", "path", w.statePath(), "keptAs", bad, "renameError", fmt.Sprint(rerr))
		return
	}
	w.addrOwner, w.volOwner, w.volRoots = orEmpty(sw.AddrOwner), orEmpty(sw.VolOwner), orEmpty(sw.VolRoots)
	w.rootIndex = nil
	for name, sn := range sw.Nodes {
		n := &Node{w: w, name: name, sites: map[int64]*site{}, addrs: map[string]backend.Address{}, listeners: map[string]*listener{}}
		n.powered.Store(sn.Powered)
		for _, s := range sn.Sites {
			n.sites[s.Config.ID] = &site{cfg: s.Config, started: s.Started}
		}
		for _, a := range sn.Addrs {
			n.addrs[a.IP()] = a
		}
		w.nodes[name] = n
	}
	for _, n := range w.nodes {
		n.mu.Lock()
		if err := n.syncListenersLocked(); err != nil {
			w.log.Info("Could not reopen a listener after restart", "node", n.name, "error", err.Error())
		}
		n.mu.Unlock()
	}
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Detach closes every socket of the world's nodes and saves their state, as
// a simulator process does when it stops: the machines are frozen as they
// are, and a later NewWorld on the same root picks them up.
func (w *World) Detach() {
	w.mu.Lock()
	nodes := make([]*Node, 0, len(w.nodes))
	for _, n := range w.nodes {
		nodes = append(nodes, n)
	}
	w.mu.Unlock()
	for _, n := range nodes {
		n.mu.Lock()
		for k, l := range n.listeners {
			l.close()
			delete(n.listeners, k)
		}
		n.mu.Unlock()
	}
	w.Save()
}

// Close stops saving (after a last save), for a world whose folder is about
// to be removed.
func (w *World) Close() {
	w.saveMu.Lock()
	w.closed = true
	w.saveMu.Unlock()
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
}
