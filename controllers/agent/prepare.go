package agent

import (
	"context"
	"slices"
	"strings"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/plan"
)

// prepare readies a backend that needs it before the node is observed: it
// tells a VolumeProtector which volumes the node's groups use, and runs a
// Preflight check once per need (again after a failure), so a node that
// lacks a Windows feature changes nothing at all.
func (a *Agent) prepare(ctx context.Context, d *plan.Desired) error {
	vp, protects := a.Backend.(backend.VolumeProtector)
	pf, checks := a.Backend.(backend.Preflight)
	if !protects && !checks {
		return nil
	}
	// The walk over every group runs once per desired state read, not
	// once per group reconciled.
	a.mu.Lock()
	needFTP, fresh := a.needFTP, a.preparedFor == d.Graph
	a.mu.Unlock()
	if !fresh {
		var vols []backend.Volume
		vols, needFTP = a.placedHere(d)
		if protects {
			vp.Protect(vols)
		}
		a.mu.Lock()
		a.preparedFor, a.needFTP = d.Graph, needFTP
		a.mu.Unlock()
	}
	if !checks {
		return nil
	}
	a.mu.Lock()
	done := a.preflightOK[needFTP]
	a.mu.Unlock()
	if done {
		return nil
	}
	if err := pf.CheckFeatures(ctx, needFTP); err != nil {
		a.Log.Error(err, "Node lacks a prerequisite; changing nothing", "node", a.Node)
		return err
	}
	a.mu.Lock()
	a.preflightOK[needFTP] = true
	a.mu.Unlock()
	return nil
}

// placedHere returns the volumes of the groups whose placement names this
// node, and whether any of their sites serves FTP.
func (a *Agent) placedHere(d *plan.Desired) ([]backend.Volume, bool) {
	var vols []backend.Volume
	needFTP := false
	for _, g := range d.Graph.Groups {
		if !slices.ContainsFunc(g.Placement.Nodes, func(n string) bool { return strings.EqualFold(n, a.Node) }) {
			continue
		}
		for _, ref := range g.Members {
			switch o := d.Graph.Object(ref).(type) {
			case *v1alpha1.VolumeResource:
				vols = append(vols, plan.RenderVolume(o))
			case *v1alpha1.IISSite:
				for _, b := range o.Spec.Bindings {
					needFTP = needFTP || b.Protocol == v1alpha1.ProtocolFTP
				}
			}
		}
	}
	return vols, needFTP
}
