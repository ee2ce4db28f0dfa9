package etcdstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/go-logr/logr"
	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/diag"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// Store is the cluster store on an etcd client.
type Store struct {
	client *clientv3.Client
	seq    atomic.Uint64
	// actor is who uses this client (a CLI's operator), set on the events
	// it records.
	actor string
	now   func() time.Time

	// log hears the failures of best-effort writes (events, lease
	// revokes), which no caller waits for.
	log logr.Logger

	// afterRead, in tests, runs after an apply's first read: applies can
	// be made to start from the same read.
	afterRead func()

	leaseMu   sync.Mutex
	evLease   clientv3.LeaseID
	evLeaseAt time.Time

	// decoded caches the objects and status values last decoded, by key,
	// with the revision they were decoded at: a listing decodes only what
	// changed since the last one. A thousand groups' leader and agents
	// list everything several times a second while placing; decoding it
	// all each time was most of their CPU and garbage.
	cacheMu  sync.Mutex
	objects  map[string]cachedObject
	statuses map[string]cachedStatus
	values   map[string]map[string]cachedValue // family prefix -> key -> value

	// listings are the prefixes read incrementally (see listPrefix).
	listingsMu sync.Mutex
	listings   map[string]*listing
	feeds      atomic.Int64 // feeds started, to give each its own stream
}

type cachedValue struct {
	rev int64
	v   any
	ok  bool // false: the value does not decode
}

// decodeFamily decodes a whole family's values (reports, decisions)
// through the cache: only the keys whose revision moved are decoded
// again. Values hold maps shared between callers: read them, never change
// them.
func decodeFamily[T any](s *Store, prefix string, kvs []*mvccpb.KeyValue, decode func(key string, value []byte, rev int64) (T, bool)) map[string]T {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if s.values == nil {
		s.values = map[string]map[string]cachedValue{}
	}
	prev := s.values[prefix]
	next := make(map[string]cachedValue, len(kvs))
	out := make(map[string]T, len(kvs))
	for _, kv := range kvs {
		key := string(kv.Key)
		c, hit := prev[key]
		if !hit || c.rev != kv.ModRevision {
			v, ok := decode(key, kv.Value, kv.ModRevision)
			c = cachedValue{rev: kv.ModRevision, v: v, ok: ok}
		}
		next[key] = c
		if c.ok {
			out[strings.TrimPrefix(key, prefix)] = c.v.(T)
		}
	}
	s.values[prefix] = next
	return out
}

type cachedObject struct {
	rev int64
	obj v1alpha1.Object
}

type cachedStatus struct {
	rev int64
	st  v1alpha1.Status
}

// Connect opens a client to endpoints.
func Connect(endpoints []string) (*Store, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        3 * time.Second,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: MaxRequestBytes + 1<<20,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	boundRequests(c, DefaultRequestTimeout)
	return &Store{client: c, now: time.Now}, nil
}

// SetLog sets where the failures of best-effort writes are logged.
func (s *Store) SetLog(log logr.Logger) { s.log = log }

// Close closes the client.
func (s *Store) Close() error { return s.client.Close() }

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := s.client.Get(ctx, pingKey); err != nil {
		where := "the store in this process"
		if eps := s.client.Endpoints(); len(eps) > 0 {
			where = "store at " + strings.Join(eps, ",")
		}
		return fmt.Errorf("%s does not answer: %w", where, err)
	}
	return nil
}

// decodeDecision decodes the decision stored under key, which must be the
// decision of the group the key names.
func decodeDecision(key string, v []byte) (store.Decision, error) {
	var d store.Decision
	if err := json.Unmarshal(v, &d); err != nil {
		return d, err
	}
	if want := strings.TrimPrefix(key, family(store.FamilyDecisions)); d.Group != want {
		return d, fmt.Errorf("the value is group %q's decision", d.Group)
	}
	return d, nil
}

// decodeObjects decodes the objects of kvs; those that do not decode (or
// sit under another object's key) are returned as damaged.
func decodeObjects(kvs []*mvccpb.KeyValue) ([]v1alpha1.Object, []store.DamagedKey) {
	var objs []v1alpha1.Object
	var damaged []store.DamagedKey
	for _, kv := range kvs {
		o, err := decodeObject(kv.Value, kv.ModRevision)
		if err == nil {
			err = objectAtKey(o, string(kv.Key))
		}
		if err != nil {
			damaged = append(damaged, store.DamagedKey{Key: string(kv.Key), Error: err.Error(), Revision: kv.ModRevision})
			continue
		}
		objs = append(objs, o)
	}
	return objs, damaged
}

