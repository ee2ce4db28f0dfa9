package etcdstore

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// TestClusterWithWitnessLearnerAndRemoval forms node1+node2+witness, keeps
// writing with one member down, adds node3 as a learner that promotes
// itself once caught up, and removes it again.
func TestClusterWithWitnessLearnerAndRemoval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	names := []string{"node1", "node2", "witness"}
	peer, client := map[string]string{}, map[string]string{}
	var ic []string
	for _, n := range names {
		peer[n], client[n] = freeURL(t), freeURL(t)
		ic = append(ic, n+"="+peer[n])
	}
	servers := map[string]*Server{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := StartMember(ctx, MemberOptions{Name: n, DataDir: filepath.Join(dir, n), PeerURL: peer[n], ClientURL: client[n],
				InitialCluster: strings.Join(ic, ","), Fast: true, Log: logr.Discard()})
			if err != nil {
				t.Errorf("start %s: %v", n, err)
				return
			}
			mu.Lock()
			servers[n] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	st, err := ConnectTLS([]string{client["node1"], client["witness"]}, TLSFiles{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	members, err := st.Members(ctx)
	if err != nil || len(members) != 3 {
		t.Fatalf("members: %+v, %v", members, err)
	}
	leaders := 0
	for _, m := range members {
		if m.Leader {
			leaders++
		}
		if !m.Healthy || m.Learner {
			t.Errorf("member %+v: want a healthy voter", m)
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders", leaders)
	}

	// Two of three keep quorum: node2 dies, writes go on.
	servers["node2"].Close()
	delete(servers, "node2")
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	if _, err := st.client.Put(wctx, "/sitekeeper/test", "still writable"); err != nil {
		t.Fatalf("write with node2 down: %v", err)
	}
	wcancel()
	if err := st.RemoveMember(ctx, "node2"); err != nil {
		t.Fatal(err)
	}

	// node3 joins as a learner and promotes itself once caught up.
	peer["node3"], client["node3"] = freeURL(t), freeURL(t)
	joinIC, err := st.AddLearner(ctx, "node3", peer["node3"])
	if err != nil {
		t.Fatal(err)
	}
	if want := "node3=" + peer["node3"]; !strings.Contains(joinIC, want) || strings.Contains(joinIC, "node2=") {
		t.Fatalf("initial cluster for the learner: %s", joinIC)
	}
	s3, err := StartMember(ctx, MemberOptions{Name: "node3", DataDir: filepath.Join(dir, "node3"), PeerURL: peer["node3"], ClientURL: client["node3"],
		InitialCluster: joinIC, Existing: true, Fast: true, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	servers["node3"] = s3
	if !s3.IsLearner() {
		t.Error("a member added with member add started as a voter")
	}
	if err := s3.PromoteWhenCaughtUp(ctx, logr.Discard()); err != nil {
		t.Fatal(err)
	}
	members, err = st.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(members)
	if len(members) != 3 {
		t.Errorf("after the join: %s", got)
	}
	for _, m := range members {
		if m.Learner {
			t.Errorf("%s is still a learner", m.Name)
		}
	}
	if err := st.RemoveMember(ctx, "nobody"); err == nil {
		t.Error("removing an unknown member succeeded")
	}
}

func TestValidateInitialCluster(t *testing.T) {
	tests := []struct {
		ic, self, peer, want string
	}{
		{ic: "node1=http://10.0.0.1:2380,node2=http://10.0.0.2:2380", self: "node1", peer: "http://10.0.0.1:2380"},
		{ic: "node2=http://10.0.0.2:2380", self: "node1", want: `does not name this member "node1"`},
		{ic: "node1=10.0.0.1:2380", self: "node1", want: "want http(s)://host:port"},
		{ic: "node1", self: "node1", want: "want name="},
		{ic: "node1=http://10.0.0.1:2380", self: "node1", peer: "http://10.0.0.9:2380", want: "make them equal"},
	}
	for _, tt := range tests {
		err := ValidateInitialCluster(tt.ic, tt.self, tt.peer)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%q: err = %v, want %q", tt.ic, err, tt.want)
		}
	}
}
