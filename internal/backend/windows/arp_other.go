//go:build !windows

package windows

// gratuitousARP is Windows-only; elsewhere the backend runs only in tests.
var gratuitousARP func(ip, gateway string) error

// arpWhoHas is Windows-only too.
var arpWhoHas func(ip string) (string, bool)
