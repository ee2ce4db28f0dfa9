package v1alpha1

import "time"

// Default values, in one place.
const (
	DefaultHTTPPort         = 80
	DefaultHTTPSPort        = 443
	DefaultFTPPort          = 21
	DefaultFTPImplicitPort  = 990
	DefaultAppPool          = "DefaultAppPool"
	DefaultCertificateStore = "My"
	DefaultHealthInterval   = 5 * time.Second
	DefaultHealthTimeout    = 2 * time.Second
	DefaultFailureThreshold = 3
	DefaultLocalRestarts    = 2
	DefaultHealthPath       = "/"
	DefaultMaxFailures      = 3
	DefaultFailureWindow    = time.Hour
	DefaultSwitchback       = SwitchbackManual
	AnnotationSource        = "sitekeeper.io/source"
	// AnnotationSwitchover is when `switchover` last asked for the
	// group's activeNode: a request even when the value is unchanged.
	AnnotationSwitchover = "sitekeeper.io/switchover"
)

// SystemAnnotations are the annotations Sitekeeper writes itself: never a
// difference from what the user wrote, never a field a manager owns.
var SystemAnnotations = []string{AnnotationSource, AnnotationSwitchover}

// WithoutSystemAnnotations returns a copy of m without them.
func WithoutSystemAnnotations(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	for _, k := range SystemAnnotations {
		delete(c, k)
	}
	return c
}

// Default fills every unset field of o that has a default. It is idempotent.
func Default(o Object) {
	defaultPlacement(o.PlacementSpec())
	if s, ok := o.(*IISSite); ok {
		defaultSite(&s.Spec)
	}
	if v, ok := o.(*VolumeResource); ok && len(v.Spec.DriveLetter) == 2 && v.Spec.DriveLetter[1] == ':' {
		v.Spec.DriveLetter = v.Spec.DriveLetter[:1]
	}
}

func defaultPlacement(p *Placement) {
	if p.IsZero() {
		// Left out: the group's declared placement applies.
		return
	}
	if p.Switchback == "" {
		p.Switchback = DefaultSwitchback
	}
	if p.MaxFailures == 0 {
		p.MaxFailures = DefaultMaxFailures
	}
	if p.FailureWindow == nil {
		p.FailureWindow = &Duration{DefaultFailureWindow}
	}
}

func defaultSite(s *IISSiteSpec) {
	if s.AppPool == "" {
		s.AppPool = DefaultAppPool
	}
	implicit := s.FTP != nil && s.FTP.SSL == FTPSSLImplicit
	if s.FTP != nil && s.FTP.SSL == "" {
		s.FTP.SSL = FTPSSLNone
	}
	if s.FTP != nil && s.FTP.Certificate != nil && s.FTP.Certificate.Store == "" {
		s.FTP.Certificate.Store = DefaultCertificateStore
	}
	for i := range s.Bindings {
		b := &s.Bindings[i]
		if b.Port == 0 {
			switch b.Protocol {
			case ProtocolHTTP:
				b.Port = DefaultHTTPPort
			case ProtocolHTTPS:
				b.Port = DefaultHTTPSPort
			case ProtocolFTP:
				b.Port = DefaultFTPPort
				if implicit {
					b.Port = DefaultFTPImplicitPort
				}
			}
		}
		if b.Certificate != nil && b.Certificate.Store == "" {
			b.Certificate.Store = DefaultCertificateStore
		}
	}
	h := &s.Health
	if h.Interval == nil {
		h.Interval = &Duration{DefaultHealthInterval}
	}
	if h.Timeout == nil {
		h.Timeout = &Duration{DefaultHealthTimeout}
	}
	if h.FailureThreshold == 0 {
		h.FailureThreshold = DefaultFailureThreshold
	}
	if h.LocalRestarts == 0 {
		h.LocalRestarts = DefaultLocalRestarts
	}
	if h.Path == "" {
		h.Path = DefaultHealthPath
	}
}