// decodeCached is decodeObjects through the cache. The objects it returns
// are shared between callers and defaulted once (so that a later Default
// writes nothing): they must not be changed; copy one to change it.
func (s *Store) decodeCached(kvs []*mvccpb.KeyValue) ([]v1alpha1.Object, []store.DamagedKey) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	next := make(map[string]cachedObject, len(kvs))
	objs := make([]v1alpha1.Object, 0, len(kvs))
	var damaged []store.DamagedKey
	for _, kv := range kvs {
		key := string(kv.Key)
		if c, ok := s.objects[key]; ok && c.rev == kv.ModRevision {
			next[key] = c
			objs = append(objs, c.obj)
			continue
		}
		o, err := decodeObject(kv.Value, kv.ModRevision)
		if err == nil {
			err = objectAtKey(o, key)
		}
		if err != nil {
			damaged = append(damaged, store.DamagedKey{Key: key, Error: err.Error(), Revision: kv.ModRevision})
			continue
		}
		v1alpha1.Default(o)
		next[key] = cachedObject{rev: kv.ModRevision, obj: o}
		objs = append(objs, o)
	}
	s.objects = next
	return objs, damaged
}

// statusCached decodes status values by key (kind/name), through the
// cache; a value that does not decode is left out (an empty status).
func (s *Store) statusCached(kvs []*mvccpb.KeyValue) map[string]v1alpha1.Status {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	next := make(map[string]cachedStatus, len(kvs))
	out := make(map[string]v1alpha1.Status, len(kvs))
	for _, kv := range kvs {
		key := strings.TrimPrefix(string(kv.Key), family(store.FamilyStatus))
		c, ok := s.statuses[key]
		if !ok || c.rev != kv.ModRevision {
			var st v1alpha1.Status
			if json.Unmarshal(kv.Value, &st) != nil {
				continue
			}
			c = cachedStatus{rev: kv.ModRevision, st: st}
		}
		next[key] = c
		out[key] = c.st
	}
	s.statuses = next
	return out
}

// objectAtKey checks that o is the object its key names: a value copied
// under another key would otherwise be two objects of one name.
func objectAtKey(o v1alpha1.Object, key string) error {
	if want := objectKey(v1alpha1.RefOf(o)); want != key {
		return fmt.Errorf("the value is %s, which belongs under %s", v1alpha1.RefOf(o), want)
	}
	return nil
}

func decodeObject(kv []byte, rev int64) (v1alpha1.Object, error) {
	var tm v1alpha1.TypeMeta
	if err := json.Unmarshal(kv, &tm); err != nil {
		return nil, err
	}
	o := v1alpha1.New(tm.Kind)
	if o == nil {
		return nil, fmt.Errorf("unknown kind %q in store", tm.Kind)
	}
	if err := json.Unmarshal(kv, o); err != nil {
		return nil, err
	}
	o.Meta().ResourceVersion = strconv.FormatInt(rev, 10)
	return o, nil
}

// List returns every object (with status) at one revision.
func (s *Store) List(ctx context.Context) (store.Snapshot, error) { return s.list(ctx, true, "") }

// ListSpecs returns every object without status (what agents need).
func (s *Store) ListSpecs(ctx context.Context) (store.Snapshot, error) {
	return s.list(ctx, false, "")
}

// ListKind returns the objects of one kind with their status: `get sites`
// of 5,000 groups reads a third of what List reads.
func (s *Store) ListKind(ctx context.Context, kind string) (store.Snapshot, error) {
	return s.list(ctx, true, kind+"/")
}

