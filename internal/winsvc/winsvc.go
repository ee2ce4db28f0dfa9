// Package winsvc runs the agent as a Windows service and manages its
// registration (install, uninstall, start, stop) through the Service
// Control Manager. Off Windows every call reports that it needs Windows.
package winsvc

import (
	"errors"
	"strings"
)

// DefaultName is the service's name in the Service Control Manager.
const DefaultName = "sitekeeper"

// ErrNotWindows is returned by every call on other systems.
var ErrNotWindows = errors.New("the service control manager exists only on Windows; run `sitekeeper agent` directly (systemd, a terminal)")

// Config describes the service to install.
type Config struct {
	Name string
	// Exe is the full path of sitekeeper.exe.
	Exe string
	// Args are the arguments the service starts with; they must begin with
	// "agent".
	Args []string
}

// ServiceArgs are the arguments the service starts with: Args, with
// --service-name set to the installed name, so that the agent reports to
// the SCM and writes its event log under that name, not the default.
func (c Config) ServiceArgs() []string {
	for _, a := range c.Args {
		if a == "--service-name" || strings.HasPrefix(a, "--service-name=") {
			return c.Args
		}
	}
	return append(append([]string(nil), c.Args...), "--service-name", c.Name)
}

// Validate checks what Install would register.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("service name is empty")
	}
	if len(c.Args) == 0 || c.Args[0] != "agent" {
		return errors.New("the service runs the agent: give its arguments after --, starting with agent (sitekeeper service install -- agent --node node1 ...)")
	}
	for _, a := range c.Args {
		if strings.ContainsAny(a, "\x00\r\n") {
			return errors.New("service arguments cannot hold line breaks or NUL")
		}
	}
	return nil
}
