// Package console is the HTTP side of a Sitekeeper process, on one
// listener: /metrics for Prometheus, /healthz and /readyz for load
// balancers and service managers, and the dashboard — every group with
// where it runs and which standbys could take it, every node, the sources,
// the recent events — kept live with server-sent events, with the
// switchover, suspend, resume and clear-failures actions of the CLI
// (internal/ops, the same rules). Every asset is embedded: the page works
// with no network but the one to this process.
package console

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/clusterview"
	"github.com/sitekeeper/sitekeeper/internal/metrics"
	"github.com/sitekeeper/sitekeeper/internal/ops"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

//go:embed assets
var assets embed.FS

// Store is what the console reads and the actions write.
type Store interface {
	clusterview.Reader
	ops.Store
	Changes(ctx context.Context, families ...store.Family) <-chan struct{}
	Sources(ctx context.Context) (map[string]store.Source, error)
	Events(ctx context.Context) ([]store.Event, int64, error)
	WatchEvents(ctx context.Context, rev int64) <-chan store.Event
}

// Roles, as the cluster CA writes them in a certificate's Organization.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
	RoleNode     = "node"
)

// Options configure a Server.
type Options struct {
	Store Store
	// Leases says how long ago each node renewed its lease.
	Leases  func(context.Context) map[string]time.Duration
	Metrics *metrics.Set
	// Ready is /readyz: whether this process's node(s) hold their lease,
	// and why not.
	Ready func() (bool, string)
	// Anonymous is the role of a request without a verified client
	// certificate: "" refuses it (a listener others reach), RoleViewer
	// lets it read (an agent on loopback: local users are not
	// administrators), RoleAdmin lets it act (`up`, the single-process
	// development cluster on loopback).
	Anonymous string
	// AnonymousName names such a caller in events (the user running the
	// process).
	AnonymousName string
	// TLS, when set, serves https; client certificates it verifies carry
	// their role.
	TLS *tls.Config
	// Title names the process on the page ("sitekeeper up", "node1").
	Title string
	Log   logr.Logger
}

// Server is one process's HTTP listener.
type Server struct {
	opts Options
	live *live
	page *template.Template
	mux  *http.ServeMux
}

// New assembles the handlers; Serve or Handler runs them.
func New(o Options) *Server {
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	s := &Server{opts: o, live: newLive(o.Store, o.Leases, o.Log), mux: http.NewServeMux()}
	s.page = template.Must(template.ParseFS(assets, "assets/index.html"))
	o.Metrics.Register(&stateCollector{live: s.live})
	static, _ := fs.Sub(assets, "assets")
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.need(RoleViewer, o.Metrics.Handler().ServeHTTP))
	s.mux.Handle("GET /{$}", s.need(RoleViewer, s.index))
	s.mux.Handle("GET /static/", s.need(RoleViewer, http.StripPrefix("/static/", http.FileServerFS(static)).ServeHTTP))
	s.mux.Handle("GET /api/state", s.need(RoleViewer, s.state))
	s.mux.Handle("GET /api/stream", s.need(RoleViewer, s.stream))
	s.mux.Handle("POST /api/groups/{group}/{action}", s.need(RoleOperator, s.act))
	return s
}

// Handler is the whole listener's handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve runs the listener on ln and the live view until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	if s.opts.TLS != nil {
		srv.TLSConfig = s.opts.TLS
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	go s.live.run(ctx)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve the dashboard on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Caller is who sent a request, and what they may do.
type Caller struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// CanAct says whether the caller may switch over, suspend, resume and
// clear failures.
func (c Caller) CanAct() bool {
	return c.Role == RoleOperator || c.Role == RoleAdmin || c.Role == RoleNode
}

var rank = map[string]int{RoleViewer: 1, RoleOperator: 2, RoleNode: 2, RoleAdmin: 3}

// caller is the request's verified certificate's name and role, or the
// anonymous role.
func (s *Server) caller(r *http.Request) (Caller, bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cert := r.TLS.VerifiedChains[0][0]
		role := ""
		for _, o := range cert.Subject.Organization {
			if rank[o] > rank[role] {
				role = o
			}
		}
		return Caller{Name: cert.Subject.CommonName, Role: role}, role != ""
	}
	if s.opts.Anonymous == "" {
		return Caller{}, false
	}
	name := s.opts.AnonymousName
	if name == "" {
		name = "local"
	}
	return Caller{Name: name, Role: s.opts.Anonymous}, true
}

// need refuses a caller below role.
func (s *Server) need(role string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.caller(r)
		switch {
		case !ok:
			httpError(w, http.StatusUnauthorized, "this listener needs a client certificate from the cluster CA: make one with 'sitekeeper certs operator NAME --role viewer|operator|admin' and import it into the browser (or give it to Prometheus)")
		case rank[c.Role] < rank[role]:
			httpError(w, http.StatusForbidden, fmt.Sprintf("%s has the role %s; this needs %s or above (sitekeeper certs operator %s --role %s)", c.Name, orNone(c.Role), role, c.Name, role))
		default:
			h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
		}
	})
}

