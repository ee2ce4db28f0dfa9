package etcdstore

import (
	"fmt"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// Key layout (every key lives under prefix):
//
//	objects/<Kind>/<name>          desired object (metadata + spec), JSON;
//	                               resourceVersion = the key's mod revision
//	status/<Kind>/<name>           status of the object, written by the leader
//	nodes/<node>                   NodeInfo, attached to the node's lease
//	lastknown/<node>               the node's last NodeInfo, kept after its
//	                               lease expired (its take-down budget)
//	reports/<group>/<node>         the node agent's Report on a group
//	placement/<group>              the leader's Decision: who serves the group
//	deleted/<Kind>/<name>/<node>   a node's confirmation that a deleted object
//	                               is out of service there
//	suspend/<Kind>/<name>          maintenance flag (Kind "Node" for a node)
//	events/<time>-<seq>            Event, kept for EventRetention
//	sim/<node>                     simulator commands (power, stop a site)
//	sources/<name>                 a manifest folder's applied revision and
//	                               inventory (GitOps)
//	sourcenodes/<name>/<node>      the revision each node's checkout has
//	observed/<node>                what a node last reported it has
//	drain/<node>                   a node being drained: how many of its
//	                               groups may move at once
//	requests/switchover/<group>    an operator's switchover, for the leader
//	election/                      etcd election of the placement leader
//
// Only this file builds keys.
const prefix = "/sitekeeper/"

func family(f store.Family) string { return prefix + string(f) }

func objectKey(r v1alpha1.Ref) string     { return family(store.FamilyObjects) + r.Kind + "/" + r.Name }
func statusKey(r v1alpha1.Ref) string     { return family(store.FamilyStatus) + r.Kind + "/" + r.Name }
func nodeKey(node string) string          { return family(store.FamilyNodes) + node }
func lastKnownKey(node string) string     { return prefix + "lastknown/" + node }
func reportKey(group, node string) string { return groupReportsKey(group) + node }
func groupReportsKey(group string) string { return family(store.FamilyReports) + group + "/" }
func decisionKey(group string) string     { return family(store.FamilyDecisions) + group }
func deletedPrefix(r v1alpha1.Ref) string {
	return family(store.FamilyDeleted) + r.Kind + "/" + r.Name + "/"
}
func deletedKey(r v1alpha1.Ref, node string) string { return deletedPrefix(r) + node }
func suspendKey(kind, name string) string           { return family(store.FamilySuspended) + kind + "/" + name }
func simKey(node string) string                     { return family(store.FamilySim) + node }
func sourceKey(name string) string                  { return family(store.FamilySources) + name }
func gitSourceKey(name string) string               { return family(store.FamilyGitSources) + name }
func sourceNodesPrefix() string                     { return prefix + "sourcenodes/" }
func sourceNodeKey(name, node string) string        { return sourceNodesPrefix() + name + "/" + node }
func observedKey(node string) string                { return family(store.FamilyObserved) + node }
func switchoverRequestsPrefix() string              { return family(store.FamilyRequests) + "switchover/" }
func eventsPrefix() string                          { return prefix + "events/" }
func eventKey(t time.Time, seq uint64) string {
	return fmt.Sprintf("%s%020d-%08d", eventsPrefix(), t.UnixNano(), seq)
}

// electionPrefix is the etcd election of the placement leader.
const electionPrefix = prefix + "election/"

// pingKey is read to learn the store's revision; nothing is stored there.
const pingKey = prefix + "ping"