func (s *Store) list(ctx context.Context, withStatus bool, kindPrefix string) (store.Snapshot, error) {
	if !withStatus && kindPrefix == "" {
		// The specs alone are what the leader and the agents read at
		// every pass: only what changed is asked for.
		kvs, rev, err := s.listPrefix(ctx, family(store.FamilyObjects))
		if err != nil {
			return store.Snapshot{}, fmt.Errorf("list objects: %w", err)
		}
		snap := store.Snapshot{Revision: rev}
		snap.Objects, snap.Damaged = s.decodeCached(kvs)
		return snap, nil
	}
	resp, err := s.client.Get(ctx, family(store.FamilyObjects)+kindPrefix, clientv3.WithPrefix())
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("list objects: %w", err)
	}
	snap := store.Snapshot{Revision: resp.Header.Revision}
	snap.Objects, snap.Damaged = s.decodeCached(resp.Kvs)
	if !withStatus {
		return snap, nil
	}
	st, err := s.client.Get(ctx, family(store.FamilyStatus)+kindPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision))
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("list status: %w", err)
	}
	byKey := s.statusCached(st.Kvs)
	for i, o := range snap.Objects {
		// The cached object is shared: the status goes on a copy.
		c := v1alpha1.ShallowCopy(o)
		*c.StatusRef() = byKey[o.GetKind()+"/"+o.Meta().Name]
		snap.Objects[i] = c
	}
	return snap, nil
}

// Statuses returns every object's status, by object.
func (s *Store) Statuses(ctx context.Context) (map[v1alpha1.Ref]v1alpha1.Status, error) {
	resp, err := s.client.Get(ctx, family(store.FamilyStatus), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list status: %w", err)
	}
	out := map[v1alpha1.Ref]v1alpha1.Status{}
	for key, st := range s.statusCached(resp.Kvs) {
		kind, name, _ := strings.Cut(key, "/")
		out[v1alpha1.Ref{Kind: kind, Name: name}] = st
	}
	return out, nil
}

// Get returns one object with its status.
func (s *Store) Get(ctx context.Context, ref v1alpha1.Ref) (v1alpha1.Object, error) {
	resp, err := s.client.Get(ctx, objectKey(ref))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", ref, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %w", ref, store.ErrNotFound)
	}
	o, err := decodeObject(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", ref, store.DamagedMessage(store.DamagedKey{Key: objectKey(ref), Error: err.Error()}), store.ErrDamaged)
	}
	if st, err := s.client.Get(ctx, statusKey(ref)); err == nil && len(st.Kvs) > 0 {
		_ = json.Unmarshal(st.Kvs[0].Value, o.StatusRef())
	}
	return o, nil
}

func setAnnotation(m *v1alpha1.ObjectMeta, k, v string) {
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[k] = v
}

// Apply creates or updates objs as one transaction: the whole resulting
// set (stored objects plus these) is validated first, nothing is written if
// any object is invalid, and every write is a compare-and-swap on the
// revision read. An object that carries a resourceVersion must still be at
// that version. On a conflict with a concurrent writer the apply is
// recomputed on fresh data (a few times) — never a silent lost update.
func (s *Store) Apply(ctx context.Context, objs []v1alpha1.Object, opt store.ApplyOptions) ([]store.ApplyResult, error) {
	var lastErr error
	// base is what the first attempt read. When someone wrote in between,
	// each later attempt lays this apply's changes over what it reads
	// (see rebase.go), and its compare-and-swap is on that same read.
	var base map[v1alpha1.Ref]v1alpha1.Object
	if opt.BaseRevision > 0 {
		resp, err := s.client.Get(ctx, family(store.FamilyObjects), clientv3.WithPrefix(), clientv3.WithRev(opt.BaseRevision))
		if err != nil {
			return nil, fmt.Errorf("apply: read the base revision %d: %w", opt.BaseRevision, err)
		}
		objs, _ := decodeObjects(resp.Kvs)
		base = byRef(objs)
	}
	for attempt := 0; attempt < 5; attempt++ {
		res, read, err := s.applyOnce(ctx, objs, opt, base)
		if !errors.Is(err, errRetry) {
			return res, err
		}
		lastErr = err
		if base == nil {
			base = read
		}
	}
	return nil, fmt.Errorf("apply: %w (%v)", store.ErrConflict, lastErr)
}

func byRef(objs []v1alpha1.Object) map[v1alpha1.Ref]v1alpha1.Object {
	m := make(map[v1alpha1.Ref]v1alpha1.Object, len(objs))
	for _, o := range objs {
		m[v1alpha1.RefOf(o)] = o
	}
	return m
}

