// Package linux is the backend for Linux hosts: virtual IP addresses are
// put on real interfaces with netlink and announced with a gratuitous ARP,
// and sites are served by the simulated IIS (internal/backend/sim) bound to
// those real addresses. The end-to-end tests use it to move a real address
// between network namespaces.
//
// An address is added with a valid lifetime a little over the agent's fence
// deadline and refreshed at every lease renewal, so the kernel itself
// removes it from a node whose agent died or froze: a fence that holds even
// when the agent cannot act. Before adding an address the backend probes
// for it (ARP duplicate address detection) and waits while another machine
// still answers for it.
package linux
