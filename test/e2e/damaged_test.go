//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestDamagedKeysStopNothing writes values that do not decode under
// objects/ and placement/ of a running cluster, as a bug, an old version or
// a hand with etcdctl could: failover still works, `get` lists the rest and
// warns, `doctor` lists the keys and `doctor --fix` removes them.
func TestDamagedKeysStopNothing(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.endpoint}, DialTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, v := range map[string]string{
		"/sitekeeper/objects/IISSite/ghost": "{not json",
		"/sitekeeper/placement/site-a":      "\x00garbage",
	} {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	c.eventually("a DamagedKey warning", 10*time.Second, func() bool {
		_, ev := c.sk("events")
		return strings.Contains(ev, "DamagedKey")
	})
	code, out := c.sk("get", "sites")
	if code != 0 || !strings.Contains(out, "site-b") || !strings.Contains(out, "warning: /sitekeeper/objects/IISSite/ghost does not decode") {
		t.Fatalf("get sites with a damaged key (exit %d):\n%s", code, out)
	}
	c.must("sim", "fail-node", "node1")
	c.eventually("both sites served by node2 with damaged keys in the store", 15*time.Second, func() bool {
		return c.servedBy(urlA, "node2") && c.servedBy(urlB, "node2")
	})
	code, out = c.sk("doctor")
	if code != 1 || !strings.Contains(out, "damaged: /sitekeeper/objects/IISSite/ghost") {
		t.Fatalf("doctor (exit %d):\n%s", code, out)
	}
	if strings.Contains(out, "placement/site-a") {
		t.Errorf("the placement leader should have replaced site-a's damaged decision by now:\n%s", out)
	}
	out = c.must("doctor", "--fix")
	if !strings.Contains(out, "removed: /sitekeeper/objects/IISSite/ghost") {
		t.Fatalf("doctor --fix:\n%s", out)
	}
	if out := c.must("doctor"); !strings.Contains(out, "no damaged keys") {
		t.Fatalf("doctor after --fix:\n%s", out)
	}
}

// TestCommandsEndWhenTheStoreFreezes: with the store frozen (SIGSTOP of
// `up`), every command ends within its request timeout with an error that
// says the store did not answer, instead of waiting forever.
func TestCommandsEndWhenTheStoreFreezes(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer c.cmd.Process.Signal(syscall.SIGCONT)
	for _, args := range [][]string{
		{"get", "sites", "--request-timeout", "1s"},
		{"apply", "-f", filepath.Join(c.dir, "sites.yaml"), "--request-timeout", "1s"},
		{"switchover", "site", "site-a", "--to", "node2", "--request-timeout", "1s"},
	} {
		start := time.Now()
		code, out := c.sk(args...)
		took := time.Since(start)
		if code != 1 || !strings.Contains(out, "does not answer") {
			t.Errorf("%v with the store frozen: exit %d after %s:\n%s", args, code, took.Round(time.Millisecond), out)
		}
		if took > 10*time.Second {
			t.Errorf("%v took %s with the store frozen", args, took.Round(time.Millisecond))
		}
	}
}

// TestSnapshotSaveRestore: a snapshot of a running cluster, restored into
// a new data folder, starts a cluster with the same state (here a
// suspension, which no manifest holds).
func TestSnapshotSaveRestore(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	c.must("suspend", "iissite", "site-a")
	file := filepath.Join(t.TempDir(), "backup.db")
	if out := c.must("snapshot", "save", file); !strings.Contains(out, "saved "+file) {
		t.Fatalf("snapshot save:\n%s", out)
	}
	c.stop(syscall.SIGINT)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sites.yaml"), []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t), "snapshot", "restore", file, "--data-dir", filepath.Join(dir, "data")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "restored") {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	again := startCluster(t, dir)
	again.eventually("the restored suspension", 15*time.Second, func() bool {
		return strings.Contains(again.must("get", "groups", "site-a", "-o", "json"), `"suspended": true`)
	})
}

// TestSecondUpOnADataDirInUse: a second `up` on a data folder in use exits
// within seconds naming the process that holds it, instead of hanging on
// the database lock.
func TestSecondUpOnADataDirInUse(t *testing.T) {
	c := startCluster(t, "")
	c.ready()
	start := time.Now()
	cmd := exec.Command(binary(t), "up", "-f", filepath.Join(c.dir, "sites.yaml"), "--data-dir", filepath.Join(c.dir, "data"), "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "HOME="+c.dir, "XDG_CONFIG_HOME="+filepath.Join(c.dir, "config2"))
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("a second up on a data folder in use did not exit within 10 s")
	}
	if err == nil || !strings.Contains(string(out), "in use by process "+fmt.Sprint(c.cmd.Process.Pid)) {
		t.Fatalf("second up: %v after %s:\n%s", err, time.Since(start).Round(time.Millisecond), out)
	}
}