var errRetry = errors.New("store changed while applying")

// applyOnce applies objs against one read of the store, which it returns;
// with a base (an earlier attempt's read), objs' changes relative to it
// are laid over this read first.
func (s *Store) applyOnce(ctx context.Context, objs []v1alpha1.Object, opt store.ApplyOptions, base map[v1alpha1.Ref]v1alpha1.Object) ([]store.ApplyResult, map[v1alpha1.Ref]v1alpha1.Object, error) {
	snap, err := s.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	if base == nil && s.afterRead != nil {
		s.afterRead()
	}
	stored := byRef(snap.Objects)
	if base != nil {
		if objs, err = rebase(objs, base, stored, opt.ForceConflicts); err != nil {
			return nil, stored, err
		}
	}
	damaged := map[string]int64{} // key -> revision: an apply replaces it
	for _, k := range snap.Damaged {
		damaged[k.Key] = k.Revision
	}
	incoming := map[v1alpha1.Ref]bool{}
	for _, o := range objs {
		incoming[v1alpha1.RefOf(o)] = true
	}
	pruned := map[v1alpha1.Ref]bool{}
	for _, r := range opt.Prune {
		pruned[r] = true
	}
	// Stored objects first: a clash between a stored and an incoming object
	// is reported on the incoming one, where the user can fix it.
	var set []v1alpha1.Object
	for _, ref := range sortedRefs(stored) {
		if o := stored[ref]; !incoming[ref] && !pruned[ref] && o.Meta().DeletionTimestamp == nil {
			set = append(set, o)
		}
	}
	offset := len(set)
	for _, o := range objs {
		set = append(set, v1alpha1.DeepCopy(o))
	}
	res := validation.Validate(set)
	if len(res.Errors) > 0 {
		// Errors carry the index of the incoming object (for file:line);
		// stored objects have no position, so they say so.
		for i := range res.Errors {
			if res.Errors[i].Index < offset {
				res.Errors[i].Index = -1
				res.Errors[i].Message += " (stored object)"
			} else {
				res.Errors[i].Index -= offset
			}
		}
		return nil, stored, &store.ValidationError{Errors: res.Errors}
	}
	set = set[offset:]
	now := s.now().UTC().Truncate(time.Second)
	var results []store.ApplyResult
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for i := range objs {
		o := set[i] // defaulted copy
		ref := v1alpha1.RefOf(o)
		m := o.Meta()
		*o.StatusRef() = v1alpha1.Status{}
		old, exists := stored[ref]
		key := objectKey(ref)
		if m.ResourceVersion != "" {
			want := m.ResourceVersion
			if !exists || old.Meta().ResourceVersion != want {
				return nil, stored, fmt.Errorf("apply %s: resourceVersion %s is stale: %w", ref, want, store.ErrConflict)
			}
		}
		if exists && old.Meta().DeletionTimestamp != nil {
			return nil, stored, fmt.Errorf("apply %s: it is being deleted; wait until `sitekeeper get` no longer lists it, then apply again", ref)
		}
		// Only a source says which source owns an object: a CLI manifest
		// that names one would hand its objects to that source's pruning.
		if want := m.Annotations[v1alpha1.AnnotationSource]; opt.Owner == "" && want != "" && (!exists || old.Meta().Annotations[v1alpha1.AnnotationSource] != want) {
			return nil, stored, &store.ValidationError{Errors: diag.List{{Kind: ref.Kind, Name: ref.Name, Index: i,
				Field:   "metadata.annotations[" + v1alpha1.AnnotationSource + "]",
				Message: fmt.Sprintf("%q: only a source (a watched folder) sets the owner of an object; remove the annotation from the manifest", want)}}}
		}
		adopted := false
		if exists {
			owner := old.Meta().Annotations[v1alpha1.AnnotationSource]
			adopted = opt.Owner != "" && owner == ""
			switch {
			case opt.Owner != "" && owner != "" && owner != opt.Owner && !slices.Contains(opt.AdoptFrom, owner):
				return nil, stored, fmt.Errorf("apply %s: it is managed by source %q, not %q; remove it from one of the folders", ref, owner, opt.Owner)
			case opt.Owner == "" && owner != "" && !opt.ForceConflicts:
				return nil, stored, &store.OwnedError{Ref: ref, Source: owner}
			case opt.Owner == "" && owner != "":
				// --force-conflicts: the object keeps its owner, so the
				// folder's next change set restores what it says.
				setAnnotation(m, v1alpha1.AnnotationSource, owner)
			}
		}
		if opt.Owner != "" {
			setAnnotation(m, v1alpha1.AnnotationSource, opt.Owner)
		}
		// The last switchover's mark stays until the next one: an apply
		// that does not write it is not a request, and does not churn.
		if exists {
			if mark := old.Meta().Annotations[v1alpha1.AnnotationSwitchover]; mark != "" && m.Annotations[v1alpha1.AnnotationSwitchover] == "" {
				setAnnotation(m, v1alpha1.AnnotationSwitchover, mark)
			}
		}
		var prev v1alpha1.Object
		if exists {
			prev = old
		}
		// A folder is the truth for what it holds: it takes its fields
		// over (a CLI change forced onto it is undone by its next change
		// set, as the README says), so only CLI appliers conflict.
		managed, err := claimFields(o, prev, managerFor(opt), opt.ForceConflicts || opt.Owner != "")
		if err != nil {
			return nil, stored, err
		}
		m.ManagedFields = managed
		r := store.ApplyResult{Ref: ref}
		if !exists {
			m.UID = newUID()
			m.Generation = 1
			m.CreationTimestamp = &now
			m.ResourceVersion = ""
			m.DeletionTimestamp = nil
			r.Outcome, r.Generation = store.Created, 1
			if rev, ok := damaged[key]; ok {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
			} else {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			}
		} else {
			om := old.Meta()
			m.UID, m.CreationTimestamp, m.DeletionTimestamp, m.ResourceVersion = om.UID, om.CreationTimestamp, nil, ""
			m.Generation = om.Generation
			if !bytes.Equal(o.SpecJSON(), old.SpecJSON()) {
				m.Generation++
			}
			r.Generation = m.Generation
			switch {
			case adopted:
				r.Outcome = store.Adopted
			case m.Generation != om.Generation || !mapsEqual(m.Labels, om.Labels) || !mapsEqual(m.Annotations, om.Annotations):
				r.Outcome = store.Configured
			default:
				r.Outcome = store.Unchanged
			}
			rev, _ := strconv.ParseInt(om.ResourceVersion, 10, 64)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
		}
		results = append(results, r)
		if r.Outcome == store.Unchanged && (!exists || reflect.DeepEqual(managed, old.Meta().ManagedFields)) {
			continue
		}
		b, err := json.Marshal(o)
		if err != nil {
			return nil, stored, err
		}
		ops = append(ops, clientv3.OpPut(key, string(b)))
	}
	for _, ref := range opt.Prune {
		old, ok := stored[ref]
		if !ok || old.Meta().DeletionTimestamp != nil {
			continue
		}
		c := v1alpha1.DeepCopy(old)
		c.Meta().DeletionTimestamp = &now
		c.Meta().ResourceVersion = ""
		*c.StatusRef() = v1alpha1.Status{}
		b, _ := json.Marshal(c)
		rev, _ := strconv.ParseInt(old.Meta().ResourceVersion, 10, 64)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(objectKey(ref)), "=", rev))
		ops = append(ops, clientv3.OpPut(objectKey(ref), string(b)))
		results = append(results, store.ApplyResult{Ref: ref, Outcome: store.Pruned, Generation: old.Meta().Generation})
	}
	if opt.DryRun || len(ops) == 0 {
		return results, stored, nil
	}
	txn, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil && strings.Contains(err.Error(), "too many operations") {
		return nil, stored, fmt.Errorf("apply: etcd refused one transaction of %d writes (%w); start etcd with --max-txn-ops=%d or apply fewer objects at once", len(ops)+len(cmps), err, MaxTxnOps)
	}
	if err != nil && (status.Code(err) == codes.ResourceExhausted || errors.Is(err, rpctypes.ErrRequestTooLarge)) {
		return nil, stored, fmt.Errorf("apply: the %d objects make one request larger than the store accepts (%d MiB; %w); apply the folder in parts, or start an external etcd with --max-request-bytes=%d", len(ops), MaxRequestBytes>>20, err, MaxRequestBytes)
	}
	if err != nil {
		return nil, stored, fmt.Errorf("apply: %w", err)
	}
	if !txn.Succeeded {
		return nil, stored, errRetry
	}
	var events []store.Event
	for _, r := range results {
		if r.Outcome != store.Unchanged {
			events = append(events, store.Event{Type: store.Normal, Reason: outcomeReason[r.Outcome], Object: r.Ref.String(), Message: fmt.Sprintf("%s %s (generation %d)", r.Ref, r.Outcome, r.Generation)})
		}
	}
	s.EventBatch(ctx, events)
	return results, stored, nil
}

