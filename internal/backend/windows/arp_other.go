//go:build !windows

package windows

// gratuitousARP is Windows-only; elsewhere the backend runs only in tests.
var gratuitousARP func(ip, gateway string) error
