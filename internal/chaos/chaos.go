// Package chaos is a fault run against the embedded default: faults
// injected in sequence into one cluster of simulated nodes (power loss,
// partition from the store, a site stopped behind Sitekeeper's back, step
// latency drawn anew, a value that does not decode written under a key of
// the store, two applies at once), while a checker samples which nodes hold each
// address every 10 ms and a client polls every site. It answers the
// questions a safety claim must: was an address ever on two nodes, was a
// step ever refused because another node still held an address or a
// volume, how long were sites down.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
	"github.com/sitekeeper/sitekeeper/internal/store/etcdstore"
	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

// Options shape a run.
type Options struct {
	// Faults is how many faults to inject.
	Faults int
	// Groups is how many resource groups (a site, an address, a volume).
	Groups int
	// MaxLatency bounds the step latency drawn for a node at each latency
	// fault (uniform in [0, MaxLatency]).
	MaxLatency time.Duration
	// Spacing bounds the wait between two faults (uniform in [Spacing/2,
	// Spacing]).
	Spacing time.Duration
	// Seed makes a run repeatable.
	Seed uint64
	// Port is the sites' port; Net the second octet of their addresses.
	Port int32
	Net  int
	// DataDir holds the store and the simulated disks.
	DataDir string
	Log     logr.Logger
	// Progress, when set, hears each fault as it is injected.
	Progress func(format string, args ...any)
}

// Report is what a run found.
type Report struct {
	Faults  int
	Samples int
	// DualHolderSamples counts samples where an address was on two nodes.
	DualHolderSamples int
	// DuplicateRefusals counts steps refused because another node still
	// held an address or a volume: a premature take-over.
	DuplicateRefusals int
	// Refusals are their messages.
	Refusals []string
	// Outages are the gaps a client polling every site saw, longest first.
	Outages []time.Duration
	// Unserved lists the sites not served when the run ended.
	Unserved []string
	// PoisonKeys counts the values that do not decode written into the
	// store; ConcurrentApplies the pairs of applies run at once, each
	// changing another field of one object; Lost the changes of those that
	// reported success and were gone afterwards.
	PoisonKeys, ConcurrentApplies int
	// FrozenApplies counts applies during which the store froze;
	// DamagedRestarts restarts of the whole cluster with a file Sitekeeper
	// writes torn, emptied or garbled; FlagExtremes rounds of commands
	// given out-of-range flag values (each must be a usage error).
	FrozenApplies, DamagedRestarts, FlagExtremes int
	Lost                                         []string
	// Timeline is every event of the run, one per line, to read when
	// something went wrong.
	Timeline []string
}

// Line is the one-line summary.
func (r Report) Line() string {
	return fmt.Sprintf("faults injected %d (poison keys %d, concurrent applies %d, store frozen mid-apply %d, restarts with a damaged file %d, flag extremes %d), samples taken %d, samples with an address on two nodes %d, steps refused for a duplicate address %d, changes lost %d, failover time p50 %s p99 %s, sites unserved at the end %d",
		r.Faults, r.PoisonKeys, r.ConcurrentApplies, r.FrozenApplies, r.DamagedRestarts, r.FlagExtremes, r.Samples, r.DualHolderSamples, r.DuplicateRefusals, len(r.Lost), percentile(r.Outages, 50), percentile(r.Outages, 99), len(r.Unserved))
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s) - 1) * p / 100
	return s[i].Round(time.Millisecond)
}

var nodes = []string{"node1", "node2"}

