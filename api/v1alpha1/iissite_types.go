package v1alpha1

// IISSite protects one IIS web (http/https) or FTP site. It is configured on
// every node of its placement, started only on the active node.
type IISSite struct {
	TypeMeta `json:",inline"`
	// Metadata names the object; metadata.name is the IIS site name.
	Metadata ObjectMeta `json:"metadata"`
	// Spec is the desired site.
	Spec IISSiteSpec `json:"spec"`
	// Status is written by Sitekeeper.
	Status Status `json:"status,omitzero"`
}

// IISSiteSpec declares the site, identical on every node.
type IISSiteSpec struct {
	// SiteID is the IIS site ID, the same on every node and unique in the set.
	SiteID int64 `json:"siteID"`
	// Bindings are where the site listens: all http/https, or all ftp.
	Bindings []Binding `json:"bindings"`
	// FTP holds FTP settings; only for a site with ftp bindings.
	FTP *FTPSettings `json:"ftp,omitempty"`
	// PhysicalPath is the site's root folder ("E:\sites\web1"); it must lie
	// on a VolumeResource.
	PhysicalPath string `json:"physicalPath"`
	// AppPool is the application pool the site runs in (default "DefaultAppPool").
	AppPool string `json:"appPool,omitempty"`
	// Placement is the group's nodes in priority order.
	Placement Placement `json:"placement,omitzero"`
	// Health is how the active node checks that the site serves.
	Health Health `json:"health,omitzero"`
}

// Protocol is a binding's protocol.
type Protocol string

// The protocols a binding may use.
const (
	ProtocolHTTP  Protocol = "http"
	ProtocolHTTPS Protocol = "https"
	ProtocolFTP   Protocol = "ftp"
)

// Binding is one address the site listens on.
type Binding struct {
	// Protocol is http, https or ftp.
	Protocol Protocol `json:"protocol"`
	// IPRef names the IPResource whose address the binding listens on; "*"
	// (all unassigned) is refused because it cannot fail over.
	IPRef string `json:"ipRef"`
	// Port defaults to 80 (http), 443 (https), 21 (ftp) or 990 (ftp with
	// implicit SSL).
	Port int32 `json:"port,omitempty"`
	// HostName is the host header (http/https) or virtual host name (ftp);
	// empty matches any.
	HostName string `json:"hostName,omitempty"`
	// Certificate is the server certificate of an https binding.
	Certificate *Certificate `json:"certificate,omitempty"`
	// SSLFlags is IIS's sslFlags: 1 = SNI (needs hostName), 2 = central
	// certificate store.
	SSLFlags int32 `json:"sslFlags,omitempty"`
}

// Certificate references a server certificate already imported on every
// node; a manifest never carries a private key.
type Certificate struct {
	// Thumbprint is the certificate's SHA-1 hash, 40 hex characters.
	Thumbprint string `json:"thumbprint"`
	// Store is the LocalMachine store holding it (default "My").
	Store string `json:"store,omitempty"`
}

// FTPSSL is an FTP site's SSL mode.
type FTPSSL string

// The FTP SSL modes.
const (
	FTPSSLNone     FTPSSL = "None"
	FTPSSLExplicit FTPSSL = "Explicit"
	FTPSSLImplicit FTPSSL = "Implicit"
)

// FTPSettings are the settings of an FTP site.
type FTPSettings struct {
	// SSL is None (default), Explicit (FTPS on port 21) or Implicit (port 990).
	SSL FTPSSL `json:"ssl,omitempty"`
	// Certificate is the server certificate for Explicit or Implicit SSL.
	Certificate *Certificate `json:"certificate,omitempty"`
}

// Health says how the active node checks a site and how hard it tries to
// recover in place before failing over.
type Health struct {
	// Interval between checks (default 5s).
	Interval *Duration `json:"interval,omitempty"`
	// Timeout of one check (default 2s).
	Timeout *Duration `json:"timeout,omitempty"`
	// FailureThreshold is how many checks in a row must fail before the site
	// counts as failing (default 3).
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
	// LocalRestarts is how many times a failing site is restarted in place
	// before its group fails over (default 2; a negative number fails over
	// at once).
	LocalRestarts int32 `json:"localRestarts,omitempty"`
	// Path is the URL path requested by an http(s) check (default "/").
	Path string `json:"path,omitempty"`
}

// IISSiteList is a list of IISSites.
type IISSiteList struct {
	TypeMeta `json:",inline"`
	// Items are the objects.
	Items []IISSite `json:"items"`
}
