package protocodec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestRoundTrip(t *testing.T) {
	in, err := structpb.NewStruct(map[string]any{"name": "reviews", "port": 9080.0, "tags": []any{"v1", "v2"}})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Plain{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	whole := enc.Materialize()
	for _, tc := range []struct {
		name string
		data mem.BufferSlice
	}{
		{"one buffer", mem.BufferSlice{mem.SliceBuffer(whole)}},
		{"split in three", mem.BufferSlice{mem.SliceBuffer(whole[:3]), mem.SliceBuffer(whole[3:10]), mem.SliceBuffer(whole[10:])}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &structpb.Struct{}
			if err := (Plain{}).Unmarshal(tc.data, out); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(in, out, protocmp.Transform()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNotAProto(t *testing.T) {
	if _, err := (Plain{}).Marshal("text"); err == nil || !strings.Contains(err.Error(), "not a proto.Message") {
		t.Errorf("Marshal(string) = %v, want a not-a-proto error", err)
	}
	if err := (Plain{}).Unmarshal(nil, new(int)); err == nil || !strings.Contains(err.Error(), "not a proto.Message") {
		t.Errorf("Unmarshal into *int = %v, want a not-a-proto error", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = Plain{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &structpb.Struct{})
	})
}