type callerKey struct{}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Ready == nil {
		fmt.Fprintln(w, "ok")
		return
	}
	if ok, why := s.opts.Ready(); !ok {
		http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok: holds its lease")
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	c := r.Context().Value(callerKey{}).(Caller)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'")
	if err := s.page.Execute(w, map[string]any{"Title": s.opts.Title, "Caller": c, "CanAct": c.CanAct()}); err != nil {
		s.opts.Log.Error(err, "Dashboard page")
	}
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) {
	_, b, _ := s.live.current(r.Context(), false)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// stream sends the state at once and again at every change (server-sent
// events): the browser opens it once and waits; nothing polls.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	s.live.subscribe(true)
	defer s.live.subscribe(false)
	ctx := r.Context()
	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
	var sent []byte
	for {
		_, b, changed := s.live.current(ctx, false)
		if b != nil && string(b) != string(sent) {
			fmt.Fprintf(w, "event: state\ndata: %s\n\n", b)
			fl.Flush()
			sent = b
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		}
	}
}

// actionResult is an action's answer. Commit, when set, is the line to
// commit instead: the group belongs to a manifest source.
type actionResult struct {
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
	Commit  string `json:"commit,omitempty"`
}

// act runs an action on a group. It takes JSON with a header a cross-site
// form cannot send, so a page elsewhere cannot use a browser's client
// certificate to act.
func (s *Server) act(w http.ResponseWriter, r *http.Request) {
	c := r.Context().Value(callerKey{}).(Caller)
	if r.Header.Get("X-Sitekeeper-Action") != "1" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		httpError(w, http.StatusBadRequest, "actions take JSON with the header X-Sitekeeper-Action: 1")
		return
	}
	var body struct {
		Node string `json:"node"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		httpError(w, http.StatusBadRequest, "read the request: "+err.Error())
		return
	}
	group, action := r.PathValue("group"), r.PathValue("action")
	snap, _, _ := s.live.current(r.Context(), false)
	member, ok := memberOf(snap, group)
	if !ok {
		httpError(w, http.StatusNotFound, fmt.Sprintf("group %q: not found", group))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	st := actorStore{Store: s.opts.Store, by: c.Name + " (dashboard)"}
	var msg string
	var err error
	switch action {
	case "switchover":
		if body.Node == "" {
			httpError(w, http.StatusBadRequest, "switchover needs the node to move the group to")
			return
		}
		_, err = ops.Switchover(ctx, st, member, body.Node, false)
		msg = fmt.Sprintf("group %s: switchover to %s requested", group, body.Node)
	case "suspend":
		err = ops.SetSuspended(ctx, st, ops.Target{Kind: member.Kind, Name: member.Name}, true)
		msg = fmt.Sprintf("group %s suspended", group)
	case "resume":
		err = ops.ResumeGroup(ctx, st, member)
		msg = fmt.Sprintf("group %s resumed", group)
	case "clear-failures":
		var had bool
		_, had, err = ops.ClearFailures(ctx, st, member)
		msg = fmt.Sprintf("group %s: failure history cleared", group)
		if err == nil && !had {
			msg = fmt.Sprintf("group %s: no failures recorded", group)
		}
	default:
		httpError(w, http.StatusNotFound, fmt.Sprintf("no action %q: use switchover, suspend, resume or clear-failures", action))
		return
	}
	var managed *ops.ManagedError
	var notIn *ops.NotInPlacementError
	var notReady *ops.NodeNotReadyError
	switch {
	case errors.As(err, &managed):
		writeJSON(w, http.StatusConflict, actionResult{Error: fmt.Sprintf("group %s belongs to source %s: commit the change there, or the next change set moves it back", group, managed.Source), Commit: managed.CommitLine()})
	case errors.As(err, &notIn), errors.As(err, &notReady):
		writeJSON(w, http.StatusConflict, actionResult{Error: err.Error()})
	case err != nil:
		s.opts.Log.Info("Dashboard action failed", "caller", c.Name, "group", group, "action", action, "error", err.Error())
		writeJSON(w, http.StatusInternalServerError, actionResult{Error: err.Error()})
	default:
		s.opts.Log.Info("Dashboard action", "caller", c.Name, "group", group, "action", action, "node", body.Node)
		s.live.markDirty()
		s.live.poke()
		writeJSON(w, http.StatusOK, actionResult{Message: msg})
	}
}

// members are group's members, its site first (the object a person
// names: `sitekeeper suspend site web1`).
func members(snap *Snapshot, group string) []v1alpha1.Ref {
	if snap == nil {
		return nil
	}
	i := slices.IndexFunc(snap.Groups, func(g Group) bool { return g.Name == group })
	if i < 0 {
		return nil
	}
	var refs []v1alpha1.Ref
	for _, m := range snap.Groups[i].Members {
		kind, name, _ := strings.Cut(m, "/")
		refs = append(refs, v1alpha1.Ref{Kind: kind, Name: name})
	}
	slices.SortStableFunc(refs, func(a, b v1alpha1.Ref) int {
		return boolOrder(a.Kind != v1alpha1.KindIISSite) - boolOrder(b.Kind != v1alpha1.KindIISSite)
	})
	return refs
}

func boolOrder(b bool) int {
	if b {
		return 1
	}
	return 0
}

// memberOf is the member of group the operations take (they act on the
// object's group).
func memberOf(snap *Snapshot, group string) (v1alpha1.Ref, bool) {
	refs := members(snap, group)
	if len(refs) == 0 {
		return v1alpha1.Ref{}, false
	}
	return refs[0], true
}

// actorStore records the dashboard's caller, not the process's own name,
// as who made a change.
type actorStore struct {
	Store
	by string
}

func (a actorStore) Event(ctx context.Context, e store.Event) {
	if e.By == "" {
		e.By = a.by
	}
	a.Store.Event(ctx, e)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, actionResult{Error: msg})
}
