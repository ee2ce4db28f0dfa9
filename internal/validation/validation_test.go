package validation

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
)

func ip(name, addr string, nodes ...string) *v1alpha1.IPResource {
	o := &v1alpha1.IPResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIPResource}}
	o.Metadata.Name = name
	o.Spec.Address = addr
	if len(nodes) > 0 {
		o.Spec.Placement.Nodes = nodes
	}
	return o
}

func vol(name, letter string) *v1alpha1.VolumeResource {
	o := &v1alpha1.VolumeResource{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindVolumeResource}}
	o.Metadata.Name = name
	o.Spec.DriveLetter = letter
	o.Spec.Source.Mirror = &v1alpha1.MirrorSource{Volume: letter}
	return o
}

func site(name string, id int64, path string, nodes []string, ipRefs ...string) *v1alpha1.IISSite {
	o := &v1alpha1.IISSite{TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindIISSite}}
	o.Metadata.Name = name
	o.Spec.SiteID = id
	o.Spec.PhysicalPath = path
	o.Spec.Placement.Nodes = nodes
	for _, r := range ipRefs {
		o.Spec.Bindings = append(o.Spec.Bindings, v1alpha1.Binding{Protocol: "http", IPRef: r, HostName: name + ".example.com"})
	}
	return o
}

func TestValidateRules(t *testing.T) {
	n12 := []string{"node1", "node2"}
	tests := []struct {
		name string
		objs []v1alpha1.Object
		want []string // substrings of each error, in order; empty: valid
	}{
		{
			name: "valid: nothing to report",
			objs: []v1alpha1.Object{ip("vip1", "10.0.0.1/24"), vol("vol1", "E"), site("web1", 1, `E:\w`, n12, "vip1")},
		},
		{
			name: "drive letters compare case-insensitively, forward slashes accepted",
			objs: []v1alpha1.Object{ip("vip1", "10.0.0.1/24"), vol("vol1", "e"), site("web1", 1, `E:/sites/w`, n12, "vip1")},
		},
		{
			name: "mount path holds the path, the deepest mount wins",
			objs: func() []v1alpha1.Object {
				m := vol("mnt", "E")
				m.Spec.DriveLetter, m.Spec.MountPath = "", `C:\ClusterStorage\Web`
				return []v1alpha1.Object{ip("vip1", "10.0.0.1/24"), m, site("web1", 1, `c:\clusterstorage\web\root`, n12, "vip1")}
			}(),
		},
		{
			name: "a path beside the mount is not on it",
			objs: func() []v1alpha1.Object {
				m := vol("mnt", "E")
				m.Spec.DriveLetter, m.Spec.MountPath = "", `C:\ClusterStorage\Web`
				return []v1alpha1.Object{ip("vip1", "10.0.0.1/24", n12...), m, site("web1", 1, `C:\ClusterStorage\Web2\root`, n12, "vip1")}
			}(),
			want: []string{`physicalPath: "C:\\ClusterStorage\\Web2\\root" does not lie on any VolumeResource`, `VolumeResource "mnt": spec.placement: missing`},
		},
		{
			name: "two sites on one IP are one group and must share placement",
			objs: []v1alpha1.Object{ip("vip1", "10.0.0.1/24"), vol("vol1", "E"), vol("vol2", "F"),
				site("a", 1, `E:\a`, n12, "vip1"), site("b", 2, `F:\b`, []string{"node2", "node1"}, "vip1")},
			want: []string{`IISSite "b": spec.placement: differs from IISSite/a's, but they are in one resource group (IISSite/a and IISSite/b share IP IPResource/vip1; IISSite/a uses volume VolumeResource/vol1; IISSite/b uses volume VolumeResource/vol2)`},
		},
		{
			name: "two IPResources may not hold one address",
			objs: []v1alpha1.Object{ip("vip1", "10.0.0.1/24"), ip("vip2", "10.0.0.1/32"), vol("vol1", "E"), site("web1", 1, `E:\w`, n12, "vip1", "vip2")},
			want: []string{`IPResource "vip2": spec.address: 10.0.0.1 is already protected by IPResource "vip1"`},
		},
		{
			name: "system drive refused",
			objs: []v1alpha1.Object{ip("vip1", "10.0.0.1/24"), vol("vol1", "C"), site("web1", 1, `C:\w`, n12, "vip1")},
			want: []string{`spec.driveLetter: C: is a system drive`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Validate(tt.objs)
			var got []string
			for _, e := range res.Errors {
				got = append(got, e.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s := site("web1", 1, `E:\w`, []string{"node1"}, "vip1")
	s.Spec.Bindings = append(s.Spec.Bindings, v1alpha1.Binding{Protocol: "https", IPRef: "vip1", Certificate: &v1alpha1.Certificate{Thumbprint: strings.Repeat("a", 40)}})
	f := site("ftp1", 2, `E:\f`, []string{"node1"})
	f.Spec.FTP = &v1alpha1.FTPSettings{SSL: v1alpha1.FTPSSLImplicit}
	f.Spec.Bindings = []v1alpha1.Binding{{Protocol: "ftp", IPRef: "vip1"}}
	e := site("ftp2", 3, `E:\g`, []string{"node1"})
	e.Spec.Bindings = []v1alpha1.Binding{{Protocol: "ftp", IPRef: "vip1"}}
	for _, o := range []v1alpha1.Object{s, f, e} {
		v1alpha1.Default(o)
		v1alpha1.Default(o) // idempotent
	}
	got := []int32{s.Spec.Bindings[0].Port, s.Spec.Bindings[1].Port, f.Spec.Bindings[0].Port, e.Spec.Bindings[0].Port}
	if diff := cmp.Diff([]int32{80, 443, 990, 21}, got); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	if s.Spec.Placement.Switchback != v1alpha1.SwitchbackManual || s.Spec.Bindings[1].Certificate.Store != "My" || s.Spec.AppPool != "DefaultAppPool" {
		t.Errorf("defaults not applied: %+v", s.Spec)
	}
	if h := s.Spec.Health; h.Interval.Duration.String() != "5s" || h.FailureThreshold != 3 || h.LocalRestarts != 2 || h.Path != "/" {
		t.Errorf("health defaults: %+v", h)
	}
}
