// Package sim is a simulated IIS that really serves: each started site
// listens on its bindings' loopback addresses and ports, HTTP and HTTPS serve
// files from the site's physical path (mapped under a root folder), FTP
// answers a 220 banner. It keeps IIS's rules and a node's: unique site IDs
// and names, one started site per ip:port:hostName, no start without the
// address, no content while the volume is offline, one live holder per
// address and per volume.
package sim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/atomicfile"
	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// World is the shared medium of the simulated nodes: the network (who holds
// which address) and the storage (who holds which volume, where its files
// live).
type World struct {
	writeMu    sync.Mutex
	saveMu     sync.Mutex
	saveQueued bool
	// saveTook is how long the last save's encoding took: the next save
	// waits ten times that, so saving the whole world stays a tenth of the
	// work however many sites it holds.
	saveTook  time.Duration
	closed    bool
	mu        sync.Mutex
	root      string
	log       logr.Logger
	nodes     map[string]*Node
	addrOwner map[string]string // ip -> node
	volOwner  map[string]string // volume id -> node
	volRoots  map[string]string // volume id -> mount root as declared
	// rootIndex maps each root, normalized (backslashes, lower case, no
	// trailing separator), to its volume id; nil when volRoots changed.
	rootIndex map[string]string
	certs     map[string]tls.Certificate
	// anyAddress lets sites bind any address the node holds, not only
	// loopback ones: the Linux backend puts real addresses on interfaces.
	anyAddress bool
	// seedPages writes an index page into a started site's empty folder.
	seedPages bool
	// latency is how long each backend call of a node takes ("" for every
	// node), as a slow PowerShell or a slow disk would.
	latency     map[string]time.Duration
	stepTimeout time.Duration
	static      staticFiles
}

// AllowAnyAddress lets the world's sites bind, and its nodes hold, any
// address; the caller (the Linux backend) manages the real interfaces.
func (w *World) AllowAnyAddress() { w.anyAddress = true }

// SetStepLatency makes every backend call of node (every node when node is
// "") take d, honouring its context's deadline. Health probes are requests
// to the sites, not management calls, and are not slowed.
func (w *World) SetStepLatency(node string, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.latency == nil {
		w.latency = map[string]time.Duration{}
	}
	w.latency[node] = d
}

// SetStepTimeout sets the deadline after which the agent cuts off a call
// of this world's nodes as hung (default 10 s, or 5 × the latency).
func (w *World) SetStepTimeout(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stepTimeout = d
}

func (w *World) latencyOf(node string) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d, ok := w.latency[node]; ok {
		return d
	}
	return w.latency[""]
}

// delay waits out node's latency, or until ctx ends.
func (w *World) delay(ctx context.Context, node string) error {
	return backend.Sleep(ctx, w.latencyOf(node))
}

// SeedIndexPages makes every site that starts, and every site whose folder
// changes, find an index page ("Hello from <site>") when its folder has
// none: a fresh demo serves something readable and a new simulated site
// answers its health checks. Content already there is never touched.
func (w *World) SeedIndexPages() { w.seedPages = true }

// seedIndex writes the index page of a site of node, when the world seeds
// pages and the site's folder is readable there (its volume online).
func (w *World) seedIndex(node, site, winPath string) {
	if !w.seedPages {
		return
	}
	dir, ok, err := w.hostPath(node, winPath)
	if err != nil || !ok {
		return
	}
	index := filepath.Join(dir, "index.html")
	if _, err := os.Stat(index); err == nil {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.log.V(1).Info("Cannot seed site content", "site", site, "dir", dir, "error", err.Error())
		return
	}
	if err := atomicfile.WriteFile(index, []byte("Hello from "+site+"\n"), 0o644); err != nil {
		w.log.V(1).Info("Cannot seed site content", "site", site, "dir", dir, "error", err.Error())
	}
}

// NewWorld returns a world whose files live under root, restoring the
// state a previous process left there.
func NewWorld(root string, log logr.Logger) *World {
	w := &World{
		root: root, log: log,
		nodes:     map[string]*Node{},
		addrOwner: map[string]string{},
		volOwner:  map[string]string{},
		volRoots:  map[string]string{},
		certs:     map[string]tls.Certificate{},
	}
	w.restore()
	return w
}

// Root returns the folder holding the world's files.
func (w *World) Root() string { return w.root }

