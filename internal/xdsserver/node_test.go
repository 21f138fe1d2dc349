package xdsserver

import (
	"strconv"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// A stream remembers each type's last maxNonces responses.
func TestStreamNonces(t *testing.T) {
	var st stream
	for i := range maxNonces + 2 {
		st.recordNonce(resourcev3.ClusterType, strconv.Itoa(i), "v"+strconv.Itoa(i))
	}
	st.recordNonce(resourcev3.EndpointType, "100", "e")
	st.recordNonce(resourcev3.SecretType, "101", "s") // not served: not kept
	for _, tc := range []struct {
		typeURL, nonce, want string
		known                bool
	}{
		{resourcev3.ClusterType, "0", "", false}, // pushed out
		{resourcev3.ClusterType, "1", "", false},
		{resourcev3.ClusterType, "2", "v2", true},
		{resourcev3.ClusterType, strconv.Itoa(maxNonces + 1), "v" + strconv.Itoa(maxNonces+1), true},
		{resourcev3.EndpointType, "100", "e", true},
		{resourcev3.EndpointType, "2", "", false}, // another type's
		{resourcev3.SecretType, "101", "", false},
		{resourcev3.ListenerType, "", "", false},
	} {
		if got, known := st.versionOf(tc.typeURL, tc.nonce); got != tc.want || known != tc.known {
			t.Errorf("versionOf(%s, %q) = %q, %v; want %q, %v", typeLabel(tc.typeURL), tc.nonce, got, known, tc.want, tc.known)
		}
	}
}
