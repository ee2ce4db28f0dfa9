package windows

import (
	"context"
	"fmt"
	"strings"
)

// Feature is a Windows feature Sitekeeper needs (SEED-FACTS F1).
type Feature struct {
	// Name is the Server Manager name (Install-WindowsFeature).
	Name string
	// Optional is the name on client SKUs (Enable-WindowsOptionalFeature).
	Optional string
	// What says what it is, for the error.
	What string
}

// Features needed on every node, and FTPServer when an FTP site is placed on
// the node.
var (
	RequiredFeatures = []Feature{
		{Name: "Web-Server", Optional: "IIS-WebServerRole", What: "Web Server (IIS) role"},
		{Name: "Web-WebServer", Optional: "IIS-WebServer", What: "Web Server role service"},
		{Name: "Web-Mgmt-Tools", Optional: "IIS-WebServerManagementTools", What: "IIS Management Tools"},
		{Name: "Web-Scripting-Tools", Optional: "IIS-ManagementScriptingTools", What: "IIS Management Scripts and Tools (the IISAdministration module)"},
	}
	FTPFeature = Feature{Name: "Web-Ftp-Server", Optional: "IIS-FTPServer", What: "FTP Server"}
)

type featureState struct {
	Name      string `json:"name"`
	Installed bool   `json:"installed"`
}

// CheckFeatures reports every missing feature at once, each with the
// command that installs it; needFTP adds the FTP server.
func (b *Backend) CheckFeatures(ctx context.Context, needFTP bool) error {
	missing, err := b.missingFeatures(ctx, needFTP)
	if err != nil {
		return fmt.Errorf("check Windows features: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("this node lacks %s; install with: %s (on a client SKU: Enable-WindowsOptionalFeature -Online -FeatureName <name>): %w",
		describeFeatures(missing), installCommand(missing), ErrFeatureMissing)
}

// missingFeatures asks the node which features it lacks of those every
// node needs (and the FTP server when needFTP).
func (b *Backend) missingFeatures(ctx context.Context, needFTP bool) ([]Feature, error) {
	want := append([]Feature(nil), RequiredFeatures...)
	if needFTP {
		want = append(want, FTPFeature)
	}
	req := struct {
		Names    []string `json:"names"`
		Optional []string `json:"optionalNames"`
	}{}
	for _, f := range want {
		req.Names = append(req.Names, f.Name)
		req.Optional = append(req.Optional, f.Optional)
	}
	var res struct {
		Features list[featureState] `json:"features"`
	}
	if err := runScript(ctx, b.scripts, scriptFeatures, req, &res); err != nil {
		return nil, err
	}
	return missingOf(want, res.Features), nil
}

func missingOf(want []Feature, have []featureState) []Feature {
	installed := map[string]bool{}
	for _, f := range have {
		installed[strings.ToLower(f.Name)] = f.Installed
	}
	var missing []Feature
	for _, f := range want {
		if !installed[strings.ToLower(f.Name)] && !installed[strings.ToLower(f.Optional)] {
			missing = append(missing, f)
		}
	}
	return missing
}

// describeFeatures names features for a person: "FTP Server (Web-Ftp-Server)".
func describeFeatures(fs []Feature) string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s (%s)", f.What, f.Name))
	}
	return strings.Join(out, ", ")
}

func installCommand(fs []Feature) string {
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	return "Install-WindowsFeature " + strings.Join(names, ",")
}
