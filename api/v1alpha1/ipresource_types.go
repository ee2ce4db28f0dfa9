package v1alpha1

// IPResource protects one IP address that moves with the sites bound to it.
type IPResource struct {
	TypeMeta `json:",inline"`
	// Metadata names the object.
	Metadata ObjectMeta `json:"metadata"`
	// Spec is the desired address.
	Spec IPResourceSpec `json:"spec"`
	// Status is written by Sitekeeper.
	Status Status `json:"status,omitzero"`
}

// IPResourceSpec declares the protected address.
type IPResourceSpec struct {
	// Address is a virtual IP in CIDR form ("10.0.0.50/24"), held by the
	// active node only, the same on every node. Set address or addresses.
	Address string `json:"address,omitempty"`
	// Addresses is real-IP mode: each node's own address in CIDR form, keyed
	// by node name; a site bound to this resource listens on the active
	// node's address. Set address or addresses.
	Addresses map[string]string `json:"addresses,omitempty"`
	// Interface is the network interface that carries the address
	// ("Ethernet0"); empty means the node's default interface.
	Interface string `json:"interface,omitempty"`
	// Interfaces overrides interface for the nodes where it differs, keyed by
	// node name.
	Interfaces map[string]string `json:"interfaces,omitempty"`
	// Placement is the group's nodes in priority order; it may be left out
	// when another member of the group declares it.
	Placement Placement `json:"placement,omitzero"`
}

// IPResourceList is a list of IPResources.
type IPResourceList struct {
	TypeMeta `json:",inline"`
	// Items are the objects.
	Items []IPResource `json:"items"`
}
