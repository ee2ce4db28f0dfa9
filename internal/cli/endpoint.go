package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/atomicfile"
	"github.com/sitekeeper/sitekeeper/internal/ops"
	"github.com/sitekeeper/sitekeeper/internal/pki"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
)

// endpointFile is where `sitekeeper up` records its store endpoint, so
// that later commands find it without flags.
func endpointFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "sitekeeper", "endpoint"), nil
}

// recordEndpoint writes ep to the endpoint file and returns what puts
// back the file as it was (another up's endpoint, or none).
func recordEndpoint(ep string) (func(), error) {
	f, err := endpointFile()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return nil, err
	}
	before, readErr := os.ReadFile(f)
	if err := atomicfile.WriteFile(f, []byte(ep+"\n"), 0o600); err != nil {
		return nil, err
	}
	return func() {
		cur, err := os.ReadFile(f)
		if err != nil || strings.TrimSpace(string(cur)) != ep {
			return // another up wrote it since: leave theirs
		}
		if readErr == nil && len(before) > 0 {
			_ = atomicfile.WriteFile(f, before, 0o600)
			return
		}
		_ = os.Remove(f)
	}, nil
}

// endpoints resolves the store endpoints: --endpoints, then
// SITEKEEPER_ENDPOINTS, then the endpoint the last `up` recorded.
func (g *globalFlags) endpoints() ([]string, error) {
	v := g.endpointsFlag
	g.endpointsFrom = "--endpoints"
	if v == "" {
		v, g.endpointsFrom = os.Getenv("SITEKEEPER_ENDPOINTS"), "$SITEKEEPER_ENDPOINTS"
	}
	if v == "" {
		f, err := endpointFile()
		if err == nil {
			b, err := os.ReadFile(f)
			if err == nil {
				v, g.endpointsFrom = strings.TrimSpace(string(b)), "the endpoint the last `sitekeeper up` recorded in "+f
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	if v == "" {
		return nil, usagef("no store to talk to: start one with `sitekeeper up`, or pass --endpoints (or set SITEKEEPER_ENDPOINTS)")
	}
	var eps []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			if !strings.Contains(e, "://") {
				if g.tls.Enabled() {
					e = "https://" + e
				} else {
					e = "http://" + e
				}
			}
			eps = append(eps, e)
		}
	}
	return eps, nil
}

// connect opens the store and checks that it answers.
func (g *globalFlags) connect(ctx context.Context) (*etcdstore.Store, error) {
	eps, err := g.endpoints()
	if err != nil {
		return nil, err
	}
	if err := g.checkPlaintext(eps); err != nil {
		return nil, err
	}
	s, err := etcdstore.ConnectTLS(eps, g.tls, g.requestTimeout)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		hint := "is that store running?"
		if g.tls.Cert == "" && slices.ContainsFunc(eps, func(ep string) bool { return strings.HasPrefix(ep, "https://") }) {
			// A TLS store refuses a client without a certificate in the
			// handshake, which the client only sees as no answer.
			hint = "is that store running? A store made by `sitekeeper init` also needs this client's certificate: --etcd-cacert, --etcd-cert and --etcd-key"
		}
		return nil, unreachableError{fmt.Errorf("%w (the endpoint is from %s: %s)", err, g.endpointsFrom, hint)}
	}
	s.SetActor(g.actor())
	return s, nil
}

// checkPlaintext refuses to talk to a store other hosts reach without TLS
// and a client certificate: on a shared network the request (and the
// answer) could be read or changed on the way, and a store that takes it
// takes anyone's.
func (g *globalFlags) checkPlaintext(eps []string) error {
	if remote := g.plaintextRemote(eps); len(remote) > 0 && !g.insecure {
		return usagef("store endpoint %s (from %s) is not on this machine: talk to it with TLS and a client certificate (--etcd-cacert, --etcd-cert, --etcd-key; `sitekeeper init` and `certs operator` make them), or pass --insecure-plaintext for a lab", remote[0], g.endpointsFrom)
	}
	return nil
}

// plaintextRemote are the endpoints on other hosts this client would talk
// to without TLS and a client certificate.
func (g *globalFlags) plaintextRemote(eps []string) []string {
	var out []string
	for _, ep := range eps {
		host := ep
		plain := g.tls.CA == "" || g.tls.Cert == ""
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			host, plain = u.Host, plain || u.Scheme == "http"
		}
		if plain && !loopbackListen(host) {
			out = append(out, ep)
		}
	}
	return out
}

// actor is who runs the command, for the events its writes record: the
// name in its client certificate (an operator's, from `certs operator`),
// else user@host.
func (g *globalFlags) actor() string {
	if g.tls.Cert != "" {
		if c, err := pki.LoadCert(g.tls.Cert); err == nil && c.Subject.CommonName != "" {
			return c.Subject.CommonName
		}
	}
	return defaultFieldManager()
}

// unreachableError is a store that did not answer before the command sent
// anything: nothing was changed.
type unreachableError struct{ err error }

func (e unreachableError) Error() string { return e.err.Error() }
func (e unreachableError) Unwrap() error { return e.err }

// resolveNode finds node among the nodes the store has known (live or
// not), case-insensitively, or says which is closest.
func resolveNode(ctx context.Context, st *etcdstore.Store, node string) (string, error) {
	known, err := st.KnownNodes(ctx)
	if err != nil {
		return "", err
	}
	live, err := st.Nodes(ctx)
	if err != nil {
		return "", err
	}
	var names []string
	for n := range known {
		names = append(names, n)
	}
	for n := range live {
		if _, ok := known[n]; !ok {
			names = append(names, n)
		}
	}
	return ops.ResolveNode(node, names)
}

// isGroupKind reports whether a KIND argument names resource groups.
func isGroupKind(kind string) bool {
	switch strings.ToLower(kind) {
	case "group", "groups", "grp":
		return true
	}
	return false
}

// resolveObject finds what KIND NAME names: an object (case-insensitive
// name), or, for KIND group, a member of that group.
func resolveObject(ctx context.Context, st *etcdstore.Store, kindArg, name string) (v1alpha1.Ref, error) {
	if isGroupKind(kindArg) {
		return ops.GroupMember(ctx, st, name)
	}
	kind, ok := v1alpha1.ParseKind(kindArg)
	if !ok {
		return v1alpha1.Ref{}, usagef("unknown kind %q; use site, ip, vol or group", kindArg)
	}
	return ops.Resolve(ctx, st, v1alpha1.Ref{Kind: kind, Name: name})
}