// outcomeReason is the event reason of each apply outcome that changed
// something.
var outcomeReason = map[store.Outcome]string{store.Created: v1alpha1.EventCreated, store.Configured: v1alpha1.EventConfigured, store.Pruned: v1alpha1.EventPruned, store.Adopted: v1alpha1.EventAdopted}

func sortedRefs(m map[v1alpha1.Ref]v1alpha1.Object) []v1alpha1.Ref {
	refs := make([]v1alpha1.Ref, 0, len(m))
	for r := range m {
		refs = append(refs, r)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].String() < refs[j].String() })
	return refs
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// MarkDeleted starts a two-phase delete: the object gets a deletion
// timestamp, nodes take it out of service, then the leader removes it.
func (s *Store) MarkDeleted(ctx context.Context, ref v1alpha1.Ref) error {
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := s.client.Get(ctx, objectKey(ref))
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%s: %w", ref, store.ErrNotFound)
		}
		o, err := decodeObject(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
		if err != nil {
			return err
		}
		if o.Meta().DeletionTimestamp != nil {
			return nil
		}
		now := s.now().UTC().Truncate(time.Second)
		o.Meta().DeletionTimestamp = &now
		o.Meta().ResourceVersion = ""
		b, _ := json.Marshal(o)
		txn, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(objectKey(ref)), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(objectKey(ref), string(b))).Commit()
		if err != nil {
			return err
		}
		if txn.Succeeded {
			s.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventDeleting, Object: ref.String(), Message: ref.String() + " is being taken out of service on every node"})
			return nil
		}
	}
	return fmt.Errorf("delete %s: %w", ref, store.ErrConflict)
}

