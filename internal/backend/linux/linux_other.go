//go:build !linux

package linux

import (
	"errors"

	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
)

// Node is the Linux backend; it exists only on Linux.
type Node struct{ *sim.Node }

// New is Linux-only.
func New(*sim.Node, Options) (*Node, error) {
	return nil, errors.New("the linux backend uses netlink and runs only on Linux")
}
