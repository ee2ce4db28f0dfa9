// Package testmanifests generates many resource groups for benchmarks and
// tests: group i is an IPResource on a loopback address, a shared-disk
// VolumeResource at C:\ClusterStorage\v<i>, and an IISSite on both.
package testmanifests

import (
	"fmt"
	"strings"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
)

// Options shape the generated groups.
type Options struct {
	// Net is the second octet of the addresses: group i holds
	// 127.<Net>.<i/250>.<i%250+1>, so benchmarks never share an address.
	Net  int
	Port int32
	// HostNames gives site i the host name s<i><HostSuffix>.
	HostNames  bool
	HostSuffix string
	Nodes      []string
	// Health is spec.health as a YAML flow map ("{interval: 2s}"); empty
	// leaves the defaults.
	Health string
	// MaxFailures sets placement.maxFailures when not zero.
	MaxFailures int
}

// Group returns group i as a multi-document manifest.
func Group(i int, o Options) string {
	return GroupAt(i, fmt.Sprintf("127.%d.%d.%d", o.Net, i/250, i%250+1), o)
}

// GroupAt is Group with its address given (for more groups than one
// 127.<Net> network holds); o.Net is not used.
func GroupAt(i int, addr string, o Options) string {
	host := ""
	if o.HostNames {
		host = fmt.Sprintf(", hostName: s%d%s", i, o.HostSuffix)
	}
	health := ""
	if o.Health != "" {
		health = "\n  health: " + o.Health
	}
	placement := "nodes: [" + strings.Join(o.Nodes, ", ") + "]"
	if o.MaxFailures != 0 {
		placement += fmt.Sprintf(", maxFailures: %d", o.MaxFailures)
	}
	return fmt.Sprintf(`apiVersion: sitekeeper.io/v1alpha1
kind: IPResource
metadata: {name: vip-%[1]d}
spec: {address: %[2]s/32}
---
apiVersion: sitekeeper.io/v1alpha1
kind: VolumeResource
metadata: {name: vol-%[1]d}
spec: {mountPath: 'C:\ClusterStorage\v%[1]d', source: {sharedDisk: {uniqueId: DISK%[1]d}}}
---
apiVersion: sitekeeper.io/v1alpha1
kind: IISSite
metadata: {name: site-%[1]d}
spec:
  siteID: %[3]d
  physicalPath: 'C:\ClusterStorage\v%[1]d\www'
  bindings: [{protocol: http, ipRef: vip-%[1]d, port: %[4]d%[5]s}]%[6]s
  placement: {%[7]s}
`, i, addr, i+1, o.Port, host, health, placement)
}

// Objects returns groups 0..n-1 decoded, read as files of at most 1,000
// groups each (a file is limited to 1 MiB).
func Objects(n int, o Options) []v1alpha1.Object {
	var out []v1alpha1.Object
	for first := 0; first < n; first += 1000 {
		var b strings.Builder
		for i := first; i < min(n, first+1000); i++ {
			b.WriteString(Group(i, o))
			b.WriteString("---\n")
		}
		docs, errs := manifest.Decode(fmt.Sprintf("generated-%d.yaml", first/1000), []byte(b.String()))
		if len(errs) > 0 {
			panic(fmt.Sprint("testmanifests: ", errs))
		}
		out = append(out, manifest.Objects(docs)...)
	}
	return out
}
