package meshcfg

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/trellis-mesh/trellis/internal/config"
)

// loadDir validates a generated directory with the same loader trellisd uses.
func loadDir(t *testing.T, dir string) *config.Set {
	t.Helper()
	set, errs := config.LoadDir(dir)
	for _, e := range errs {
		t.Errorf("config error: %v", e)
	}
	return set
}

func TestDataPlaneLoads(t *testing.T) {
	for _, tc := range []struct {
		name               string
		fillers, endpoints int
		mtls               bool
		want               int // resources
	}{
		{"two sidecars", 0, 0, false, 5},
		{"with fillers", 3, 2, false, 5 + 3 + 3*2},
		{"mTLS with fillers", 2, 1, true, 5 + 2 + 2 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := DataPlane{Plan: DefaultPlan(), Fillers: tc.fillers, FillerEndpoints: tc.endpoints, MTLS: tc.mtls}
			if err := d.Write(dir); err != nil {
				t.Fatal(err)
			}
			set := loadDir(t, dir)
			if got := set.Len(); got != tc.want {
				t.Errorf("resources = %d, want %d", got, tc.want)
			}
			// Every WorkloadEntry carries the tlsMode label exactly when mTLS is on.
			for _, name := range []string{"server", "client"} {
				we := set.Get(config.Key{Kind: config.KindWorkloadEntry, Namespace: Namespace, Name: name})
				if we == nil {
					t.Fatalf("WorkloadEntry %s missing", name)
				}
				if got := strings.Contains(fmt.Sprint(we.Spec), "security.istio.io/tlsMode"); got != tc.mtls {
					t.Errorf("WorkloadEntry %s has tlsMode label = %v, want %v", name, got, tc.mtls)
				}
			}
		})
	}
}

func TestLoadWritesAndEdits(t *testing.T) {
	l := Load{Services: 6, Endpoints: 2, Proxies: 4, Window: 2}
	dir := t.TempDir()
	if err := l.Write(dir, []int{0}); err != nil {
		t.Fatal(err)
	}
	// 6 ServiceEntries, 12 endpoint WorkloadEntries, 4 proxy WorkloadEntries, 4 Sidecars, 1 VirtualService.
	if got := loadDir(t, dir).Len(); got != 6+12+4+4+1 {
		t.Errorf("resources = %d, want 27", got)
	}
	if err := l.WriteEndpointChange(dir, 1, "127.3.0.9"); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteVirtualService(dir, 0, "mark-1-x"); err != nil {
		t.Fatal(err)
	}
	set := loadDir(t, dir)
	we := set.Get(config.Key{Kind: config.KindWorkloadEntry, Namespace: LoadNamespace, Name: "svc-0001-0"})
	if we == nil || !strings.Contains(fmt.Sprint(we.Spec), "127.3.0.9") {
		t.Errorf("edited WorkloadEntry = %v, want address 127.3.0.9", we)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestSees(t *testing.T) {
	l := Load{Services: 10, Proxies: 5, Window: 3}
	for _, tc := range []struct {
		name string
		svc  int
		want []int
	}{
		// proxy k sees services 3k..3k+2 mod 10: p3 sees 9,0,1 and p4 sees 2,3,4.
		{"first window and a wrapped one", 0, []int{0, 3}},
		{"overlapping windows", 2, []int{0, 4}},
		{"middle", 7, []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := l.Affected(tc.svc); !slices.Equal(got, tc.want) {
				t.Errorf("Affected(%d) = %v, want %v", tc.svc, got, tc.want)
			}
		})
	}
	if got := (Load{Services: 10, Proxies: 3}).Affected(5); len(got) != 3 {
		t.Errorf("unscoped Affected = %v, want every proxy", got)
	}
}

func TestNodeID(t *testing.T) {
	if got, want := NodeID(0), "sidecar~127.1.0.1~proxy-0000.load~load.svc.cluster.local"; got != want {
		t.Errorf("NodeID(0) = %q, want %q", got, want)
	}
	if got := Addr(2, 255).String(); got != "127.2.1.0" {
		t.Errorf("Addr(2, 255) = %s, want 127.2.1.0", got)
	}
}
