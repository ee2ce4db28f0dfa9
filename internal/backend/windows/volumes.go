package windows

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// diskRef names a shared disk by UniqueId or serial number.
type diskRef struct {
	UniqueID string `json:"uniqueId,omitempty"`
	Serial   string `json:"serial,omitempty"`
}

func diskRefOf(id backend.VolumeID) diskRef {
	if s, ok := strings.CutPrefix(id.ID, "serial:"); ok {
		return diskRef{Serial: s}
	}
	return diskRef{UniqueID: id.ID}
}

func (d diskRef) id() backend.VolumeID {
	if d.UniqueID != "" {
		return backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: d.UniqueID}
	}
	return backend.VolumeID{Kind: backend.VolumeSharedDisk, ID: "serial:" + d.Serial}
}

type wireVolume struct {
	DriveLetter string       `json:"driveLetter"`
	AccessPaths list[string] `json:"accessPaths"`
	FileSystem  string       `json:"fileSystem"`
	Health      string       `json:"health"`
	Operational string       `json:"operational"`
}

type wireDisk struct {
	diskRef
	Found     bool             `json:"found"`
	IsOffline bool             `json:"isOffline"`
	Reason    string           `json:"offlineReason"`
	ReadOnly  bool             `json:"isReadOnly"`
	Volumes   list[wireVolume] `json:"volumes"`
}

// roots are the places a volume is mounted ("E:\", mount folders).
func (v wireVolume) roots() []string {
	var out []string
	if v.DriveLetter != "" && v.DriveLetter != "\u0000" {
		out = append(out, strings.ToUpper(v.DriveLetter)+`:\`)
	}
	for _, p := range v.AccessPaths {
		if !strings.HasPrefix(p, `\\?\`) {
			out = append(out, p)
		}
	}
	return out
}

// roots are the places a disk's volumes are mounted.
func (d wireDisk) roots() []string {
	var out []string
	for _, v := range d.Volumes {
		out = append(out, v.roots()...)
	}
	return out
}

// usable explains why the disk cannot serve root, or returns "".
func (d wireDisk) usable(root string) string {
	switch {
	case !d.Found:
		return "not found on this node"
	case d.IsOffline:
		return "offline (" + d.Reason + ")"
	case d.ReadOnly:
		return "read-only"
	}
	for _, v := range d.Volumes {
		for _, r := range v.roots() {
			if !strings.EqualFold(strings.TrimSuffix(r, `\`), strings.TrimSuffix(root, `\`)) {
				continue
			}
			if !strings.EqualFold(v.Health, "Healthy") {
				return fmt.Sprintf("volume at %s is %s (%s)", root, v.Health, v.Operational)
			}
			if fs := strings.ToUpper(v.FileSystem); fs != "NTFS" && fs != "REFS" {
				return fmt.Sprintf("volume at %s has file system %q (not mounted, or RAW)", root, v.FileSystem)
			}
			return ""
		}
	}
	return fmt.Sprintf("no volume mounted at %s (mounted at %s); give it that drive letter on every node", root, strings.Join(d.roots(), ", "))
}

// volumeSet is the volumes the node protects: ListVolumes reports exactly
// these (the agent tells the backend through Protect).
type volumeSet struct {
	mu    sync.Mutex
	roots map[backend.VolumeID]string
}

// Protect sets the volumes ListVolumes reports, with their mount roots.
func (b *Backend) Protect(vols []backend.Volume) {
	b.vols.mu.Lock()
	defer b.vols.mu.Unlock()
	b.vols.roots = map[backend.VolumeID]string{}
	for _, v := range vols {
		b.vols.roots[v.ID] = v.Root
	}
}

func (b *Backend) protected() map[backend.VolumeID]string {
	b.vols.mu.Lock()
	defer b.vols.mu.Unlock()
	out := make(map[backend.VolumeID]string, len(b.vols.roots))
	for k, v := range b.vols.roots {
		out[k] = v
	}
	return out
}

type diskRequest struct {
	Op    string    `json:"op"`
	Disks []diskRef `json:"disks,omitempty"`
	Disk  *diskRef  `json:"disk,omitempty"`
	// Root, with online, is where the volume must be mounted and usable:
	// the script fails (VolumeUnusable) before anything after it runs.
	Root string `json:"root,omitempty"`
}

// ListVolumes implements backend.Volumes for the protected volumes: a
// shared disk is online when it is online, writable and its volume healthy
// at its root; a mirror when this node holds the source.
func (b *Backend) ListVolumes(ctx context.Context) ([]backend.Volume, error) {
	prot := b.protected()
	ids := make([]backend.VolumeID, 0, len(prot))
	for id := range prot {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	var disks []diskRef
	var out []backend.Volume
	for _, id := range ids {
		root := prot[id]
		switch id.Kind {
		case backend.VolumeSharedDisk:
			disks = append(disks, diskRefOf(id))
		case backend.VolumeMirror:
			role, err := b.mirrorRole(ctx, id.ID)
			if err != nil {
				return nil, err
			}
			out = append(out, backend.Volume{ID: id, Root: root, Online: role == MirrorSource})
		}
	}
	if len(disks) > 0 {
		var res struct {
			Disks list[wireDisk] `json:"disks"`
		}
		if err := runScript(ctx, b.scripts, scriptDisk, diskRequest{Op: "list", Disks: disks}, &res); err != nil {
			return nil, fmt.Errorf("list disks: %w", err)
		}
		for _, d := range res.Disks {
			root := prot[d.id()]
			out = append(out, backend.Volume{ID: d.id(), Root: root, Online: d.usable(root) == ""})
		}
	}
	return out, nil
}

// BringOnline implements backend.Volumes.
func (b *Backend) BringOnline(ctx context.Context, id backend.VolumeID, root string) error {
	return b.runOne(ctx, backend.GroupOp{Action: "VolumeOnline", Volume: &backend.Volume{ID: id, Root: root}})
}

// TakeOffline implements backend.Volumes. A mirror needs nothing here: the
// next source's SWITCHOVERVOLUME makes this node the locked target.
func (b *Backend) TakeOffline(ctx context.Context, id backend.VolumeID) error {
	return b.runOne(ctx, backend.GroupOp{Action: "VolumeOffline", Volume: &backend.Volume{ID: id}})
}