// Run runs the faults and reports.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Groups <= 0 {
		o.Groups = 2
	}
	if o.Spacing <= 0 {
		o.Spacing = 3 * time.Second
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed))
	// Failures are never held against a node here: the run injects far more
	// than placement.maxFailures allows in a window, by design.
	objs := testmanifests.Objects(o.Groups, testmanifests.Options{Net: o.Net, Port: o.Port, Nodes: nodes, MaxFailures: 100000,
		Health: "{interval: 500ms, timeout: 400ms, failureThreshold: 2}"})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := start(ctx, o, objs)
	if err != nil {
		return Report{}, err
	}
	var cur atomic.Pointer[running]
	cur.Store(c)
	defer func() { cur.Load().stop() }()

	urls := make([]string, o.Groups)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://127.%d.%d.%d:%d/", o.Net, i/250, i%250+1, o.Port)
	}
	if err := waitServed(ctx, urls, 30*time.Second); err != nil {
		return Report{}, fmt.Errorf("before the first fault: %w", err)
	}

	var rep Report
	var acked ackLog
	var mu sync.Mutex
	probes, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	var wg sync.WaitGroup
	every := func(d time.Duration, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-probes.Done():
					return
				case <-t.C:
					f()
				}
			}
		}()
	}
	var restarting atomic.Bool          // the whole cluster is down on purpose
	every(10*time.Millisecond, func() { // the checker: who holds each address
		if restarting.Load() {
			return
		}
		dual := false
		for _, holders := range cur.Load().world.AddressHolders() {
			dual = dual || len(holders) > 1
		}
		mu.Lock()
		rep.Samples++
		if dual {
			rep.DualHolderSamples++
		}
		mu.Unlock()
	})
	for _, u := range urls {
		lastOK := time.Now()
		every(20*time.Millisecond, func() { // the client: gaps recorded
			if restarting.Load() {
				lastOK = time.Now()
				return
			}
			if node(u) == "" {
				return
			}
			if gap := time.Since(lastOK); gap > 200*time.Millisecond {
				mu.Lock()
				rep.Outages = append(rep.Outages, gap)
				mu.Unlock()
			}
			lastOK = time.Now()
		})
	}

	down := map[string]string{} // node -> the fault to heal
	seq := int64(0)
	send := func(n string, c store.SimCommand) {
		seq++
		c.Seq = seq
		if err := cur.Load().st.PutSimCommand(ctx, n, c); err != nil {
			o.Progress("fault on %s not sent: %v", n, err)
		}
	}
	for rep.Faults < o.Faults && ctx.Err() == nil {
		n := nodes[rng.IntN(len(nodes))]
		st, world := cur.Load().st, cur.Load().world
		switch kind := rng.IntN(10); {
		case down[n] != "":
			send(n, store.SimCommand{Powered: true})
			o.Progress("heal %s (%s)", n, down[n])
			delete(down, n)
		case kind == 0 && len(down) == 0:
			send(n, store.SimCommand{Powered: false})
			down[n] = "power"
			rep.Faults++
			o.Progress("fault %d: %s loses power", rep.Faults, n)
		case kind == 1 && len(down) == 0:
			send(n, store.SimCommand{Powered: true, Partitioned: true})
			down[n] = "partition"
			rep.Faults++
			o.Progress("fault %d: %s cut off from the store", rep.Faults, n)
		case kind == 4:
			key := poisonKeys[rng.IntN(len(poisonKeys))](rng.IntN(o.Groups), n)
			if err := st.InjectRaw(ctx, key, poisonValues[rng.IntN(len(poisonValues))]); err != nil {
				o.Progress("poison key %s not written: %v", key, err)
				break
			}
			rep.Faults++
			rep.PoisonKeys++
			o.Progress("fault %d: a value that does not decode under %s", rep.Faults, key)
		case kind == 5:
			i := rng.IntN(o.Groups)
			if lost := applyTwoAtOnce(ctx, st, &acked, objs, i, rep.Faults); lost != "" {
				rep.Lost = append(rep.Lost, lost)
			}
			rep.Faults++
			rep.ConcurrentApplies++
			o.Progress("fault %d: two applies at once to site-%d, each changing another label", rep.Faults, i)
		case kind == 6:
			i := rng.IntN(o.Groups)
			res := applyWhileFrozen(ctx, c.freezer, st, &acked, i, rep.Faults, rng)
			if res.lost != "" {
				rep.Lost = append(rep.Lost, res.lost)
			}
			rep.Faults++
			rep.FrozenApplies++
			o.Progress("fault %d: the store froze %s into an apply to group %d: %s", rep.Faults, res.after, i, res.outcome)
		case kind == 7 && len(down) == 0 && rng.IntN(3) == 0: // a restart costs seconds
			damage := restartDamages[rng.IntN(len(restartDamages))]
			restarting.Store(true)
			cur.Load().stop()
			what := damage.name
			if err := damage.do(o.DataDir); err != nil {
				return rep, fmt.Errorf("damage %s: %w", what, err)
			}
			next, err := start(ctx, o, nil)
			if err != nil {
				return rep, fmt.Errorf("restart after %s: %w", what, err)
			}
			c = next
			cur.Store(next)
			if err := waitServed(ctx, urls, 60*time.Second); err != nil {
				rep.Lost = append(rep.Lost, fmt.Sprintf("after a restart with %s: %v", what, err))
			}
			restarting.Store(false)
			rep.Faults++
			rep.DamagedRestarts++
			o.Progress("fault %d: the cluster restarted with %s", rep.Faults, what)
		case kind == 8:
			bad := flagExtremes(ctx, c.endpoint)
			rep.Lost = append(rep.Lost, bad...)
			rep.Faults++
			rep.FlagExtremes++
			o.Progress("fault %d: commands run with flag values out of range (%d accepted or crashed)", rep.Faults, len(bad))
		case kind == 2:
			site := fmt.Sprintf("site-%d", rng.IntN(o.Groups))
			send(n, store.SimCommand{Powered: true, StopSite: site})
			rep.Faults++
			o.Progress("fault %d: %s stopped behind sitekeeper's back on %s", rep.Faults, site, n)
		default:
			d := time.Duration(rng.Int64N(int64(o.MaxLatency) + 1))
			world.SetStepLatency(n, d)
			rep.Faults++
			o.Progress("fault %d: every step of %s now takes %s", rep.Faults, n, d.Round(time.Millisecond))
		}
		wait := o.Spacing/2 + time.Duration(rng.Int64N(int64(o.Spacing/2)+1))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	// The end: every node healed and fast again; every site must be served.
	for n := range down {
		send(n, store.SimCommand{Powered: true})
	}
	for _, n := range nodes {
		cur.Load().world.SetStepLatency(n, 0)
	}
	err = waitServed(ctx, urls, 90*time.Second)
	stopProbes()
	wg.Wait()
	if err != nil {
		for _, u := range urls {
			if node(u) == "" {
				rep.Unserved = append(rep.Unserved, u)
			}
		}
	}
	rep.Lost = append(rep.Lost, acked.missing(ctx, cur.Load().st)...)
	events, _, evErr := cur.Load().st.Events(context.Background())
	if evErr != nil {
		return rep, evErr
	}
	for _, e := range events {
		rep.Timeline = append(rep.Timeline, fmt.Sprintf("%s %-7s %-16s %-24s %-6s %s", e.Time.Local().Format("15:04:05.000"), e.Type, e.Reason, e.Object, e.Node, e.Message))
		if e.Reason == v1alpha1.EventStepFailed && (strings.Contains(e.Message, "duplicate address") || strings.Contains(e.Message, "held by another node")) {
			rep.DuplicateRefusals++
			rep.Refusals = append(rep.Refusals, e.Time.Format("15:04:05.000")+" "+e.Node+" "+e.Message)
		}
	}
	sort.Slice(rep.Outages, func(i, j int) bool { return rep.Outages[i] > rep.Outages[j] })
	return rep, nil
}

