// Package importer turns an existing server's IIS configuration into
// Sitekeeper manifests, and lists what must change before the sites can be
// protected (a name with spaces, a binding on "*", content on a local
// drive, a certificate that lives in HTTP.sys), each with its fix.
package importer

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend/windows/iisconfig"
)

// Options tune an import.
type Options struct {
	// Nodes is the placement of every imported site.
	Nodes []string
	// Volumes maps a drive letter ("E") to the VolumeResource that holds it.
	Volumes map[string]string
}

// Fix is one change the user must make before the manifests validate.
type Fix struct {
	Object  string // Kind/name
	Field   string
	Message string
	// example makes the change with an example value (for tests and for
	// the README's walk-through); never applied by the CLI.
	example func()
}

func (f Fix) String() string { return fmt.Sprintf("%s: %s: %s", f.Object, f.Field, f.Message) }

// Result is what an import produced.
type Result struct {
	Objects []v1alpha1.Object
	Fixes   []Fix
	// Skipped explains what was not imported at all.
	Skipped []string
}

// ApplyExamples makes every fix with an example value.
func (r *Result) ApplyExamples() {
	for _, f := range r.Fixes {
		if f.example != nil {
			f.example()
		}
	}
}

// Placeholder values the user must replace; they fail validation on
// purpose, so nothing half-imported can be applied by mistake.
const (
	PlaceholderAddress    = "REPLACE-WITH-VIRTUAL-IP/24"
	PlaceholderThumbprint = "REPLACE-WITH-CERTIFICATE-THUMBPRINT"
	PlaceholderDisk       = "REPLACE-WITH-DISK-UNIQUEID"
)

