package windows

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/backend"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// hostile holds what a shell, cmd.exe or PowerShell would act on.
var hostile = []string{`a"b`, `a'b`, `a;b`, `a&b`, `a|b`, "a`b", `a$(calc)b`, "a\nb", `a && del /q C:\*`, `$(Remove-Item C:\ -Recurse)`}

func hostileSet(name, path string) []v1alpha1.Object {
	ip := &v1alpha1.IPResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIPResource}}
	ip.Metadata.Name = "vip1"
	ip.Spec.Address = "10.0.0.5/24"
	vol := &v1alpha1.VolumeResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindVolumeResource}}
	vol.Metadata.Name = "vol-e"
	vol.Spec.DriveLetter = "E"
	vol.Spec.Source.Mirror = &v1alpha1.MirrorSource{Volume: "E"}
	site := &v1alpha1.IISSite{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIISSite}}
	site.Metadata.Name = name
	site.Spec.SiteID = 1
	site.Spec.PhysicalPath = path
	site.Spec.Bindings = []v1alpha1.Binding{{Protocol: "http", IPRef: "vip1"}}
	site.Spec.Placement.Nodes = []string{"node1", "node2"}
	return []v1alpha1.Object{ip, vol, site}
}

func fieldErrors(objs []v1alpha1.Object, field string) int {
	n := 0
	for _, e := range validation.Validate(objs).Errors {
		if e.Field == field {
			n++
		}
	}
	return n
}

// TestUserTextNeverReachesACommandLine proves that hostile names and paths
// are either refused by validation or travel as inert data: the argv of
// every command is the fixed one, and the text arrives unchanged as a JSON
// string on stdin, which the scripts only use as a .NET string.
func TestUserTextNeverReachesACommandLine(t *testing.T) {
	ctx := context.Background()
	for _, h := range hostile {
		if n := fieldErrors(hostileSet("web"+h, `E:\sites\web1`), "metadata.name"); n == 0 {
			t.Errorf("site name %q passed validation", "web"+h)
		}
		path := `E:\sites\` + h
		pathErrs := fieldErrors(hostileSet("web1", path), "spec.physicalPath")
		if strings.ContainsAny(h, "\"|\n*?<>") && pathErrs == 0 {
			t.Errorf("physical path %q passed validation; Windows forbids it", path)
		}

		// Whatever passes (or bypasses) validation goes as data.
		ok := reply(map[string]any{"changed": true})
		b, r, _ := newTestBackend(t, psRec(scriptIISChange, ok, 0), psRec(scriptIISRun, ok, 0))
		name := "web" + h
		_ = b.CreateSite(ctx, backend.SiteConfig{ID: 1, Name: name, PhysicalPath: path, AppPool: h, Bindings: []backend.Binding{{Protocol: "http", IP: "10.0.0.5", Port: 80, HostName: h}}})
		_ = b.RenameSite(ctx, name, name+"2")
		_ = b.StartSite(ctx, name)
		_ = b.SetPhysicalPath(ctx, name, path)
		if len(r.Calls) != 4 {
			t.Fatalf("%q: %d calls, want 4", h, len(r.Calls))
		}
		for _, c := range r.Calls {
			want, _ := ScriptArgs(DescribeArgs(c.Args)[len(c.Args)-1][2 : len(DescribeArgs(c.Args)[len(c.Args)-1])-2])
			if strings.Join(c.Args, "\x00") != strings.Join(want, "\x00") {
				t.Errorf("%q: argv differs from the fixed script argv: %v", h, DescribeArgs(c.Args))
			}
			var req map[string]any
			if err := json.Unmarshal([]byte(c.Stdin), &req); err != nil {
				t.Fatalf("%q: stdin is not JSON: %v", h, err)
			}
			if req["name"] != name {
				t.Errorf("%q: name arrived as %q", h, req["name"])
			}
		}
		var created struct {
			PhysicalPath string `json:"physicalPath"`
			AppPool      string `json:"appPool"`
			Add          []struct {
				Info string `json:"bindingInformation"`
			} `json:"add"`
		}
		_ = json.Unmarshal([]byte(r.Calls[0].Stdin), &created)
		if created.PhysicalPath != path || created.AppPool != h || created.Add[0].Info != "10.0.0.5:80:"+h {
			t.Errorf("%q: values changed on the way: %+v", h, created)
		}

		// emcmd takes the volume as one argv element; Go quotes it for
		// CommandLineToArgvW and no shell runs in between.
		args := EmcmdArgs("SWITCHOVERVOLUME", h)
		if len(args) != 3 || args[2] != strings.ToUpper(h) {
			t.Errorf("emcmd argv %q: the volume is not one element", args)
		}
	}
}

// TestScriptsNeverEvaluateText guards the other half: no script turns a
// value back into code.
func TestScriptsNeverEvaluateText(t *testing.T) {
	entries, err := scriptFS.ReadDir("scripts")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, _ := scriptFS.ReadFile("scripts/" + e.Name())
		text := strings.ToLower(string(data))
		if e.Name() == "_host.ps1" {
			// The host compiles Sitekeeper's own embedded scripts, once
			// each; a request only ever reaches them as an argument.
			text = strings.Replace(text, "[scriptblock]::create($skscripts[$name] + ", "", 1)
		}
		for _, bad := range []string{"invoke-expression", "iex ", "cmd /c", "cmd.exe", "start-process", "[scriptblock]::create", "powershell"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s uses %q", e.Name(), bad)
			}
		}
	}
}
