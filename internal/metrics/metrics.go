// Package metrics is Sitekeeper's Prometheus series. What happens in a
// process (a step, a probe, a move) is counted where it happens, through
// the hooks of Set; what the cluster looks like (where each group runs, its
// standbys, each node's lease) is read at scrape time from the dashboard's
// live view, so a scrape costs a walk over memory, not a store read.
//
// Names follow Prometheus' naming guide: a sitekeeper_ prefix, base units
// (seconds), _total on counters. Labels take group, node, site and source
// names and small fixed sets (actions, results, reasons); nothing else.
package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Set is one process's series. A nil *Set counts nothing, so a
// controller built without one (a test, a benchmark) needs no stub.
type Set struct {
	reg           *prometheus.Registry
	moves         *prometheus.CounterVec
	takeover      *prometheus.HistogramVec
	reconcile     *prometheus.HistogramVec
	steps         *prometheus.CounterVec
	drift         *prometheus.CounterVec
	probeFailures *prometheus.CounterVec
	restarts      *prometheus.CounterVec
	fences        *prometheus.CounterVec
	sourceApplied *prometheus.CounterVec
	sourceRefused *prometheus.CounterVec
}

// New makes a Set with the Go runtime's and the process's own series.
func New() *Set {
	s := &Set{reg: prometheus.NewRegistry()}
	s.moves = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitekeeper_placement_moves_total",
		Help: "Groups moved by the placement leader, by reason: FailedOver, SwitchedOver (asked for), SwitchedBack (preferred node back)."}, []string{"group", "reason"})
	s.takeover = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sitekeeper_takeover_duration_seconds",
		Help:    "From the leader's decision to move a group to the first healthy probe on its new node, by reason.",
		Buckets: []float64{0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120}}, []string{"reason"})
	s.reconcile = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sitekeeper_reconcile_duration_seconds",
		Help:    "One reconcile of a batch of groups on a node: read, observe, plan, steps, report.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"node"})
	s.steps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitekeeper_steps_total",
		Help: "Steps executed on a node, by action (CreateSite, StartSite, AddAddress, ...) and result (ok, error)."}, []string{"node", "action", "result"})
	s.drift = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitekeeper_drift_repaired_total",
		Help: "Steps that repaired drift (a converged group whose desired state and placement had not changed), by kind: the step's action."}, []string{"node", "kind"})
	s.probeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitekeeper_health_probe_failures_total",
		Help: "Failed health probes of an active site."}, []string{"node", "site"})
	s.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitekeeper_local_restarts_total",
		Help: "Sites restarted in place after failed checks (local recovery before failover)."}, []string{"node", "site"})
	s.fences = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitekeeper_fences_total",
		Help: "Times a node fenced itself (could not renew its lease) and came back."}, []string{"node"})
	s.sourceApplied = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitekeeper_source_change_sets_applied_total",
		Help: "Change sets of a manifest source applied."}, []string{"source"})
	s.sourceRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitekeeper_source_change_sets_refused_total",
		Help: "Change sets of a manifest source refused (invalid, rollback, fetch failure); the last good one stays in force."}, []string{"source"})
	s.reg.MustRegister(s.moves, s.takeover, s.reconcile, s.steps, s.drift, s.probeFailures, s.restarts, s.fences, s.sourceApplied, s.sourceRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// Register adds collectors (the cluster state's gauges).
func (s *Set) Register(cs ...prometheus.Collector) { s.reg.MustRegister(cs...) }

// Handler serves the series in Prometheus' text format.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
}

// Gather is for tests: the series as scraped.
func (s *Set) Gather() (map[string]float64, error) {
	mfs, err := s.reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out, nil
}

// Step counts a step a node ran; drift says it repaired drift.
func (s *Set) Step(node, action string, err error, drift bool) {
	if s == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.steps.WithLabelValues(node, action, result).Inc()
	if drift && err == nil {
		s.drift.WithLabelValues(node, action).Inc()
	}
}

// Reconciled times one reconcile of a batch on node.
func (s *Set) Reconciled(node string, took time.Duration) {
	if s == nil {
		return
	}
	s.reconcile.WithLabelValues(node).Observe(took.Seconds())
}

// ProbeFailed counts a failed health probe of site on node.
func (s *Set) ProbeFailed(node, site string) {
	if s == nil {
		return
	}
	s.probeFailures.WithLabelValues(node, site).Inc()
}

// TookOver times a move from its decision to the first healthy probe.
func (s *Set) TookOver(reason string, took time.Duration) {
	if s == nil {
		return
	}
	s.takeover.WithLabelValues(reason).Observe(took.Seconds())
}

// Record counts what events say happened once each: moves, local
// restarts, fences, change sets. It is a record.Recorder, teed beside the
// store's, so a process counts the events it makes.
func (s *Set) Record(e store.Event) {
	if s == nil {
		return
	}
	switch e.Reason {
	case v1alpha1.ReasonFailedOver, v1alpha1.ReasonSwitchedOver, v1alpha1.ReasonSwitchedBack:
		if g, ok := strings.CutPrefix(e.Object, "group/"); ok {
			s.moves.WithLabelValues(g, e.Reason).Inc()
		}
	case v1alpha1.EventLocalRestart:
		_, site, _ := strings.Cut(e.Object, "/")
		s.restarts.WithLabelValues(e.Node, site).Inc()
	case v1alpha1.EventFenced:
		s.fences.WithLabelValues(e.Node).Inc()
	case v1alpha1.EventSourceApplied:
		s.sourceApplied.WithLabelValues(sourceOf(e.Object)).Inc()
	case v1alpha1.EventSourceRefused, v1alpha1.EventSourceFetchFailed:
		s.sourceRefused.WithLabelValues(sourceOf(e.Object)).Inc()
	}
}

func sourceOf(object string) string {
	_, name, _ := strings.Cut(object, "/")
	return name
}