// Remove deletes an object's keys for good (the second phase of delete).
func (s *Store) Remove(ctx context.Context, ref v1alpha1.Ref) error {
	_, err := s.client.Txn(ctx).Then(
		clientv3.OpDelete(objectKey(ref)),
		clientv3.OpDelete(statusKey(ref)),
		clientv3.OpDelete(deletedPrefix(ref), clientv3.WithPrefix()),
	).Commit()
	return err
}

// UpdateSpecs writes objects' specs in one transaction, each with a
// compare-and-swap on its resourceVersion; generation moves when a spec
// changed.
func (s *Store) UpdateSpecs(ctx context.Context, objs ...v1alpha1.Object) error {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, o := range objs {
		ref := v1alpha1.RefOf(o)
		cur, err := s.Get(ctx, ref)
		if err != nil {
			return err
		}
		if cur.Meta().ResourceVersion != o.Meta().ResourceVersion {
			return fmt.Errorf("update %s: %w", ref, store.ErrConflict)
		}
		c := v1alpha1.DeepCopy(o)
		if !bytes.Equal(c.SpecJSON(), cur.SpecJSON()) {
			c.Meta().Generation = cur.Meta().Generation + 1
		}
		rev, _ := strconv.ParseInt(o.Meta().ResourceVersion, 10, 64)
		c.Meta().ResourceVersion = ""
		*c.StatusRef() = v1alpha1.Status{}
		b, _ := json.Marshal(c)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(objectKey(ref)), "=", rev))
		ops = append(ops, clientv3.OpPut(objectKey(ref), string(b)))
	}
	txn, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if IsPermissionDenied(err) {
		return fmt.Errorf("%w: %w", store.ErrForbidden, err)
	}
	if err != nil {
		return err
	}
	if !txn.Succeeded {
		return fmt.Errorf("update: %w", store.ErrConflict)
	}
	return nil
}

