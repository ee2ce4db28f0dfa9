package windows

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/backend/windows/iisconfig"
)

// Script names.
const (
	scriptIISList   = "iis-list.ps1"
	scriptIISChange = "iis-change.ps1"
	scriptIISRun    = "iis-run.ps1"
	scriptIP        = "ip.ps1"
	scriptDisk      = "disk.ps1"
	scriptFeatures  = "features.ps1"
	scriptMirror    = "datakeeper.ps1"
)

// wireBinding is a binding as IIS stores it: protocol and bindingInformation.
type wireBinding struct {
	Protocol    string `json:"protocol"`
	Information string `json:"bindingInformation"`
	SSLFlags    int32  `json:"sslFlags,omitempty"`
	CertHash    string `json:"certHash,omitempty"`
	CertStore   string `json:"certStore,omitempty"`
}

type wireSite struct {
	ID           int64             `json:"id"`
	Name         string            `json:"name"`
	Bindings     list[wireBinding] `json:"bindings"`
	PhysicalPath string            `json:"physicalPath"`
	AppPool      string            `json:"appPool"`
	AutoStart    bool              `json:"serverAutoStart"`
	WebState     string            `json:"webState"`
	FTPState     string            `json:"ftpState"`
	FTPPolicy    string            `json:"ftpPolicy"`
	FTPCertHash  string            `json:"ftpCertHash"`
}

// ParseSiteList decodes iis-list.ps1's reply into observed sites. Web state
// wins for a site with both web and FTP bindings; an FTP-only site's state
// is its ftpServer state; anything unreadable is Unknown, never Stopped.
func ParseSiteList(stdout []byte) ([]backend.Site, error) {
	var res struct {
		Sites list[wireSite] `json:"sites"`
	}
	if err := decodeReply(stdout, &res); err != nil {
		return nil, err
	}
	out := make([]backend.Site, 0, len(res.Sites))
	for _, w := range res.Sites {
		s := backend.Site{SiteConfig: backend.SiteConfig{ID: w.ID, Name: w.Name, PhysicalPath: w.PhysicalPath, AppPool: w.AppPool, AutoStart: w.AutoStart}}
		for _, wb := range w.Bindings {
			b, err := iisconfig.ParseBinding(wb.Protocol, wb.Information)
			if err != nil {
				return nil, fmt.Errorf("site %q: %w", w.Name, err)
			}
			b.SSLFlags = wb.SSLFlags
			b.CertHash = strings.ToUpper(strings.TrimPrefix(wb.CertHash, "\u200e"))
			if b.CertHash != "" {
				b.CertStore = canonicalStore(wb.CertStore)
			}
			s.Bindings = append(s.Bindings, b)
		}
		backend.SortBindings(s.Bindings)
		s.State = runState(w.WebState)
		if w.WebState == "" && w.FTPState != "" {
			s.State = runState(w.FTPState)
		}
		if w.FTPState != "" {
			s.FTPSSL = "None"
			if w.FTPCertHash != "" && !strings.EqualFold(w.FTPPolicy, "SslAllow") {
				s.FTPSSL = "Explicit"
				for _, b := range s.Bindings {
					if b.Protocol == "ftp" && b.Port == 990 {
						s.FTPSSL = "Implicit"
					}
				}
			}
			s.FTPCertHash = strings.ToUpper(w.FTPCertHash)
		}
		out = append(out, s)
	}
	return out, nil
}

func runState(s string) backend.SiteState {
	switch strings.ToLower(s) {
	case "started":
		return backend.SiteStarted
	case "stopped":
		return backend.SiteStopped
	}
	return backend.SiteUnknown
}

// canonicalStore spells certificate store names one way: HTTP.sys says
// "MY", the UI "My".
func canonicalStore(s string) string {
	switch strings.ToLower(s) {
	case "", "my":
		return "My"
	case "webhosting":
		return "WebHosting"
	}
	return s
}

