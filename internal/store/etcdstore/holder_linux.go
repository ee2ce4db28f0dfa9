package etcdstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// holderOf names the process that has path open ("" when none is found):
// the /proc/PID/fd links are read, as fuser does.
func holderOf(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	for _, p := range procs {
		pid := p.Name()
		if pid == "" || pid[0] < '0' || pid[0] > '9' || pid == fmt.Sprint(os.Getpid()) {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", pid, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc", pid, "fd", fd.Name())); err == nil && target == abs {
				cmd, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
				return fmt.Sprintf("process %s (%s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")))
			}
		}
	}
	return ""
}
