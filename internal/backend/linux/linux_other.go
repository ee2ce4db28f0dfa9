//go:build !linux

package linux

import (
	"errors"
	"time"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/backend/sim"
)

// Options configure the Linux backend.
type Options struct {
	Interface string
	Lifetime  time.Duration
	ProbeFor  time.Duration
	Log       logr.Logger
}

// Node is the Linux backend; it exists only on Linux.
type Node struct{ *sim.Node }

// New is Linux-only.
func New(*sim.Node, Options) (*Node, error) {
	return nil, errors.New("the linux backend uses netlink and runs only on Linux")
}