// putJSON writes v at key when its encoding differs from what is there.
// It reports whether it wrote.
func (s *Store) putJSON(ctx context.Context, key string, v any, opts ...clientv3.OpOption) (bool, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return false, err
	}
	if len(resp.Kvs) > 0 && bytes.Equal(resp.Kvs[0].Value, b) {
		return false, nil
	}
	if _, err := s.client.Put(ctx, key, string(b), opts...); err != nil {
		return false, err
	}
	return true, nil
}

// getPrefix decodes every value under prefix into a map keyed by the rest
// of the key.
func getPrefix[T any](ctx context.Context, s *Store, prefix string) (map[string]T, error) {
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string]T{}
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			continue
		}
		out[strings.TrimPrefix(string(kv.Key), prefix)] = v
	}
	return out, nil
}

// ObjectsChangedSince lists the objects written after rev, each with the
// revision of its last write, and the store's revision now; it reads keys
// only, no value. (etcd's count ignores the revision filter, so the keys
// are asked for.)
func (s *Store) ObjectsChangedSince(ctx context.Context, rev int64) (map[v1alpha1.Ref]int64, int64, error) {
	resp, err := s.client.Get(ctx, family(store.FamilyObjects), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithMinModRev(rev+1))
	if err != nil {
		return nil, 0, err
	}
	out := make(map[v1alpha1.Ref]int64, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kind, name, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), family(store.FamilyObjects)), "/")
		out[v1alpha1.Ref{Kind: kind, Name: name}] = kv.ModRevision
	}
	return out, resp.Header.Revision, nil
}

// Decisions returns every placement decision with its revision.
func (s *Store) Decisions(ctx context.Context) (map[string]store.Decision, error) {
	prefix := family(store.FamilyDecisions)
	kvs, _, err := s.listPrefix(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return decodeFamily(s, prefix, kvs, func(key string, value []byte, rev int64) (store.Decision, bool) {
		d, err := decodeDecision(key, value)
		if err != nil {
			d = store.Decision{Group: strings.TrimPrefix(key, prefix), Damaged: err.Error()}
		}
		d.Revision = rev
		return d, true
	}), nil
}

// PutDecision writes a decision with a compare-and-swap on its revision
// (0: must not exist), guarded by the leader's election key so that a
// deposed leader cannot write. A zero guard writes unguarded (an operator's
// command, such as clear-failures).
func (s *Store) PutDecision(ctx context.Context, d store.Decision, guard store.LeaderGuard) error {
	b, _ := json.Marshal(d)
	key := decisionKey(d.Group)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", d.Revision)}
	if guard.Key != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(guard.Key), "=", guard.Rev))
	}
	txn, err := s.client.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return err
	}
	if !txn.Succeeded {
		return fmt.Errorf("placement of %s: %w", d.Group, store.ErrConflict)
	}
	return nil
}

// PutPlacements writes several groups' decisions and status in one
// transaction, guarded by leadership and by each decision's revision: all
// or nothing (ErrConflict when a guard failed; the caller retries the
// groups one by one to find which).
func (s *Store) PutPlacements(ctx context.Context, ws []store.PlacementWrite, guard store.LeaderGuard) error {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	if guard.Key != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(guard.Key), "=", guard.Rev))
	}
	for _, w := range ws {
		if d := w.Decision; d != nil {
			b, err := json.Marshal(d)
			if err != nil {
				return fmt.Errorf("encode placement of %s: %w", d.Group, err)
			}
			key := decisionKey(d.Group)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", d.Revision))
			ops = append(ops, clientv3.OpPut(key, string(b)))
		}
		for ref, st := range w.Statuses {
			b, err := json.Marshal(st)
			if err != nil {
				return fmt.Errorf("encode status of %s: %w", ref, err)
			}
			ops = append(ops, clientv3.OpPut(statusKey(ref), string(b)))
		}
	}
	if len(ops) == 0 {
		return nil
	}
	txn, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return err
	}
	if !txn.Succeeded {
		return fmt.Errorf("placement of %d groups: %w", len(ws), store.ErrConflict)
	}
	return nil
}

// DeleteDecision removes a group's decision.
func (s *Store) DeleteDecision(ctx context.Context, group string) error {
	_, err := s.client.Delete(ctx, decisionKey(group))
	return err
}

// SetActor names who uses this client, for the events it records.
func (s *Store) SetActor(name string) { s.actor = name }

