package windows

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sitekeeper/sitekeeper/internal/backend"
)

// formatList reads PowerShell's Format-List console output ("Key : Value"
// blocks separated by blank lines) into ip.ps1's address projection, so
// the recorded real captures drive the same interpretation as a reply.
func formatList(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	cur := map[string]any{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
			cur = map[string]any{}
		}
	}
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " : ")
		if !ok {
			k, v, ok = strings.Cut(sc.Text(), " :")
		}
		if !ok || strings.HasPrefix(k, "PS ") {
			flush()
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "IPAddress":
			cur["ip"] = v
		case "InterfaceAlias":
			cur["interfaceAlias"] = v
		case "PrefixLength":
			n, _ := strconv.Atoi(v)
			cur["prefixLength"] = n
		case "AddressState":
			cur["state"] = v
		case "SkipAsSource":
			cur["skipAsSource"] = v == "True"
		}
	}
	flush()
	return out
}

func TestListAddressesOnRecordedCaptures(t *testing.T) {
	tests := []struct {
		file string
		want []backend.Address
	}{
		{"powershell/Get-NetIPAddress.static-ipv4.txt", []backend.Address{{CIDR: "10.1.1.2/24", Interface: "Ethernet"}}},
		// New-NetIPAddress answers with the ActiveStore address still in
		// duplicate address detection (Tentative) and the PersistentStore
		// one (Invalid): neither serves yet.
		{"powershell/New-NetIPAddress.output.tentative-and-persistentstore.txt", nil},
	}
	for _, tt := range tests {
		addrs := formatList(t, fixture(t, tt.file))
		if len(addrs) == 0 {
			t.Fatalf("%s: no address read", tt.file)
		}
		b, _, _ := newTestBackend(t, psRec(scriptIP, reply(map[string]any{"addresses": addrs}), 0))
		got, err := b.ListAddresses(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.file, diff)
		}
	}
}

// TestAddressStateNumbersMatchRecordedCIM checks the number-to-name table
// against a real CliXML capture, which holds both the raw CIM value and
// the formatted name of the same AddressState.
func TestAddressStateNumbersMatchRecordedCIM(t *testing.T) {
	data := string(fixture(t, "powershell/CSS-Exchange-E19.Get-NetIPConfiguration.clixml"))
	if !strings.Contains(data, `N="AddressState">4</U16>`) || !strings.Contains(data, `<S N="AddressState">Preferred</S>`) {
		t.Fatal("the capture no longer holds AddressState 4 = Preferred")
	}
	if addressStates[4] != "Preferred" {
		t.Errorf("AddressState 4 = %q, the capture says Preferred", addressStates[4])
	}
	// A projection that lost its [string] cast still reads right.
	b, _, _ := newTestBackend(t, psRec(scriptIP, reply(map[string]any{"addresses": map[string]any{"ip": "10.0.0.5", "prefixLength": 24, "state": 4}}), 0))
	got, err := b.ListAddresses(context.Background())
	if err != nil || len(got) != 1 || got[0].CIDR != "10.0.0.5/24" {
		t.Errorf("numeric state: %+v, %v", got, err)
	}
}

func TestAddAddressWaitsForDADAndAnnounces(t *testing.T) {
	b, r, announced := newTestBackend(t, psRec(scriptIP, reply(map[string]any{"interfaceAlias": "Ethernet 2", "gateway": "10.0.0.1"}), 0))
	ctx := context.Background()
	if err := b.AddAddress(ctx, backend.Address{CIDR: "10.0.0.5/24", Interface: "Ethernet 2"}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddress(ctx, backend.Address{CIDR: "10.0.0.6"}); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveAddress(ctx, backend.Address{CIDR: "10.0.0.5/24"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.0.0.5 via 10.0.0.1", "10.0.0.6 via 10.0.0.1"}, *announced); diff != "" {
		t.Errorf("announcements (-want +got):\n%s", diff)
	}
	golden(t, "addresses.txt", rendered(r.Calls))
	if err := b.AddAddress(ctx, backend.Address{CIDR: "not-an-ip"}); err == nil {
		t.Error("a malformed address reached PowerShell")
	}
}

func TestDuplicateAddressIsHeldByAnotherMachine(t *testing.T) {
	b, _, announced := newTestBackend(t, psRec(scriptIP, failure("AddressInUse", "10.0.0.5 is held by another machine on the network"), 1))
	err := b.AddAddress(context.Background(), backend.Address{CIDR: "10.0.0.5/24"})
	if !errors.Is(err, backend.ErrAddressInUse) || !backend.NeedsHuman(err) {
		t.Errorf("err = %v, want ErrAddressInUse that stops the bring-up", err)
	}
	if len(*announced) != 0 {
		t.Error("a duplicate address was announced")
	}
}

// TestDamagedCertBookNeverStopsTheAgent: a torn certificate book is set
// aside and the backend starts with an empty one.
func TestDamagedCertBookNeverStopsTheAgent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "https-certificates.json")
	if err := os.WriteFile(path, []byte(`{"web1": {"https 10.0.0.5:443:": {"protoc`), 0o600); err != nil {
		t.Fatal(err)
	}
	cb, err := loadCertBook(path)
	var damaged *damagedBookError
	if !errors.As(err, &damaged) || cb == nil || len(cb.sites) != 0 {
		t.Fatalf("loadCertBook of a torn file: %v, %v; want an empty book and damagedBookError", cb, err)
	}
	if _, err := os.Stat(path + ".damaged"); err != nil {
		t.Errorf("the torn book was not kept aside: %v", err)
	}
	if err := cb.record("web1", []backend.Binding{{Protocol: "https", IP: "10.0.0.5", Port: 443, CertHash: "AB"}}, nil); err != nil {
		t.Fatal(err)
	}
	if again, err := loadCertBook(path); err != nil || len(again.sites) != 1 {
		t.Errorf("after a record: %v, %v", again, err)
	}
}
