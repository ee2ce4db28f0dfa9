//go:build linux

// Command bigload measures what reading a large manifest set costs: it
// writes FILES files of just under 1 MiB (the per-file limit) of resource
// groups, runs `sitekeeper validate -f` on the folder and prints one line:
// files, objects, wall time and the peak RSS of the command.
//
//	go run ./hack/bigload -files 60
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sitekeeper/sitekeeper/internal/testmanifests"
)

func main() {
	bin := flag.String("sitekeeper", "bin/sitekeeper", "the sitekeeper binary")
	files := flag.Int("files", 60, "how many files of just under 1 MiB")
	flag.Parse()
	dir, err := os.MkdirTemp("", "sitekeeper-bigload-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	groups := 0
	for f := range *files {
		var b strings.Builder
		for {
			// Addresses 10.x.y.z with z in 1..250, unique per group.
			addr := fmt.Sprintf("10.%d.%d.%d", groups/62500, groups/250%250, groups%250+1)
			d := testmanifests.GroupAt(groups, addr, testmanifests.Options{Port: 80, Nodes: []string{"node1", "node2"}}) + "---\n"
			if b.Len()+len(d) > 1<<20-64 {
				break
			}
			b.WriteString(d)
			groups++
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("groups-%03d.yaml", f)), []byte(b.String()), 0o644); err != nil {
			fail(err)
		}
	}
	cmd := exec.Command(*bin, "validate", "-f", dir)
	out, err := os.CreateTemp(dir, "out")
	if err != nil {
		fail(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		fail(fmt.Errorf("validate: %v\n%s", err, b))
	}
	took := time.Since(start)
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	rss := int64(0)
	if ru != nil {
		rss = ru.Maxrss >> 10 // KiB on Linux
	}
	fmt.Printf("files %d (%d MiB), objects %d, validate took %.1fs, peak RSS %d MiB\n", *files, *files, 3*groups, took.Seconds(), rss)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bigload:", err)
	os.Exit(1)
}
