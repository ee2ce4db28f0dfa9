package plan

import (
	"context"
	"fmt"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// Execute runs one step on a node's backend.
func Execute(ctx context.Context, n backend.Node, s Step) error {
	var err error
	switch s.Action {
	case VolumeOnline:
		err = n.BringOnline(ctx, s.Volume.ID, s.Volume.Root)
	case VolumeOffline:
		err = n.TakeOffline(ctx, s.Volume.ID)
	case AddAddress:
		err = n.AddAddress(ctx, *s.Address)
	case RemoveAddress:
		err = n.RemoveAddress(ctx, *s.Address)
	case CreateSite:
		err = n.CreateSite(ctx, *s.Site)
	case RenameSite:
		err = n.RenameSite(ctx, s.SiteName, s.NewName)
	case UpdateBindings:
		err = n.UpdateBindings(ctx, s.SiteName, s.Add, s.Remove)
	case SetPhysicalPath:
		err = n.SetPhysicalPath(ctx, s.SiteName, s.Value)
	case SetAppPool:
		err = n.SetAppPool(ctx, s.SiteName, s.Value)
	case SetAutoStart:
		err = n.SetAutoStart(ctx, s.SiteName, s.AutoStart)
	case StartSite:
		err = n.StartSite(ctx, s.SiteName)
	case StopSite:
		err = n.StopSite(ctx, s.SiteName)
	case DeleteSite:
		err = n.DeleteSite(ctx, s.SiteName)
	default:
		return fmt.Errorf("unknown action %q", s.Action)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.String(), err)
	}
	return nil
}

// Observe reads a node's state through its backend.
func Observe(ctx context.Context, node string, n backend.Node) (Observed, error) {
	o := Observed{Node: node}
	var err error
	if o.Sites, err = n.ListSites(ctx); err != nil {
		return o, fmt.Errorf("list sites on %s: %w", node, err)
	}
	if o.Addresses, err = n.ListAddresses(ctx); err != nil {
		return o, fmt.Errorf("list addresses on %s: %w", node, err)
	}
	if o.Volumes, err = n.ListVolumes(ctx); err != nil {
		return o, fmt.Errorf("list volumes on %s: %w", node, err)
	}
	return o, nil
}
