package console

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The cluster's state as gauges, read from the live view at scrape time.
var (
	descGroupActive = prometheus.NewDesc("sitekeeper_group_active_node",
		"1 for the node that serves the group; no series while no node does.", []string{"group", "node"}, nil)
	descGroupHealthy = prometheus.NewDesc("sitekeeper_group_healthy_nodes",
		"Nodes serving the group with its sites passing their checks (0 or 1: a group runs on one node).", []string{"group"}, nil)
	descGroupStandby = prometheus.NewDesc("sitekeeper_group_standby_nodes",
		"The group's other nodes that could take it over now.", []string{"group"}, nil)
	descGroupSuspended = prometheus.NewDesc("sitekeeper_group_suspended",
		"1 while the group is suspended (maintenance: nothing started, stopped or failed over).", []string{"group"}, nil)
	descNodeReady = prometheus.NewDesc("sitekeeper_node_ready",
		"1 while the node holds its lease.", []string{"node"}, nil)
	descLeaseAge = prometheus.NewDesc("sitekeeper_node_lease_age_seconds",
		"Time since the node last renewed its lease (whole seconds, as the store counts them).", []string{"node"}, nil)
	descBudget = prometheus.NewDesc("sitekeeper_node_takedown_budget_seconds",
		"How long the node may need to take down what it holds once fenced; a failover waits this long after its lease expired.", []string{"node"}, nil)
	descSource = prometheus.NewDesc("sitekeeper_source_info",
		"The revision in force of each manifest source (value 1).", []string{"source", "revision"}, nil)
	descSourceApplied = prometheus.NewDesc("sitekeeper_source_applied_timestamp_seconds",
		"When the source's revision in force was applied (Unix time).", []string{"source"}, nil)
	descSourceRefused = prometheus.NewDesc("sitekeeper_source_refusing",
		"1 while the source's newest change set is refused (the last good one stays in force).", []string{"source"}, nil)
)

type stateCollector struct{ live *live }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGroupActive, descGroupHealthy, descGroupStandby, descGroupSuspended, descNodeReady, descLeaseAge, descBudget, descSource, descSourceApplied, descSourceRefused} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, _, _ := c.live.current(ctx, true)
	if snap == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, g := range snap.Groups {
		if g.Active != "" {
			gauge(descGroupActive, 1, g.Name, g.Active)
		}
		gauge(descGroupHealthy, b2f(g.Healthy), g.Name)
		ready := 0
		for _, s := range g.Standbys {
			if s.Ready {
				ready++
			}
		}
		gauge(descGroupStandby, float64(ready), g.Name)
		gauge(descGroupSuspended, b2f(g.Suspended), g.Name)
	}
	for _, n := range snap.Nodes {
		gauge(descNodeReady, b2f(n.Status == "Ready"), n.Name)
		if age, ok := snap.leases[n.Name]; ok {
			gauge(descLeaseAge, age.Seconds(), n.Name)
		}
		if d, err := time.ParseDuration(n.TakedownBudget); err == nil {
			gauge(descBudget, d.Seconds(), n.Name)
		}
	}
	for _, s := range snap.Sources {
		if s.Revision != "" {
			gauge(descSource, 1, s.Name, s.Revision)
		}
		if !s.AppliedAt.IsZero() {
			gauge(descSourceApplied, float64(s.AppliedAt.UnixNano())/1e9, s.Name)
		}
		gauge(descSourceRefused, b2f(s.Refused != ""), s.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
