package v1alpha1

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Object is implemented by every kind of this API.
type Object interface {
	// GetKind returns the object's kind.
	GetKind() string
	// Meta returns the object's metadata, for reading and writing.
	Meta() *ObjectMeta
	// PlacementSpec returns the declared placement, for reading and writing.
	PlacementSpec() *Placement
	// StatusRef returns the object's status, for reading and writing.
	StatusRef() *Status
	// SpecJSON returns the spec encoded as JSON, to compare specs.
	SpecJSON() []byte
}

// GetKind returns "IISSite".
func (o *IISSite) GetKind() string { return KindIISSite }

// Meta returns the metadata.
func (o *IISSite) Meta() *ObjectMeta { return &o.Metadata }

// PlacementSpec returns the placement.
func (o *IISSite) PlacementSpec() *Placement { return &o.Spec.Placement }

// StatusRef returns the status.
func (o *IISSite) StatusRef() *Status { return &o.Status }

// SpecJSON returns the spec as JSON.
func (o *IISSite) SpecJSON() []byte { return mustJSON(o.Spec) }

// GetKind returns "IPResource".
func (o *IPResource) GetKind() string { return KindIPResource }

// Meta returns the metadata.
func (o *IPResource) Meta() *ObjectMeta { return &o.Metadata }

// PlacementSpec returns the placement.
func (o *IPResource) PlacementSpec() *Placement { return &o.Spec.Placement }

// StatusRef returns the status.
func (o *IPResource) StatusRef() *Status { return &o.Status }

// SpecJSON returns the spec as JSON.
func (o *IPResource) SpecJSON() []byte { return mustJSON(o.Spec) }

// GetKind returns "VolumeResource".
func (o *VolumeResource) GetKind() string { return KindVolumeResource }

// Meta returns the metadata.
func (o *VolumeResource) Meta() *ObjectMeta { return &o.Metadata }

// PlacementSpec returns the placement.
func (o *VolumeResource) PlacementSpec() *Placement { return &o.Spec.Placement }

// StatusRef returns the status.
func (o *VolumeResource) StatusRef() *Status { return &o.Status }

// SpecJSON returns the spec as JSON.
func (o *VolumeResource) SpecJSON() []byte { return mustJSON(o.Spec) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every spec type is plain data; failing here is a programming error.
		panic(fmt.Sprintf("encode spec: %v", err))
	}
	return b
}

// Kinds lists the kinds in the order objects are brought up.
var Kinds = []string{KindVolumeResource, KindIPResource, KindIISSite}

// New returns an empty object of kind, or nil for an unknown kind.
func New(kind string) Object {
	switch kind {
	case KindIISSite:
		return &IISSite{TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindIISSite}}
	case KindIPResource:
		return &IPResource{TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindIPResource}}
	case KindVolumeResource:
		return &VolumeResource{TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindVolumeResource}}
	}
	return nil
}

// ShallowCopy returns a copy of o's top-level struct: its metadata and
// status may be replaced without touching o; maps and slices are shared,
// so they must not be changed.
func ShallowCopy(o Object) Object {
	switch t := o.(type) {
	case *IISSite:
		c := *t
		return &c
	case *IPResource:
		c := *t
		return &c
	case *VolumeResource:
		c := *t
		return &c
	}
	return DeepCopy(o)
}

// DeepCopy returns an independent copy of o.
func DeepCopy(o Object) Object {
	b, err := json.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("encode %s: %v", o.GetKind(), err))
	}
	c := New(o.GetKind())
	if err := json.Unmarshal(b, c); err != nil {
		panic(fmt.Sprintf("decode %s: %v", o.GetKind(), err))
	}
	return c
}

// Ref names one object: Kind/name.
type Ref struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// RefOf returns the reference of o.
func RefOf(o Object) Ref { return Ref{Kind: o.GetKind(), Name: o.Meta().Name} }

// String formats the reference as Kind/name.
func (r Ref) String() string { return r.Kind + "/" + r.Name }

// ParseKind resolves a kind as users type it (kubectl style: plural,
// singular or short name, any case) to its Kind.
func ParseKind(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "iissite", "iissites", "site", "sites":
		return KindIISSite, true
	case "ipresource", "ipresources", "ip", "ips":
		return KindIPResource, true
	case "volumeresource", "volumeresources", "vol", "vols", "volume", "volumes":
		return KindVolumeResource, true
	}
	return "", false
}

// KindOrder ranks kinds for sorting: sites first, then addresses, then volumes.
func KindOrder(kind string) int {
	switch kind {
	case KindIISSite:
		return 0
	case KindIPResource:
		return 1
	case KindVolumeResource:
		return 2
	}
	return 3
}
