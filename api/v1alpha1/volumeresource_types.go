package v1alpha1

// VolumeResource protects one volume holding site content: brought online on
// the active node before its sites start, released when they stop.
type VolumeResource struct {
	TypeMeta `json:",inline"`
	// Metadata names the object.
	Metadata ObjectMeta `json:"metadata"`
	// Spec is the desired volume.
	Spec VolumeResourceSpec `json:"spec"`
	// Status is written by Sitekeeper.
	Status Status `json:"status,omitzero"`
}

// VolumeResourceSpec declares where the volume appears and what backs it.
type VolumeResourceSpec struct {
	// DriveLetter is the letter the volume is mounted on ("E"). Set
	// driveLetter or mountPath.
	DriveLetter string `json:"driveLetter,omitempty"`
	// MountPath is the folder the volume is mounted on ("C:\ClusterStorage\web").
	// Set driveLetter or mountPath.
	MountPath string `json:"mountPath,omitempty"`
	// Source says what backs the volume: a shared disk or a mirror.
	Source VolumeSource `json:"source"`
	// Placement is the group's nodes in priority order; it may be left out
	// when another member of the group declares it.
	Placement Placement `json:"placement,omitzero"`
}

// VolumeSource is exactly one of sharedDisk or mirror.
type VolumeSource struct {
	// SharedDisk is a disk every node can reach, reserved by the active node.
	SharedDisk *SharedDiskSource `json:"sharedDisk,omitempty"`
	// Mirror is a local volume replicated between nodes; the active node
	// holds the source, the others a locked target.
	Mirror *MirrorSource `json:"mirror,omitempty"`
}

// SharedDiskSource identifies a shared disk by a stable identity, never by
// disk number (numbers change between boots and nodes).
type SharedDiskSource struct {
	// UniqueID is the disk's UniqueId as Get-Disk shows it.
	UniqueID string `json:"uniqueId,omitempty"`
	// SerialNumber is the disk's serial number; used when uniqueId is empty.
	SerialNumber string `json:"serialNumber,omitempty"`
}

// MirrorSource names a replicated volume.
type MirrorSource struct {
	// Volume is the mirrored volume's drive letter on every node ("E").
	Volume string `json:"volume"`
}

// VolumeResourceList is a list of VolumeResources.
type VolumeResourceList struct {
	TypeMeta `json:",inline"`
	// Items are the objects.
	Items []VolumeResource `json:"items"`
}
