// Package backend defines what a node has and how it is changed: IIS sites,
// IP addresses, volumes and probes. Every implementation (windows, sim,
// linux) shares these observed-state types; nothing above this package knows
// which backend it talks to.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// SiteState is IIS's run state of a site.
type SiteState string

// Site states.
const (
	SiteStarted SiteState = "Started"
	SiteStopped SiteState = "Stopped"
	SiteUnknown SiteState = "Unknown"
)

// Binding is one rendered IIS binding: a concrete IP, not an IPResource.
type Binding struct {
	Protocol string `json:"protocol"`
	IP       string `json:"ip"`
	Port     int32  `json:"port"`
	HostName string `json:"hostName,omitempty"`
	// CertHash is the certificate thumbprint (upper-case hex) of https/ftps.
	CertHash  string `json:"certHash,omitempty"`
	CertStore string `json:"certStore,omitempty"`
	SSLFlags  int32  `json:"sslFlags,omitempty"`
}

// Key identifies a binding for set comparison (host names compare
// case-insensitively, as IIS does).
func (b Binding) Key() string {
	return fmt.Sprintf("%s/%s:%d:%s/%s/%s/%d", b.Protocol, b.IP, b.Port, strings.ToLower(b.HostName), strings.ToUpper(b.CertHash), b.CertStore, b.SSLFlags)
}

// Endpoint is IIS's bindingInformation: ip:port:hostName.
func (b Binding) Endpoint() string { return fmt.Sprintf("%s:%d:%s", b.IP, b.Port, b.HostName) }

// String formats the binding for messages: "http 10.0.0.5:80:www.example.com".
func (b Binding) String() string { return b.Protocol + " " + b.Endpoint() }

// SiteConfig is a site's configuration, everything but its run state.
type SiteConfig struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	Bindings     []Binding `json:"bindings"`
	PhysicalPath string    `json:"physicalPath"`
	AppPool      string    `json:"appPool"`
	// AutoStart is IIS's serverAutoStart: start the site when IIS starts.
	AutoStart bool `json:"autoStart"`
	// FTPSSL is the FTP site's SSL mode (None, Explicit, Implicit); empty
	// for web sites.
	FTPSSL string `json:"ftpSSL,omitempty"`
	// FTPCertHash and FTPCertStore are an FTPS site's certificate; FTP keeps
	// it in the site's configuration, not in HTTP.sys.
	FTPCertHash  string `json:"ftpCertHash,omitempty"`
	FTPCertStore string `json:"ftpCertStore,omitempty"`
}

// Site is an observed site: its configuration and run state.
type Site struct {
	SiteConfig
	State SiteState `json:"state"`
}

// SortBindings orders bindings by key, so equal sets compare equal.
func SortBindings(bs []Binding) {
	sort.Slice(bs, func(i, j int) bool { return bs[i].Key() < bs[j].Key() })
}

// Address is an IP address on a node's interface.
type Address struct {
	// CIDR is the address with its prefix length ("10.0.0.5/24").
	CIDR string `json:"cidr"`
	// Interface is the interface alias; empty means the default interface.
	Interface string `json:"interface,omitempty"`
}

// IP returns the bare address ("10.0.0.5"), or CIDR itself when it does not
// parse (so that it still keys a map consistently).
func (a Address) IP() string {
	if p, err := netip.ParsePrefix(a.CIDR); err == nil {
		return p.Addr().String()
	}
	return a.CIDR
}

// VolumeID identifies a volume by a stable identity.
type VolumeID struct {
	// Kind is SharedDisk or Mirror.
	Kind string `json:"kind"`
	// ID is the disk's UniqueId/serial, or the mirrored volume's letter.
	ID string `json:"id"`
}

// String formats the identity: "SharedDisk:6000C29...".
func (v VolumeID) String() string { return v.Kind + ":" + v.ID }

// Volume kinds.
const (
	VolumeSharedDisk = "SharedDisk"
	VolumeMirror     = "Mirror"
)

// Volume is a protected volume as a node sees it.
type Volume struct {
	ID VolumeID `json:"id"`
	// Root is where the volume is mounted: "E:\" or a mount folder.
	Root string `json:"root"`
	// Online is true when this node holds the volume and it is readable.
	Online bool `json:"online"`
}

