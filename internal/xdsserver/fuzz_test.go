package xdsserver

import (
	"io"
	"log/slog"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellis-mesh/trellis/internal/translator"
)

// FuzzBuild feeds arbitrary listeners (decoded from fuzzed wire bytes) to
// build, which validates them and digs route names out of nested Any
// fields: it must never panic, whatever the translator hands it.
func FuzzBuild(f *testing.F) {
	for _, l := range []*listenerv3.Listener{
		apiListener(f, "a:9080", "9080"),
		socketListener(f, "127.0.10.1_9080", "9080"),
	} {
		b, err := proto.Marshal(l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &listenerv3.Listener{}
		if proto.Unmarshal(data, l) != nil {
			return
		}
		build(&translator.Resources{
			Listeners: map[string]proto.Message{l.GetName(): l},
			Routes:    map[string]proto.Message{"9080": routeTo("9080", "c")},
		}, "fuzz", quiet, newInterner())
	})
}
