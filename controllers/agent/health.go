package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/health"
	"github.com/sitekeeper/sitekeeper/internal/parallel"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/record"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// CheckHealth probes every site of the groups active on this node whose
// check is due, restarts failing sites in place within their budget, and
// returns the groups whose health changed (to be reconciled, so that their
// status says so).
func (a *Agent) CheckHealth(ctx context.Context) ([]string, error) {
	a.mu.Lock()
	a.init()
	a.mu.Unlock()
	d, err := a.Source.Desired(ctx)
	if err != nil {
		return nil, err
	}
	now := a.Clock.Now()
	var changed []string
	seen := map[string]bool{}
	var nextDue time.Time
	defer func() {
		a.mu.Lock()
		a.nextDue = nextDue
		a.mu.Unlock()
	}()
	type check struct {
		group string
		site  *v1alpha1.IISSite
		tr    *health.Tracker
		err   error
	}
	var due []check
	for gi := range d.Graph.Groups {
		g := &d.Graph.Groups[gi]
		if !strings.EqualFold(d.Active[g.Name], a.Node) || d.Suspended[g.Name] {
			continue
		}
		for _, m := range g.Members {
			s, ok := d.Graph.Object(m).(*v1alpha1.IISSite)
			if !ok {
				continue
			}
			seen[s.Metadata.Name] = true
			// Only a site this node converged as active is checked: a site
			// still being brought up is not failing.
			a.mu.Lock()
			ap, converged := a.applied[m]
			a.mu.Unlock()
			if !converged || !ap.Active {
				continue
			}
			tr := a.tracker(s)
			if !tr.Due(now) {
				if due := tr.Last.Add(tr.Policy.Interval); nextDue.IsZero() || due.Before(nextDue) {
					nextDue = due
				}
				continue
			}
			if due := now.Add(tr.Policy.Interval); nextDue.IsZero() || due.Before(nextDue) {
				nextDue = due
			}
			due = append(due, check{group: g.Name, site: s, tr: tr})
		}
	}
	// Probed side by side: after a failover every site the node took
	// over is due at once, and probing thousands one after another held
	// up the loop (and the bring-up of the groups whose decisions came
	// next) for seconds.
	parallel.Each(len(due), probesInFlight, func(i int) {
		c := &due[i]
		for _, b := range plan.RenderSite(c.site, d.Graph, a.Node).Bindings {
			if c.err = a.Backend.Probe(ctx, b, c.site.Spec.Health.Path, c.site.Spec.Health.Timeout.Duration); c.err != nil {
				break
			}
		}
	})
	for _, c := range due {
		s, tr, probeErr := c.site, c.tr, c.err
		a.timings.probe(c.group, probeErr, a.Clock.Now())
		if probeErr != nil {
			a.Metrics.ProbeFailed(a.Node, s.Metadata.Name)
		}
		wasFailed := tr.Failed
		switch tr.Record(now, probeErr) {
		case health.Restart:
			a.Log.Info("Restarting failing site in place", "node", a.Node, "site", s.Metadata.Name, "restart", tr.Restarts, "of", tr.Policy.LocalRestarts, "error", probeErr.Error())
			err := a.restart(ctx, s.Metadata.Name)
			msg := fmt.Sprintf("%s: restarted IISSite/%s in place (local recovery %d/%d) after failed checks: %v", a.Node, s.Metadata.Name, tr.Restarts, tr.Policy.LocalRestarts, probeErr)
			if err != nil {
				msg += "; the restart failed: " + err.Error()
			}
			record.Eventf(a.Recorder, store.Warning, v1alpha1.EventLocalRestart, v1alpha1.RefOf(s).String(), a.Node, "%s", msg)
		case health.Failed:
			a.mu.Lock()
			a.unhealth[c.group] = fmt.Sprintf("IISSite/%s fails its health checks after %d local restart(s): %v", s.Metadata.Name, tr.Restarts, probeErr)
			a.mu.Unlock()
			a.Log.Info("Site failed after local recovery", "node", a.Node, "site", s.Metadata.Name, "group", c.group, "error", probeErr.Error())
			changed = append(changed, c.group)
		default:
			if wasFailed && !tr.Failed {
				a.mu.Lock()
				delete(a.unhealth, c.group)
				a.mu.Unlock()
				changed = append(changed, c.group)
			}
		}
	}
	a.mu.Lock()
	for name, tr := range a.trackers {
		if !seen[name] {
			tr.Reset()
		}
	}
	a.mu.Unlock()
	return changed, nil
}

// probesInFlight bounds the health probes a node runs at once.
const probesInFlight = 32

func (a *Agent) restart(ctx context.Context, site string) error {
	if err := a.Backend.StopSite(ctx, site); err != nil {
		return err
	}
	return a.Backend.StartSite(ctx, site)
}

func (a *Agent) tracker(s *v1alpha1.IISSite) *health.Tracker {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := s.Spec.Health
	p := health.Policy{Interval: h.Interval.Duration, FailureThreshold: int(h.FailureThreshold), LocalRestarts: int(h.LocalRestarts)}
	tr, ok := a.trackers[s.Metadata.Name]
	if !ok {
		tr = &health.Tracker{Policy: p}
		a.trackers[s.Metadata.Name] = tr
	}
	tr.Policy = p
	return tr
}