// Event records an event; failures to record are not fatal to the caller.
func (s *Store) Event(ctx context.Context, e store.Event) { s.EventBatch(ctx, []store.Event{e}) }

// EventBatch records events in one write. Events share a lease renewed
// every few minutes, so they expire about EventRetention after they were
// written without one lease per event.
func (s *Store) EventBatch(ctx context.Context, events []store.Event) {
	if len(events) == 0 {
		return
	}
	// Events are best effort: never let one block a caller for long.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	lease, err := s.eventLease(ctx)
	if err != nil {
		s.log.V(1).Info("Events not recorded: no event lease", "events", len(events), "error", err.Error())
		return
	}
	var ops []clientv3.Op
	for _, e := range events {
		if e.Time.IsZero() {
			e.Time = s.now().UTC()
		}
		if e.By == "" {
			e.By = s.actor
		}
		b, _ := json.Marshal(e)
		ops = append(ops, clientv3.OpPut(eventKey(e.Time, s.seq.Add(1)), string(b), clientv3.WithLease(lease)))
	}
	if _, err := s.client.Txn(ctx).Then(ops...).Commit(); err != nil {
		s.log.V(1).Info("Events not recorded", "events", len(events), "first", events[0].Reason, "error", err.Error())
	}
}

const eventLeaseSlice = 5 * time.Minute

func (s *Store) eventLease(ctx context.Context) (clientv3.LeaseID, error) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.evLease != 0 && time.Since(s.evLeaseAt) < eventLeaseSlice {
		return s.evLease, nil
	}
	g, err := s.client.Grant(ctx, int64((store.EventRetention+eventLeaseSlice)/time.Second))
	if err != nil {
		return 0, err
	}
	s.evLease, s.evLeaseAt = g.ID, time.Now()
	return g.ID, nil
}

// Events returns the recorded events, oldest first.
func (s *Store) Events(ctx context.Context) ([]store.Event, int64, error) {
	resp, err := s.client.Get(ctx, eventsPrefix(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, err
	}
	var out []store.Event
	for _, kv := range resp.Kvs {
		var e store.Event
		if json.Unmarshal(kv.Value, &e) == nil {
			out = append(out, e)
		}
	}
	return out, resp.Header.Revision, nil
}

// WatchEvents streams events recorded after rev.
func (s *Store) WatchEvents(ctx context.Context, rev int64) <-chan store.Event {
	ch := make(chan store.Event)
	go func() {
		defer close(ch)
		for resp := range s.client.Watch(ctx, eventsPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				var e store.Event
				if json.Unmarshal(ev.Kv.Value, &e) == nil {
					select {
					case ch <- e:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return ch
}

// Changes signals (coalesced) every change under Prefix+p for p in
// families (all but events when none are given). Each family is watched
// on its own prefix, so that an agent is not sent every event, status and
// report write of the cluster to throw away; the channel closes when any
// of the watches ends (store restarted, compaction), for the caller to
// watch again and re-read.
//
// The watch starts at the store's current revision, read before Changes
// returns: whatever the caller reads afterwards, no later change is missed.
func (s *Store) Changes(ctx context.Context, families ...store.Family) <-chan struct{} {
	ch := make(chan struct{}, 1)
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if resp, err := s.client.Get(ctx, pingKey); err == nil {
		opts = append(opts, clientv3.WithRev(resp.Header.Revision+1))
	} else {
		ch <- struct{}{} // could not pin a revision: make the caller re-read
	}
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	var wg sync.WaitGroup
	watch := func(p string, relevant func(key string) bool) {
		defer wg.Done()
		defer cancel() // one watch ended: end them all
		for resp := range s.client.Watch(wctx, p, opts...) {
			for _, ev := range resp.Events {
				if relevant(strings.TrimPrefix(string(ev.Kv.Key), prefix)) {
					signal()
					break
				}
			}
		}
	}
	if len(families) == 0 {
		wg.Add(1)
		go watch(prefix, func(key string) bool { return !strings.HasPrefix(key, "events/") })
	}
	for _, f := range families {
		wg.Add(1)
		go watch(family(f), func(string) bool { return true })
	}
	go func() {
		wg.Wait()
		close(ch)
	}()
	return ch
}