// BindingInformation renders b as IIS stores it; IPv6 addresses get
// brackets.
func BindingInformation(b backend.Binding) string {
	return fmt.Sprintf("%s:%d:%s", bracketed(b.IP), b.Port, b.HostName)
}

// bracketed writes an IPv6 address in brackets, as IIS and netsh want it.
func bracketed(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}

// sslCert is one HTTP.sys certificate binding for iis-run.ps1 and
// iis-change.ps1.
type sslCert struct {
	IP       string `json:"ip"`
	Port     int32  `json:"port"`
	HostName string `json:"hostName,omitempty"`
	SNI      bool   `json:"sni,omitempty"`
	Hash     string `json:"hash"`
	Store    string `json:"store"`
}

// certificatesOf lists the HTTP.sys bindings a site's https bindings need:
// by hostname:port for SNI (sslFlags bit 1), by ip:port otherwise, "*"
// being 0.0.0.0.
func certificatesOf(bs []backend.Binding) []sslCert {
	var out []sslCert
	for _, b := range bs {
		if b.Protocol != "https" || b.CertHash == "" {
			continue
		}
		c := sslCert{IP: b.IP, Port: b.Port, HostName: b.HostName, SNI: b.SSLFlags&1 != 0, Hash: b.CertHash, Store: canonicalStore(b.CertStore)}
		if c.IP == "*" || c.IP == "" {
			c.IP = "0.0.0.0"
		}
		c.IP = bracketed(c.IP)
		out = append(out, c)
	}
	return out
}

func wire(bs []backend.Binding) []wireBinding {
	out := make([]wireBinding, 0, len(bs))
	for _, b := range bs {
		out = append(out, wireBinding{Protocol: b.Protocol, Information: BindingInformation(b), SSLFlags: b.SSLFlags})
	}
	return out
}

// changeRequest is iis-change.ps1's request; nil fields are left alone.
type changeRequest struct {
	Op           string        `json:"op"`
	Name         string        `json:"name"`
	NewName      string        `json:"newName,omitempty"`
	ID           int64         `json:"id,omitempty"`
	Add          []wireBinding `json:"add,omitempty"`
	Remove       []wireBinding `json:"remove,omitempty"`
	PhysicalPath *string       `json:"physicalPath,omitempty"`
	AppPool      *string       `json:"appPool,omitempty"`
	AutoStart    *bool         `json:"serverAutoStart,omitempty"`
	FTPSSL       string        `json:"ftpSSL,omitempty"`
	FTPCertHash  string        `json:"ftpCertHash,omitempty"`
	FTPCertStore string        `json:"ftpCertStore,omitempty"`
	// AddCerts and RemoveCerts are HTTP.sys bindings to change at once when
	// the site is running (a binding changed on an active site).
	AddCerts    []sslCert `json:"addCertificates,omitempty"`
	RemoveCerts []sslCert `json:"removeCertificates,omitempty"`
}

// runRequest is iis-run.ps1's request.
type runRequest struct {
	Op           string    `json:"op"`
	Name         string    `json:"name"`
	Certificates []sslCert `json:"certificates,omitempty"`
}

// CreateRequest is the request that creates cfg as a stopped site with
// serverAutoStart off unless cfg says otherwise.
func createRequest(cfg backend.SiteConfig) changeRequest {
	path, pool, auto := cfg.PhysicalPath, cfg.AppPool, cfg.AutoStart
	return changeRequest{Op: "create", Name: cfg.Name, ID: cfg.ID, Add: wire(cfg.Bindings), PhysicalPath: &path, AppPool: &pool, AutoStart: &auto,
		FTPSSL: cfg.FTPSSL, FTPCertHash: cfg.FTPCertHash, FTPCertStore: cfg.FTPCertStore}
}

