package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the loader: it must not panic, and every
// error must say which file and what is wrong. The seeds are whole files, so
// keep minimization short:
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 30s -fuzzminimizetime 2s ./internal/config
func FuzzParse(f *testing.F) {
	paths, err := filepath.Glob("testdata/bookinfo/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"---\n---\n",
		"- a\n",
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: [x\n",
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [r], http: [{route: [{destination: {host: r}, weight: 40}, {destination: {host: r}}]}]}\n",
		"a: &a [*a]\n",
		"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec:\n  ingress: [{port: {number: 0}, defaultEndpoint: 'x:y'}]\n",
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  trafficPolicy: {loadBalancer: {simple: 99}}\n  subsets: [~]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file := parseFile("fuzz.yaml", data)
		for _, e := range file.Errors {
			if e.File == "" || e.Msg == "" || e.Line < 0 {
				t.Errorf("error without file or message: %#v", e)
			}
		}
		if len(file.Errors) == 0 && len(file.Failed) != 0 {
			t.Errorf("Failed %v without errors", file.Failed)
		}
		for _, r := range file.Resources {
			if (r.Spec == nil) == (r.GatewayAPI == nil) || r.Meta.Name == "" || r.Meta.Namespace == "" {
				t.Errorf("incomplete resource %+v", r)
			}
		}
	})
}