// Sites observes and changes IIS sites.
type Sites interface {
	// ListSites returns every site with its configuration and state.
	ListSites(ctx context.Context) ([]Site, error)
	// CreateSite creates a stopped site.
	CreateSite(ctx context.Context, cfg SiteConfig) error
	// UpdateBindings adds and removes bindings in one commit; bindings not
	// named stay as they are.
	UpdateBindings(ctx context.Context, site string, add, remove []Binding) error
	// SetPhysicalPath changes the root folder of the site's root application.
	SetPhysicalPath(ctx context.Context, site, path string) error
	// SetAppPool changes the application pool of the site's root application.
	SetAppPool(ctx context.Context, site, pool string) error
	// RenameSite renames a site, keeping its ID and configuration.
	RenameSite(ctx context.Context, from, to string) error
	// SetAutoStart sets serverAutoStart.
	SetAutoStart(ctx context.Context, site string, on bool) error
	// StartSite starts the site (web or FTP).
	StartSite(ctx context.Context, site string) error
	// StopSite stops the site (web or FTP).
	StopSite(ctx context.Context, site string) error
	// DeleteSite deletes the site's configuration.
	DeleteSite(ctx context.Context, site string) error
}

// Addresses observes and changes a node's IP addresses.
type Addresses interface {
	// ListAddresses returns the addresses the node holds.
	ListAddresses(ctx context.Context) ([]Address, error)
	// AddAddress adds an address (not persisted across reboots); it fails
	// with ErrAddressInUse when another machine holds it.
	AddAddress(ctx context.Context, a Address) error
	// RemoveAddress removes an address; removing an absent one is no error.
	RemoveAddress(ctx context.Context, a Address) error
}

// Volumes observes and changes protected volumes.
type Volumes interface {
	// ListVolumes returns the protected volumes the node knows of.
	ListVolumes(ctx context.Context) ([]Volume, error)
	// BringOnline makes the volume readable on this node at root; it fails
	// with ErrVolumeReserved while another node holds it.
	BringOnline(ctx context.Context, id VolumeID, root string) error
	// TakeOffline releases the volume; releasing an offline one is no error.
	TakeOffline(ctx context.Context, id VolumeID) error
}

// Prober checks that a binding serves.
type Prober interface {
	// Probe checks one binding: an HTTP(S) request for path, or an FTP
	// banner; nil when it answers as a healthy site does.
	Probe(ctx context.Context, b Binding, path string, timeout time.Duration) error
}

// Node is everything one node has.
type Node interface {
	Sites
	Addresses
	Volumes
	Prober
}

// Sentinel errors every backend maps its failures onto.
var (
	// ErrNotFound: the site, address or volume does not exist (IIS 1168).
	ErrNotFound = errors.New("not found")
	// ErrExists: a site of that name or ID already exists (IIS 183).
	ErrExists = errors.New("already exists")
	// ErrBindingConflict: another started site holds the ip:port:hostName.
	ErrBindingConflict = errors.New("binding in use by another site")
	// ErrAddressNotHeld: a site cannot start on an address the node lacks.
	ErrAddressNotHeld = errors.New("address not on this node")
	// ErrAddressInUse: another machine holds the address (duplicate
	// address detection); a human must find that machine.
	ErrAddressInUse = errors.New("address held by another machine")
	// ErrVolumeReserved: another node holds the volume.
	ErrVolumeReserved = errors.New("volume held by another node")
	// ErrUnsupported: the backend cannot do this (for example a
	// non-loopback address in the simulator); a human must change the spec.
	ErrUnsupported = errors.New("not supported by this backend")
	// ErrPoweredOff: the (simulated) node is down.
	ErrPoweredOff = errors.New("node is powered off")
	// ErrLeaseInDoubt: the node's lease may have run out (its renewal is
	// late, or the process was frozen while it wrote), so an address it
	// adds now could outlive the lease; retried after the next renewal.
	ErrLeaseInDoubt = errors.New("the node's lease may have run out")
)

// NeedsHuman reports whether err cannot be fixed by retrying.
func NeedsHuman(err error) bool {
	return errors.Is(err, ErrAddressInUse) || errors.Is(err, ErrUnsupported)
}