var validName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// Import converts sites.
func Import(sites []iisconfig.Site, o Options) *Result {
	if len(o.Nodes) == 0 {
		o.Nodes = []string{"node1", "node2"}
	}
	r := &Result{}
	ips := map[string]*v1alpha1.IPResource{}
	vols := map[string]*v1alpha1.VolumeResource{}
	names := map[string]bool{}
	nextExample := 10
	sort.SliceStable(sites, func(i, j int) bool { return sites[i].ID < sites[j].ID })
	for _, s := range sites {
		site := &v1alpha1.IISSite{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIISSite}}
		site.Metadata.Name = s.Name
		site.Spec.SiteID = s.ID
		site.Spec.AppPool = s.AppPool
		site.Spec.Placement = v1alpha1.Placement{Nodes: o.Nodes}
		ref := func() string { return "IISSite/" + site.Metadata.Name }
		if !validName.MatchString(s.Name) {
			clean := sanitize(s.Name)
			for names[clean] {
				clean += "-x"
			}
			site.Metadata.Name = clean
			r.Fixes = append(r.Fixes, Fix{Object: ref(), Field: "metadata.name",
				Message: fmt.Sprintf("the IIS site is named %q, which Sitekeeper cannot protect (letters, digits and hyphens only); rename it in IIS to %q on every node (this manifest already uses that name)", s.Name, clean)})
		}
		names[site.Metadata.Name] = true
		path := expandEnv(s.PhysicalPath)
		site.Spec.PhysicalPath = path
		var tcp []string
		for _, b := range s.Bindings {
			switch b.Protocol {
			case "http", "https", "ftp":
			default:
				tcp = append(tcp, b.Protocol)
				continue
			}
			vb := v1alpha1.Binding{Protocol: v1alpha1.Protocol(b.Protocol), Port: b.Port, HostName: b.HostName, SSLFlags: b.SSLFlags}
			if b.HostName == "*" {
				i := len(site.Spec.Bindings)
				r.Fixes = append(r.Fixes, Fix{Object: ref(), Field: fmt.Sprintf("spec.bindings[%d].hostName", i),
					Message: fmt.Sprintf("the host name \"*\" of %s %s:%d (an IIS Express wildcard) is not a host name; use the site's real host name, or none", b.Protocol, b.IP, b.Port),
					example: func() { site.Spec.Bindings[i].HostName = "" }})
			}
			if b.IP == "*" || b.IP == "" {
				name := "vip-" + strings.ToLower(site.Metadata.Name)
				ip := ips[name]
				if ip == nil {
					ip = newIP(name, PlaceholderAddress)
					ips[name] = ip
					n := nextExample
					nextExample++
					r.Fixes = append(r.Fixes, Fix{Object: "IPResource/" + name, Field: "spec.address",
						Message: fmt.Sprintf("%s binds to all unassigned addresses (\"*\"), which cannot fail over; choose a virtual IP for it, set it here, and bind the site to it in IIS", ref()),
						example: func() { ip.Spec.Address = fmt.Sprintf("10.0.%d.%d/24", n/250, n%250+1) }})
				}
				vb.IPRef = name
			} else {
				name := "ip-" + strings.NewReplacer(".", "-", ":", "-").Replace(b.IP)
				if ips[name] == nil {
					ip := newIP(name, b.IP+"/32")
					ips[name] = ip
					r.Fixes = append(r.Fixes, Fix{Object: "IPResource/" + name, Field: "spec.address",
						Message: fmt.Sprintf("check the prefix length of %s (written as /32; use the subnet's, such as /24)", b.IP)})
				}
				vb.IPRef = name
			}
			if b.Protocol == "https" {
				cert := &v1alpha1.Certificate{Thumbprint: b.CertHash, Store: b.CertStore}
				if cert.Thumbprint == "" {
					cert.Thumbprint = PlaceholderThumbprint
					r.Fixes = append(r.Fixes, Fix{Object: ref(), Field: fmt.Sprintf("spec.bindings[%d].certificate.thumbprint", len(site.Spec.Bindings)),
						Message: fmt.Sprintf("the certificate of https %s:%d:%s lives in HTTP.sys, not in applicationHost.config; copy its thumbprint from `netsh http show sslcert` and import the certificate on every node", b.IP, b.Port, b.HostName),
						example: func() { cert.Thumbprint = strings.Repeat("AB", 20) }})
				}
				vb.Certificate = cert
			}
			site.Spec.Bindings = append(site.Spec.Bindings, vb)
		}
		if len(tcp) > 0 {
			r.Skipped = append(r.Skipped, fmt.Sprintf("%s: bindings %s are not protected (only http, https and ftp are)", ref(), strings.Join(tcp, ", ")))
		}
		if len(site.Spec.Bindings) == 0 {
			r.Skipped = append(r.Skipped, fmt.Sprintf("IIS site %q (ID %d): no http, https or ftp binding; not imported", s.Name, s.ID))
			continue
		}
		if hasFTP(site) && hasWeb(site) {
			r.Fixes = append(r.Fixes, Fix{Object: ref(), Field: "spec.bindings",
				Message: "the site has both web (http/https) and ftp bindings; a protected site is one or the other: move the ftp bindings to a site of their own in IIS",
				example: func() {
					var web []v1alpha1.Binding
					for _, b := range site.Spec.Bindings {
						if b.Protocol != v1alpha1.ProtocolFTP {
							web = append(web, b)
						}
					}
					site.Spec.Bindings, site.Spec.FTP = web, nil
				}})
		}
		if hasFTP(site) {
			site.Spec.FTP = ftpSettings(s)
		}
		drive := ""
		if len(path) >= 2 && path[1] == ':' {
			drive = strings.ToUpper(path[:1])
		}
		n := site.Metadata.Name
		moveExample := func() {
			site.Spec.PhysicalPath = `S:\sites\` + n
			if vols["S"] == nil {
				vols["S"] = newVolume("vol-s", "S")
				vols["S"].Spec.Source.SharedDisk.UniqueID = "6000C29EXAMPLE0000000000000000S"
				r.Objects = append(r.Objects, vols["S"])
			}
		}
		switch {
		case drive == "" || !isLetter(drive[0]):
			r.Fixes = append(r.Fixes, Fix{Object: ref(), Field: "spec.physicalPath", Message: fmt.Sprintf("%q is not a local path Sitekeeper can move (an unexpanded variable or a share?); put the content on a protected volume and set the path here", path), example: moveExample})
		case drive == "C":
			r.Fixes = append(r.Fixes, Fix{Object: ref(), Field: "spec.physicalPath",
				Message: fmt.Sprintf("the content is on the local system drive C: (%s), which does not move with the site; copy it to a protected volume, point the site there in IIS, and set the path here", path),
				example: moveExample})
		default:
			if _, ok := vols[drive]; !ok {
				name := o.Volumes[drive]
				if name == "" {
					name = "vol-" + strings.ToLower(drive)
				}
				v := newVolume(name, drive)
				vols[drive] = v
				if o.Volumes[drive] == "" {
					r.Fixes = append(r.Fixes, Fix{Object: "VolumeResource/" + name, Field: "spec.source",
						Message: fmt.Sprintf("say what backs %s: (a shared disk's UniqueId from Get-Disk, or a mirror), or pass --map-volume %s:=NAME for a volume declared elsewhere", drive+":", drive),
						example: func() { v.Spec.Source.SharedDisk.UniqueID = "6000C29EXAMPLE00000000000000000" + drive }})
				}
			}
		}
		if s.Apps > 0 {
			r.Skipped = append(r.Skipped, fmt.Sprintf("%s: %d application(s) besides the root move with the site but are not configured by Sitekeeper; keep them identical on every node", ref(), s.Apps))
		}
		r.Objects = append(r.Objects, site)
	}
	for _, k := range slices.Sorted(maps.Keys(ips)) {
		r.Objects = append(r.Objects, ips[k])
	}
	for _, k := range slices.Sorted(maps.Keys(vols)) {
		if o.Volumes[k] == "" || vols[k].Metadata.Name != o.Volumes[k] {
			r.Objects = append(r.Objects, vols[k])
		}
	}
	return r
}

func newIP(name, addr string) *v1alpha1.IPResource {
	ip := &v1alpha1.IPResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIPResource}}
	ip.Metadata.Name = name
	ip.Spec.Address = addr
	return ip
}

func newVolume(name, drive string) *v1alpha1.VolumeResource {
	v := &v1alpha1.VolumeResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindVolumeResource}}
	v.Metadata.Name = name
	v.Spec.DriveLetter = drive
	v.Spec.Source.SharedDisk = &v1alpha1.SharedDiskSource{UniqueID: PlaceholderDisk}
	return v
}

func isLetter(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') }

func hasWeb(s *v1alpha1.IISSite) bool {
	for _, b := range s.Spec.Bindings {
		if b.Protocol != v1alpha1.ProtocolFTP {
			return true
		}
	}
	return false
}

func hasFTP(s *v1alpha1.IISSite) bool {
	for _, b := range s.Spec.Bindings {
		if b.Protocol == v1alpha1.ProtocolFTP {
			return true
		}
	}
	return false
}

func ftpSettings(s iisconfig.Site) *v1alpha1.FTPSettings {
	f := &v1alpha1.FTPSettings{SSL: v1alpha1.FTPSSLNone}
	switch strings.ToLower(s.FTPSSLPolicy) {
	case "sslrequire", "sslallow":
		f.SSL = v1alpha1.FTPSSLExplicit
	}
	for _, b := range s.Bindings {
		if b.Protocol == "ftp" && b.Port == 990 {
			f.SSL = v1alpha1.FTPSSLImplicit
		}
	}
	if f.SSL != v1alpha1.FTPSSLNone && s.FTPCertHash != "" {
		f.Certificate = &v1alpha1.Certificate{Thumbprint: s.FTPCertHash}
	}
	return f
}

func expandEnv(p string) string {
	r := strings.NewReplacer("%SystemDrive%", "C:", "%systemdrive%", "C:", "%SYSTEMDRIVE%", "C:")
	return r.Replace(p)
}

func sanitize(name string) string {
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(regexp.MustCompile(`-+`).ReplaceAllString(b.String(), "-"), "-")
	if s == "" {
		s = "site"
	}
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	return s
}
