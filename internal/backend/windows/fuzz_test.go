package windows

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sitekeeper/sitekeeper/internal/backend/windows/iisconfig"
)

// seedFixtures adds every recorded output under dir to f's corpus.
func seedFixtures(f *testing.F, dirs ...string) {
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(fixtures, dir, "*"))
		for _, file := range files {
			if filepath.Ext(file) == ".source" {
				continue
			}
			if data, err := os.ReadFile(file); err == nil && len(data) < 64<<10 {
				f.Add(data)
			}
		}
	}
}

func FuzzParseSiteList(f *testing.F) {
	f.Add([]byte(reply(map[string]any{"sites": map[string]any{"id": 1, "name": "a", "bindings": map[string]any{"protocol": "ftp", "bindingInformation": "*:21:"}, "ftpState": "Started"}})))
	f.Add([]byte(failure("NotFound", "x", "0x80070490")))
	f.Add([]byte("\ufeffWARNING: x\r\n{\"ok\":true,\"result\":{\"sites\":[]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sites, err := ParseSiteList(data)
		if err != nil && sites != nil {
			t.Fatal("sites and an error")
		}
		for _, s := range sites {
			for _, b := range s.Bindings {
				if (b.Protocol == "http" || b.Protocol == "https" || b.Protocol == "ftp") && (b.Port <= 0 || b.Port > 65535) {
					t.Fatalf("binding %+v has an impossible port", b)
				}
			}
		}
	})
}

func FuzzParseSiteLines(f *testing.F) {
	seedFixtures(f, "appcmd")
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := ParseSiteLines(data, 0)
		if err == nil {
			for _, l := range lines {
				if l.State == "" {
					t.Fatalf("site %q has no state", l.Name)
				}
			}
		}
		_, _ = ParseAppcmdError(data, 1)
	})
}

func FuzzParseAppcmdSites(f *testing.F) {
	seedFixtures(f, "appcmd", "applicationhost")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseAppcmdSites(data, 0)
	})
}

func FuzzParseEmcmd(f *testing.F) {
	f.Add([]byte("E: 1 10.0.0.2 1\r\n"))
	f.Add([]byte("Role: SOURCE\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		if st, err := ParseMirrorVolInfo(data); err == nil && (st < 0 || st > 9) {
			t.Fatalf("state %d", st)
		}
		_ = ParseVolumeRole(data)
	})
}

func FuzzParseBinding(f *testing.F) {
	for _, s := range []string{"*:80:", ":443:", "[fe80::1]:80:a", "127.0.0.1:443:host", "808:*"} {
		f.Add("http", s)
	}
	f.Fuzz(func(t *testing.T, proto, info string) {
		b, err := iisconfig.ParseBinding(proto, info)
		if err != nil || b.Protocol == "net.tcp" || b.IP == "" {
			return
		}
		if b.Port <= 0 || b.Port > 65535 {
			t.Fatalf("%q → port %d", info, b.Port)
		}
		again, err := iisconfig.ParseBinding(proto, BindingInformation(b))
		if err != nil || again != b {
			t.Fatalf("%q → %+v → %q → %+v, %v", info, b, BindingInformation(b), again, err)
		}
	})
}
