// Package layout checks that the import graph shows the architecture: types
// in api, decisions in controllers, mechanisms in internal, and only the
// packages that wire a process together (the CLI and the node runtime)
// reach the controllers.
package layout

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const module = "github.com/sitekeeper/sitekeeper/"

type pkg struct {
	ImportPath string
	Name       string
	Dir        string
	Doc        string
	Imports    []string
	GoFiles    []string
}

func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(path, module) }

// wiring are the packages that assemble a process.
var wiring = map[string]bool{"internal/cli": true, "internal/node": true}

func TestImportGraph(t *testing.T) {
	for _, p := range list(t) {
		me := rel(p.ImportPath)
		for _, imp := range p.Imports {
			dep := rel(imp)
			switch {
			case strings.HasPrefix(me, "controllers/") && strings.HasPrefix(dep, "controllers/"):
				t.Errorf("%s imports %s: a controller never imports another controller (move the shared type to internal/store or api)", me, dep)
			case strings.HasPrefix(dep, "controllers/") && !wiring[me] && !strings.HasPrefix(me, "controllers/"):
				t.Errorf("%s imports %s: only the CLI and the node runtime wire controllers", me, dep)
			case strings.HasPrefix(me, "api/") && strings.HasPrefix(imp, module) && !strings.HasPrefix(dep, "api/"):
				t.Errorf("%s imports %s: the API types do no I/O and depend on nothing of ours", me, dep)
			case strings.HasPrefix(imp, "go.etcd.io/etcd/") && me != "internal/store/etcdstore":
				t.Errorf("%s imports %s: only internal/store/etcdstore talks to etcd; use its typed methods", me, imp)
			}
		}
	}
}

func TestPackageNamesMatchTheirPaths(t *testing.T) {
	for _, p := range list(t) {
		if p.Name == "main" {
			continue
		}
		if base := filepath.Base(p.ImportPath); p.Name != base {
			t.Errorf("%s is package %s: every importer would rename it; name the folder %s or the package %s", rel(p.ImportPath), p.Name, p.Name, base)
		}
	}
}

var fileName = regexp.MustCompile(`\b[a-z0-9_]+\.go\b`)

func TestPackageDocsNameFilesThatExist(t *testing.T) {
	for _, p := range list(t) {
		for _, f := range p.GoFiles {
			b, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			src := string(b)
			i := strings.Index(src, "\npackage ")
			if !strings.HasPrefix(src, "package ") && i < 0 {
				continue
			}
			header := src[:max(i, 0)]
			for _, name := range fileName.FindAllString(header, -1) {
				if _, err := os.Stat(filepath.Join(p.Dir, name)); err != nil {
					t.Errorf("%s: the package comment names %s, which is not in %s", filepath.Join(rel(p.ImportPath), f), name, rel(p.ImportPath))
				}
			}
		}
	}
}