// poisonKeys are the keys a poison value goes under: a new object, a
// group's placement decision, a node's report on a group, an event.
var poisonKeys = []func(group int, node string) string{
	func(g int, _ string) string { return fmt.Sprintf("objects/IISSite/poison-%d", g) },
	func(g int, _ string) string { return fmt.Sprintf("placement/site-%d", g) },
	func(g int, n string) string { return fmt.Sprintf("reports/site-%d/%s", g, n) },
	func(g int, _ string) string { return fmt.Sprintf("events/99999999999999999999-%08d", g) },
}

var poisonValues = []string{"{not json", "\x00\x01\x02", `{"kind":"NoSuchKind"}`, `[]`, ""}

// applyTwoAtOnce applies two copies of site i's objects at once, written
// against one revision, one adding label a, one label b (each a new
// value): both must be there after, or the one that failed must have said
// so. It returns what was lost.
func applyTwoAtOnce(ctx context.Context, st *etcdstore.Store, acked *ackLog, objs []v1alpha1.Object, i, round int) string {
	ref := v1alpha1.Ref{Kind: v1alpha1.KindIISSite, Name: fmt.Sprintf("site-%d", i)}
	var base v1alpha1.Object
	for _, o := range objs {
		if v1alpha1.RefOf(o) == ref {
			base = o
		}
	}
	// One read: the object as both applies are written against it, and
	// the revision they name as their base.
	snap, err := st.List(ctx)
	if err != nil {
		return ""
	}
	var cur v1alpha1.Object
	for _, o := range snap.Objects {
		if v1alpha1.RefOf(o) == ref {
			cur = o
		}
	}
	if cur == nil {
		return ""
	}
	rev := snap.Revision
	labels := []string{"chaos-a", "chaos-b"}
	errs := make([]error, len(labels))
	var wg sync.WaitGroup
	for j, l := range labels {
		c := v1alpha1.DeepCopy(base)
		c.Meta().Labels = map[string]string{}
		for k, v := range cur.Meta().Labels {
			c.Meta().Labels[k] = v
		}
		c.Meta().Labels[l] = fmt.Sprint(round)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[j] = st.Apply(ctx, []v1alpha1.Object{c}, store.ApplyOptions{BaseRevision: rev})
		}()
	}
	wg.Wait()
	after, err := st.Get(ctx, ref)
	if err != nil {
		return ""
	}
	var lost []string
	for j, l := range labels {
		if errs[j] == nil && after.Meta().Labels[l] != fmt.Sprint(round) {
			lost = append(lost, fmt.Sprintf("%s=%d", l, round))
		}
		if errs[j] == nil {
			acked.add(ref, l, fmt.Sprint(round))
		}
	}
	if len(lost) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s reported applied and gone", ref, strings.Join(lost, ", "))
}

// node is the node answering url ("" when none answers).
func node(url string) string {
	c := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return resp.Header.Get("X-Sitekeeper-Node")
}

func waitServed(ctx context.Context, urls []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var missing []string
		for _, u := range urls {
			if node(u) == "" {
				missing = append(missing, u)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not served within %s: %s", within, strings.Join(missing, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
