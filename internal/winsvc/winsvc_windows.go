//go:build windows

package winsvc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// stopWait bounds a clean stop: the agent stops its sites' leases and
// releases nothing (the next leader moves groups after the lease expires).
const stopWait = 20 * time.Second

// IsService reports whether the Service Control Manager started us.
func IsService() bool {
	ok, err := svc.IsWindowsService()
	return err == nil && ok
}

type handler struct {
	name string
	run  func(context.Context) error
	err  error
}

// Execute implements svc.Handler: run the agent until the SCM says stop or
// shutdown, then cancel it and wait for it to return.
func (h *handler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	elog, _ := eventlog.Open(h.name)
	if elog != nil {
		defer elog.Close()
		_ = elog.Info(1, "sitekeeper agent started")
	}
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			// The agent ended on its own: an error is a failure the SCM's
			// recovery actions restart.
			h.err = err
			if err != nil && elog != nil {
				_ = elog.Error(3, "sitekeeper agent stopped: "+err.Error())
			}
			if err != nil {
				return true, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending, WaitHint: uint32(stopWait / time.Millisecond)}
				cancel()
				select {
				case h.err = <-done:
				case <-time.After(stopWait):
					h.err = errors.New("agent did not stop in time")
				}
				if elog != nil {
					_ = elog.Info(2, "sitekeeper agent stopped by the service control manager")
				}
				return false, 0
			}
		}
	}
}

// Run runs f as the service name until the SCM stops it.
func Run(name string, f func(context.Context) error) error {
	h := &handler{name: name, run: f}
	if err := svc.Run(name, h); err != nil {
		return fmt.Errorf("run service %s: %w", name, err)
	}
	return h.err
}

// Install registers the service (automatic start, restarted on failure)
// and its event log source.
func Install(c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service control manager: %w", err)
	}
	defer m.Disconnect()
	if s, err := m.OpenService(c.Name); err == nil {
		s.Close()
		return fmt.Errorf("service %s already exists; uninstall it first", c.Name)
	}
	// Automatic, not delayed: after a crash Windows brings a shared disk
	// back online at boot (its SAN policy applies only to new disks), and
	// the agent takes it offline before it joins; a delayed start would
	// leave it online for minutes.
	s, err := m.CreateService(c.Name, c.Exe, mgr.Config{
		DisplayName: "Sitekeeper agent",
		Description: "Keeps IIS sites, virtual IPs and volumes converged on their desired placement.",
		StartType:   mgr.StartAutomatic,
	}, c.ServiceArgs()...)
	if err != nil {
		return fmt.Errorf("create service %s: %w", c.Name, err)
	}
	defer s.Close()
	if err := s.SetRecoveryActions([]mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
	}, 24*60*60); err != nil {
		return errors.Join(fmt.Errorf("set the recovery actions of service %s (restart after a crash): %w", c.Name, err), deleteService(s, c.Name))
	}
	// An agent that stops with an error (the store unreachable at boot)
	// exits with a service-specific code: a failure the SCM restarts too,
	// not only a crash.
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return errors.Join(fmt.Errorf("set service %s to be restarted when it stops with an error: %w", c.Name, err), deleteService(s, c.Name))
	}
	if err := installEventSource(c.Name); err != nil {
		return errors.Join(fmt.Errorf("register event log source %s: %w", c.Name, err), deleteService(s, c.Name))
	}
	return nil
}

// installEventSource registers name as an Application event log source;
// one left behind by an earlier install (removed by hand, or a failed
// uninstall) is replaced.
func installEventSource(name string) error {
	const levels = eventlog.Error | eventlog.Warning | eventlog.Info
	err := eventlog.InstallAsEventCreate(name, levels)
	if err == nil || !strings.Contains(err.Error(), "registry key already exists") {
		return err
	}
	if err := eventlog.Remove(name); err != nil {
		return fmt.Errorf("remove the leftover source: %w", err)
	}
	return eventlog.InstallAsEventCreate(name, levels)
}

// open connects to the SCM and opens the installed service name.
func open(name string) (*mgr.Service, func(), error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the service control manager: %w", err)
	}
	s, err := m.OpenService(name)
	if err != nil {
		m.Disconnect()
		return nil, nil, fmt.Errorf("service %s is not installed", name)
	}
	return s, func() { s.Close(); m.Disconnect() }, nil
}

// Uninstall stops and removes the service and its event log source.
func Uninstall(name string) error {
	s, done, err := open(name)
	if err != nil {
		return err
	}
	defer done()
	// A service that is not running refuses the stop: that is fine here.
	if _, err := s.Control(svc.Stop); err != nil && !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return fmt.Errorf("stop service %s before removing it: %w", name, err)
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("delete service %s: %w", name, err)
	}
	if err := eventlog.Remove(name); err != nil {
		return fmt.Errorf("service %s deleted, but its event log source remains: %w", name, err)
	}
	return nil
}

// Start starts the installed service.
func Start(name string) error {
	s, done, err := open(name)
	if err != nil {
		return err
	}
	defer done()
	if err := s.Start(); err != nil {
		return fmt.Errorf("start service %s: %w", name, err)
	}
	return nil
}

// Stop stops the service and waits until it has stopped.
func Stop(name string) error {
	s, done, err := open(name)
	if err != nil {
		return err
	}
	defer done()
	st, err := s.Control(svc.Stop)
	if err != nil {
		return fmt.Errorf("stop service %s: %w", name, err)
	}
	deadline := time.Now().Add(stopWait + 5*time.Second)
	for st.State != svc.Stopped {
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s did not stop within %s", name, stopWait)
		}
		time.Sleep(300 * time.Millisecond)
		if st, err = s.Query(); err != nil {
			return fmt.Errorf("query service %s: %w", name, err)
		}
	}
	return nil
}

// deleteService undoes a half-made install.
func deleteService(s *mgr.Service, name string) error {
	if err := s.Delete(); err != nil {
		return fmt.Errorf("remove the half-installed service %s: %w", name, err)
	}
	return nil
}