// VolumeProtector is a backend that must be told which volumes to watch
// (the Windows backend cannot list every disk and mirror cheaply); the agent
// calls Protect with the volumes of the groups placed on the node before
// it observes.
type VolumeProtector interface {
	Protect(vols []Volume)
}

// Preflight is a backend that checks the node's prerequisites (SEED-FACTS
// F1: the IIS features, and the FTP server when an FTP site is placed on
// the node). The agent changes nothing on a node that fails the check.
type Preflight interface {
	CheckFeatures(ctx context.Context, needFTP bool) error
}

// SiteChange is several configuration changes to one site; nil fields are
// left alone.
type SiteChange struct {
	Add, Remove  []Binding
	PhysicalPath *string
	AppPool      *string
	AutoStart    *bool
}

// SiteUpdater is a backend that commits several changes to one site
// together (the Windows backend: one CommitChanges), so IIS never runs a
// half-changed site.
type SiteUpdater interface {
	UpdateSite(ctx context.Context, site string, c SiteChange) error
}

// Sleep waits d, or until ctx ends (then its error): how a simulated or
// fake backend makes a call slow without ignoring its deadline.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StepCoster is a backend that knows what its steps cost: the duration of
// one step before any was measured (the take-down budget starts from it),
// and the deadline after which a call is cut off as hung.
type StepCoster interface {
	StepCost() time.Duration
	StepTimeout() time.Duration
}

// Parallel is a backend that can run the steps of several groups at once
// (each group's own steps stay in order): a node taking down or bringing
// up hundreds of groups finishes in a fraction of the time. A backend that
// is not Parallel runs one group's steps at a time.
type Parallel interface {
	Parallelism() int
}

// ParallelismOf is how many groups' steps n runs at once (at least 1).
func ParallelismOf(n Node) int {
	if p, ok := n.(Parallel); ok && p.Parallelism() > 1 {
		return p.Parallelism()
	}
	return 1
}

// LeaseFollower is a backend whose hold on the node's resources follows the
// agent's lease: the Linux backend gives virtual addresses a lifetime that
// each renewal extends, so a dead or frozen agent's addresses expire.
type LeaseFollower interface {
	// LeaseRenewed: the lease was just renewed; holds get their fresh
	// lifetime.
	LeaseRenewed()
	// HoldUntil: the renewal is late; the lease cannot expire before until,
	// so holds may be extended up to until, never past it (kernel lifetimes
	// count whole seconds, so an extension of less than one is skipped).
	HoldUntil(until time.Time)
}

// GroupOp is one take-down or bring-up step of a group, as a GroupRunner
// takes it: the action (StopSite, RemoveAddress, VolumeOffline,
// VolumeOnline, AddAddress, StartSite) and what it acts on.
type GroupOp struct {
	Action  string
	Site    string
	Address *Address
	Volume  *Volume
}

// GroupRunner is a backend that runs a group's take-down, or its bring-up,
// as one call (the Windows backend: one request to its PowerShell host
// instead of one a step). The ops run in order and stop at the first
// failure; done is how many completed.
type GroupRunner interface {
	RunGroup(ctx context.Context, ops []GroupOp) (done int, err error)
}

// StandbyNeeds is what a node must have to take a group over now.
type StandbyNeeds struct {
	// Certificates are the https/ftps bindings' certificates (the
	// binding's CertHash and CertStore).
	Certificates []Binding
	// Volumes are the group's volumes, by their resource name.
	Volumes map[string]Volume
	// Features are the IIS roles the group's protocols need
	// (Web-Server; Web-Ftp-Server for FTP).
	Features []string
	// Addresses are the group's addresses: another host answering one
	// would make the take-over fail.
	Addresses []Address
	// ServedBy is the node serving the group now ("" when none): its
	// answer for the addresses is expected, any other host's is not.
	ServedBy string
}

// StandbyChecker is a backend that proves a standby could take a group
// over now: certificates present with their private keys, volumes visible
// and attachable, IIS roles installed, addresses not answered by a third
// host. It returns what is missing, in words; none means ready.
type StandbyChecker interface {
	CheckStandby(ctx context.Context, need StandbyNeeds) []string
}
