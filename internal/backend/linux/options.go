package linux

import (
	"time"

	"github.com/go-logr/logr"
)

// Options configure the Linux backend.
type Options struct {
	// Interface carries addresses whose IPResource names none.
	Interface string
	// Lifetime is the valid lifetime given to an address and renewed at
	// every lease renewal; at least one second (the kernel counts whole
	// seconds). Zero means one second.
	Lifetime time.Duration
	// ProbeFor is how long an address may still be answered by another
	// machine before AddAddress gives up with ErrAddressInUse.
	ProbeFor time.Duration
	Log      logr.Logger
}
