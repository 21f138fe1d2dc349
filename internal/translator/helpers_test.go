package translator

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/trellis-mesh/trellis/internal/config"
	"github.com/trellis-mesh/trellis/internal/registry"
	"github.com/trellis-mesh/trellis/internal/snapshot"
)

// parseYAML is a minimal stand-in for the config loader, enough for test
// fixtures written as plain Istio YAML: documents split on "---", spec
// decoded by protojson into the istio.io/api type of the kind.
func parseYAML(t testing.TB, data string) *config.Set {
	t.Helper()
	kinds := map[string]struct {
		kind config.Kind
		spec func() proto.Message
	}{
		"ServiceEntry":    {config.KindServiceEntry, func() proto.Message { return &networkingv1.ServiceEntry{} }},
		"WorkloadEntry":   {config.KindWorkloadEntry, func() proto.Message { return &networkingv1.WorkloadEntry{} }},
		"VirtualService":  {config.KindVirtualService, func() proto.Message { return &networkingv1.VirtualService{} }},
		"DestinationRule": {config.KindDestinationRule, func() proto.Message { return &networkingv1.DestinationRule{} }},
		"Gateway":         {config.KindGateway, func() proto.Message { return &networkingv1.Gateway{} }},
		"Sidecar":         {config.KindSidecar, func() proto.Message { return &networkingv1.Sidecar{} }},
	}
	var rs []*config.Resource
	for i, doc := range strings.Split(data, "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var d struct {
			Kind     string
			Metadata struct {
				Name, Namespace string
				Labels          map[string]string
			}
			Spec json.RawMessage
		}
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		k, ok := kinds[d.Kind]
		if !ok {
			t.Fatalf("document %d: unknown kind %q", i, d.Kind)
		}
		spec := k.spec()
		if len(d.Spec) > 0 {
			if err := protojson.Unmarshal(d.Spec, spec); err != nil {
				t.Fatalf("document %d (%s %s): %v", i, d.Kind, d.Metadata.Name, err)
			}
		}
		ns := d.Metadata.Namespace
		if ns == "" {
			ns = config.DefaultNamespace
		}
		rs = append(rs, &config.Resource{Kind: k.kind, Meta: config.Meta{Name: d.Metadata.Name, Namespace: ns, Labels: d.Metadata.Labels}, Spec: spec})
	}
	return config.NewSet(rs)
}

func snapshotOf(t testing.TB, yamlText string) *snapshot.Snapshot {
	t.Helper()
	cfg := parseYAML(t, yamlText)
	return &snapshot.Snapshot{Version: 1, Config: cfg, Registry: registry.NewServiceEntrySource().Registry(cfg), Mesh: snapshot.DefaultMesh()}
}

func bookinfo(t testing.TB) *snapshot.Snapshot {
	t.Helper()
	data, err := os.ReadFile("testdata/bookinfo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return snapshotOf(t, string(data))
}

// validateAll asserts every resource passes its proto Validate() and is
// keyed by its own name.
func validateAll(t *testing.T, res *Resources) {
	t.Helper()
	type validator interface {
		proto.Message
		ValidateAll() error
	}
	for kind, m := range map[string]map[string]proto.Message{"listener": res.Listeners, "route": res.Routes, "cluster": res.Clusters, "endpoint": res.Endpoints} {
		for name, msg := range m {
			v, ok := msg.(validator)
			if !ok {
				t.Errorf("%s %q: %T has no ValidateAll", kind, name, msg)
				continue
			}
			if err := v.ValidateAll(); err != nil {
				t.Errorf("%s %q: Validate: %v", kind, name, err)
			}
			if got := resourceName(msg); got != name {
				t.Errorf("%s keyed %q but named %q", kind, name, got)
			}
		}
	}
}

func resourceName(m proto.Message) string {
	fd := m.ProtoReflect().Descriptor().Fields()
	if f := fd.ByName("name"); f != nil {
		return m.ProtoReflect().Get(f).String()
	}
	return m.ProtoReflect().Get(fd.ByName("cluster_name")).String()
}

// goldenJSON renders resources as stable, indented JSON: protojson per
// resource (its whitespace is deliberately unstable), re-indented by
// encoding/json, maps sorted by name.
func goldenJSON(t *testing.T, res *Resources) []byte {
	t.Helper()
	out := map[string]map[string]json.RawMessage{}
	for kind, m := range map[string]map[string]proto.Message{"listeners": res.Listeners, "routes": res.Routes, "clusters": res.Clusters, "endpoints": res.Endpoints} {
		out[kind] = map[string]json.RawMessage{}
		for name, msg := range m {
			b, err := protojson.Marshal(msg)
			if err != nil {
				t.Fatalf("marshal %s: %v", name, err)
			}
			out[kind][name] = b
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}
