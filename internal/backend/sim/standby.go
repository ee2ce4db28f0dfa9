package sim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

var _ backend.StandbyChecker = (*Node)(nil)

// Faults (`sitekeeper sim hide-volume|remove-cert|remove-feature|fail-site`)
// are kept as keys: "volume:NAME", "cert:THUMBPRINT", "feature:NAME",
// "site:NAME".
func faultKey(kind, name string) string {
	if kind == "cert" {
		return kind + ":" + strings.ToUpper(name)
	}
	return kind + ":" + strings.ToLower(name)
}

// SetFaults replaces the node's standby faults (each "kind:name").
func (n *Node) SetFaults(faults []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = map[string]bool{}
	for _, f := range faults {
		kind, name, _ := strings.Cut(f, ":")
		n.faults[faultKey(kind, name)] = true
	}
}

func (n *Node) hasFault(kind, name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faults[faultKey(kind, name)]
}

// CheckStandby implements backend.StandbyChecker against the simulated
// machine: every certificate, volume and IIS role is there unless a sim
// command took it away; addresses are not probed (the simulator's are
// loopback aliases no third host can answer).
func (n *Node) CheckStandby(_ context.Context, need backend.StandbyNeeds) []string {
	var out []string
	for _, b := range need.Certificates {
		if n.hasFault("cert", b.CertHash) {
			out = append(out, fmt.Sprintf("certificate %s for %s is not in Cert:\\LocalMachine\\%s with its private key", b.CertHash, b, orMy(b.CertStore)))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(need.Volumes)) {
		if n.hasFault("volume", name) {
			out = append(out, fmt.Sprintf("volume %s (%s) is not visible to this node", name, need.Volumes[name].ID))
		}
	}
	for _, f := range need.Features {
		if n.hasFault("feature", f) {
			out = append(out, "IIS role "+f+" is not installed")
		}
	}
	return out
}

func orMy(store string) string {
	if store == "" {
		return "My"
	}
	return store
}