// Node returns the simulated node named name, creating it powered on.
func (w *World) Node(name string) *Node {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[name]; ok {
		return n
	}
	n := &Node{w: w, name: name, sites: map[int64]*site{}, addrs: map[string]backend.Address{}, listeners: map[string]*listener{}}
	n.powered.Store(true)
	w.nodes[name] = n
	return n
}

// AddressHolders returns, for every address some node holds, the nodes
// that hold it, read from each node's own table (not the world's owner
// index): a fault run's checker samples it, and an address on two nodes
// would show as two holders.
func (w *World) AddressHolders() map[string][]string {
	w.mu.Lock()
	nodes := make([]*Node, 0, len(w.nodes))
	for _, n := range w.nodes {
		nodes = append(nodes, n)
	}
	w.mu.Unlock()
	out := map[string][]string{}
	for _, n := range nodes {
		n.mu.Lock()
		if n.powered.Load() {
			for ip := range n.addrs {
				out[ip] = append(out[ip], n.name)
			}
		}
		n.mu.Unlock()
	}
	return out
}

// VolumeDir returns the folder holding a volume's files; a test or the demo
// writes site content there.
func (w *World) VolumeDir(id backend.VolumeID) string {
	return filepath.Join(w.root, "volumes", sanitize(id.String()))
}

// LocalDir returns the folder holding a node's local (unprotected) drive.
func (w *World) LocalDir(node, drive string) string {
	return filepath.Join(w.root, "nodes", sanitize(node), strings.ToUpper(drive))
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// liveOwner returns the node holding key in owners, if that node is powered.
// A powered-off node's claims lapse: its reservation and its ARP entry die
// with it. Caller holds w.mu.
func (w *World) liveOwner(owners map[string]string, key string) (string, bool) {
	n, ok := owners[key]
	if !ok {
		return "", false
	}
	if node := w.nodes[n]; node == nil || !node.isPowered() {
		delete(owners, key)
		return "", false
	}
	return n, true
}

// certificate returns a self-signed certificate standing in for the one
// with thumbprint, generated once.
func (w *World) certificate(thumbprint, host string) (tls.Certificate, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := strings.ToUpper(thumbprint)
	if c, ok := w.certs[key]; ok {
		return c, nil
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	names := []string{"localhost"}
	if host != "" {
		names = append(names, host)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "sitekeeper-sim " + key},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return tls.Certificate{}, err
	}
	c := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	w.certs[key] = c
	return c, nil
}

// hostPath maps a Windows path on node to a folder of the world: on a
// protected volume's folder when a volume is mounted there (ok=false when
// that volume is not online on node), else on the node's local drive.
func (w *World) hostPath(node, winPath string) (string, bool, error) {
	p := strings.ReplaceAll(winPath, "/", `\`)
	if len(p) < 2 || p[1] != ':' {
		return "", false, fmt.Errorf("path %q is not absolute", winPath)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rootIndex == nil {
		w.rootIndex = make(map[string]string, len(w.volRoots))
		for id, root := range w.volRoots {
			w.rootIndex[strings.ToLower(strings.TrimRight(strings.ReplaceAll(root, "/", `\`), `\`))] = id
		}
	}
	// The longest root that is p or a folder above it: walk p up.
	bestID, bestRoot := "", ""
	for c := strings.TrimRight(p, `\`); c != ""; {
		if id, ok := w.rootIndex[strings.ToLower(c)]; ok {
			bestID, bestRoot = id, c
			break
		}
		i := strings.LastIndexByte(c, '\\')
		if i < 0 {
			break
		}
		c = c[:i]
	}
	var base, rest string
	if bestID != "" {
		if owner, ok := w.liveOwner(w.volOwner, bestID); !ok || owner != node {
			return "", false, nil
		}
		base = filepath.Join(w.root, "volumes", sanitize(bestID))
		rest = p[len(bestRoot):]
	} else if strings.EqualFold(p[:1], "C") {
		base = filepath.Join(w.root, "nodes", sanitize(node), "C")
		rest = p[2:]
	} else {
		// Any other drive is protected storage that this node does not hold.
		return "", false, nil
	}
	parts := strings.FieldsFunc(rest, func(r rune) bool { return r == '\\' })
	for _, c := range parts {
		if c == ".." || c == "." {
			return "", false, fmt.Errorf("path %q escapes its volume", winPath)
		}
	}
	return filepath.Join(append([]string{base}, parts...)...), true, nil
}