func (b *Backend) change(ctx context.Context, req changeRequest) error {
	if err := runScript(ctx, b.scripts, scriptIISChange, req, nil); err != nil {
		return fmt.Errorf("%s site %q: %w", req.Op, req.Name, err)
	}
	return nil
}

// ListSites implements backend.Sites.
func (b *Backend) ListSites(ctx context.Context) ([]backend.Site, error) {
	reply, err := b.scripts.Call(ctx, scriptIISList, []byte("{}"))
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	sites, err := ParseSiteList(reply)
	if errors.Is(err, ErrFeatureMissing) {
		// No IIS management module: appcmd still reads the configuration.
		if ac, acErr := b.listSitesAppcmd(ctx); acErr == nil {
			b.log.V(1).Info("Listed sites through appcmd", "reason", err.Error())
			sites, err = ac, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	b.certs.fill(sites)
	return sites, nil
}

// CreateSite implements backend.Sites.
func (b *Backend) CreateSite(ctx context.Context, cfg backend.SiteConfig) error {
	if len(cfg.Bindings) == 0 {
		return fmt.Errorf("create site %q: IIS needs at least one binding", cfg.Name)
	}
	if err := b.change(ctx, createRequest(cfg)); err != nil {
		return err
	}
	return b.certs.record(cfg.Name, cfg.Bindings, nil)
}

// UpdateSite implements backend.SiteUpdater: one request, one commit.
func (b *Backend) UpdateSite(ctx context.Context, site string, c backend.SiteChange) error {
	req := changeRequest{Op: "update", Name: site, Add: wire(c.Add), Remove: wire(c.Remove), PhysicalPath: c.PhysicalPath, AppPool: c.AppPool, AutoStart: c.AutoStart,
		AddCerts: certificatesOf(c.Add), RemoveCerts: certificatesOf(c.Remove)}
	if err := b.change(ctx, req); err != nil {
		return err
	}
	return b.certs.record(site, c.Add, c.Remove)
}

// UpdateBindings implements backend.Sites.
func (b *Backend) UpdateBindings(ctx context.Context, site string, add, remove []backend.Binding) error {
	return b.UpdateSite(ctx, site, backend.SiteChange{Add: add, Remove: remove})
}

// SetPhysicalPath implements backend.Sites.
func (b *Backend) SetPhysicalPath(ctx context.Context, site, path string) error {
	return b.UpdateSite(ctx, site, backend.SiteChange{PhysicalPath: &path})
}

// SetAppPool implements backend.Sites.
func (b *Backend) SetAppPool(ctx context.Context, site, pool string) error {
	return b.UpdateSite(ctx, site, backend.SiteChange{AppPool: &pool})
}

// SetAutoStart implements backend.Sites.
func (b *Backend) SetAutoStart(ctx context.Context, site string, on bool) error {
	return b.UpdateSite(ctx, site, backend.SiteChange{AutoStart: &on})
}

// RenameSite implements backend.Sites.
func (b *Backend) RenameSite(ctx context.Context, from, to string) error {
	if err := b.change(ctx, changeRequest{Op: "rename", Name: from, NewName: to}); err != nil {
		return err
	}
	return b.certs.rename(from, to)
}

// DeleteSite implements backend.Sites.
func (b *Backend) DeleteSite(ctx context.Context, site string) error {
	if err := b.change(ctx, changeRequest{Op: "delete", Name: site}); err != nil {
		return err
	}
	return b.certs.forget(site)
}

// StartSite implements backend.Sites: HTTP.sys certificate bindings first,
// then the site.
func (b *Backend) StartSite(ctx context.Context, site string) error {
	return b.runOne(ctx, backend.GroupOp{Action: "StartSite", Site: site})
}

// StopSite implements backend.Sites: the site, then its HTTP.sys
// certificate bindings.
func (b *Backend) StopSite(ctx context.Context, site string) error {
	return b.runOne(ctx, backend.GroupOp{Action: "StopSite", Site: site})
}
