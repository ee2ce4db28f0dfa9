// Package iisconfig reads IIS site definitions from applicationHost.config
// or from `appcmd list site /config:* /xml` (which wraps the same <site>
// elements), with encoding/xml: stable and not localised, unlike appcmd's
// text output. It never writes a live configuration.
package iisconfig

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// Site is one <site> as configured (no run state: that is not in the file).
type Site struct {
	backend.SiteConfig
	// AutoStartSet is false when serverAutoStart is absent (IIS's default
	// is true).
	AutoStartSet bool
	// FTPSSLPolicy is ftpServer/security/ssl/@controlChannelPolicy.
	FTPSSLPolicy string
	// FTPCertHash is ftpServer/security/ssl/@serverCertHash.
	FTPCertHash string
	// Apps counts applications besides the root one (not protected by
	// Sitekeeper; reported by import).
	Apps int
}

type xmlBinding struct {
	Protocol string `xml:"protocol,attr"`
	Info     string `xml:"bindingInformation,attr"`
	SSLFlags string `xml:"sslFlags,attr"`
	CertHash string `xml:"certificateHash,attr"`
	Store    string `xml:"certificateStoreName,attr"`
}

type xmlApp struct {
	Path  string `xml:"path,attr"`
	Pool  string `xml:"applicationPool,attr"`
	VDirs []struct {
		Path         string `xml:"path,attr"`
		PhysicalPath string `xml:"physicalPath,attr"`
	} `xml:"virtualDirectory"`
}

type xmlSite struct {
	Name      string       `xml:"name,attr"`
	ID        string       `xml:"id,attr"`
	AutoStart string       `xml:"serverAutoStart,attr"`
	Apps      []xmlApp     `xml:"application"`
	Bindings  []xmlBinding `xml:"bindings>binding"`
	FTP       *struct {
		SSL struct {
			Control  string `xml:"controlChannelPolicy,attr"`
			CertHash string `xml:"serverCertHash,attr"`
		} `xml:"security>ssl"`
	} `xml:"ftpServer"`
}

// MaxConfigBytes is the largest IIS configuration ParseSites reads: far
// above any real applicationHost.config (a farm of thousands of sites is
// tens of MiB), and a larger one is refused whole, never cut.
const MaxConfigBytes = 256 << 20

// ParseSites reads every <site> element wherever it is in the document
// (applicationHost.config, an appcmd /xml result set, or a lone <site>).
// Documents that are cut short (as in documentation samples) yield the
// sites complete before the cut, and an error. An empty document, one
// that is not XML, or XML that is no IIS configuration is an error.
func ParseSites(r io.Reader) ([]Site, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("the IIS configuration is larger than %d MiB, the most Sitekeeper reads; export the sites with `appcmd list site /config /xml` instead", MaxConfigBytes>>20)
	}
	// appcmd and Notepad write a UTF-8 BOM; encoding/xml rejects it.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("the IIS configuration is empty")
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = false
	var out []Site
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			switch {
			case root == "":
				return nil, fmt.Errorf("the IIS configuration holds no XML element: it is not applicationHost.config or appcmd /xml output")
			case len(out) == 0 && root != "configuration" && root != "appcmd":
				return nil, fmt.Errorf("the document's root is <%s>, not <configuration> (applicationHost.config) or <appcmd> (appcmd /xml), and it holds no <site>", root)
			}
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read IIS configuration: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if ok && root == "" {
			root = se.Name.Local
		}
		if !ok || se.Name.Local != "site" {
			continue
		}
		var xs xmlSite
		if err := dec.DecodeElement(&xs, &se); err != nil {
			return out, fmt.Errorf("read <site> %q: %w", attr(se, "name"), err)
		}
		s, err := convert(xs)
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func convert(xs xmlSite) (Site, error) {
	s := Site{}
	s.Name = xs.Name
	id, err := strconv.ParseInt(xs.ID, 10, 64)
	if err != nil {
		return s, fmt.Errorf("site %q: id %q is not a number", xs.Name, xs.ID)
	}
	s.ID = id
	s.AutoStart = true // IIS's default
	if xs.AutoStart != "" {
		s.AutoStartSet = true
		s.AutoStart = strings.EqualFold(xs.AutoStart, "true")
	}
	for _, a := range xs.Apps {
		if a.Path != "/" {
			s.Apps++
			continue
		}
		s.AppPool = a.Pool
		for _, v := range a.VDirs {
			if v.Path == "/" {
				s.PhysicalPath = v.PhysicalPath
			}
		}
	}
	for _, b := range xs.Bindings {
		rb, err := ParseBinding(b.Protocol, b.Info)
		if err != nil {
			return s, fmt.Errorf("site %q: %w", xs.Name, err)
		}
		if b.SSLFlags != "" {
			f, err := strconv.Atoi(b.SSLFlags)
			if err != nil {
				return s, fmt.Errorf("site %q: sslFlags %q is not a number", xs.Name, b.SSLFlags)
			}
			rb.SSLFlags = int32(f)
		}
		rb.CertHash, rb.CertStore = strings.ToUpper(b.CertHash), b.Store
		s.Bindings = append(s.Bindings, rb)
	}
	if xs.FTP != nil {
		s.FTPSSLPolicy = xs.FTP.SSL.Control
		s.FTPCertHash = strings.ToUpper(xs.FTP.SSL.CertHash)
	}
	return s, nil
}

// ParseBinding reads IIS's protocol and bindingInformation ("ip:port:host";
// IPv6 addresses in brackets; "*" or an empty IP for all unassigned, both
// read as "*"). Protocols compare case-insensitively (appcmd prints "HTTP"). Non-TCP protocols
// (net.pipe, net.tcp, msmq) keep their information in HostName with port 0.
func ParseBinding(protocol, info string) (backend.Binding, error) {
	b := backend.Binding{Protocol: strings.ToLower(protocol)}
	switch b.Protocol {
	case "http", "https", "ftp":
	default:
		b.HostName = info
		return b, nil
	}
	ip, rest := "", info
	if strings.HasPrefix(info, "[") {
		end := strings.Index(info, "]")
		if end < 0 {
			return b, fmt.Errorf("binding %q: unterminated IPv6 address", info)
		}
		ip, rest = info[1:end], strings.TrimPrefix(info[end+1:], ":")
	} else {
		var ok bool
		ip, rest, ok = strings.Cut(info, ":")
		if !ok {
			return b, fmt.Errorf("binding %q: want ip:port:host", info)
		}
	}
	portStr, host, _ := strings.Cut(rest, ":")
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return b, fmt.Errorf("binding %q: port %q is not a TCP port", info, portStr)
	}
	if ip == "" {
		ip = "*" // an empty IP and "*" both mean all unassigned addresses
	}
	b.IP, b.Port, b.HostName = ip, int32(port), host
	return b, nil
}
