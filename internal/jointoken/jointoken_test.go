package jointoken

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	iss, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, SecretFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if err := iss.Write([]Workload{{"default", "reviews-v1"}, {"istio-system", "istio-ingressgateway"}}); err != nil {
		t.Fatal(err)
	}
	path := Path(dir, "default", "reviews-v1")
	st, err = os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	tok, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir) // a restart keeps the secret, so tokens stay valid
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		ns, wl    string
		token     string
		wantValid bool
	}{
		{name: "own token", ns: "default", wl: "reviews-v1", token: tok, wantValid: true},
		{name: "own token with newline", ns: "default", wl: "reviews-v1", token: tok + "\n", wantValid: true},
		{name: "another workload's name", ns: "default", wl: "ratings-v1", token: tok},
		{name: "another namespace", ns: "other", wl: "reviews-v1", token: tok},
		{name: "name with the slash moved", ns: "default/reviews", wl: "-v1", token: tok},
		{name: "flipped digit", ns: "default", wl: "reviews-v1", token: flip(tok)},
		{name: "empty", ns: "default", wl: "reviews-v1", token: ""},
		{name: "not hex", ns: "default", wl: "reviews-v1", token: "zz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := again.Verify(tc.ns, tc.wl, tc.token); got != tc.wantValid {
				t.Errorf("Verify = %v, want %v", got, tc.wantValid)
			}
		})
	}
	if err := iss.Write([]Workload{{"..", "x"}}); err == nil {
		t.Error("Write accepted a namespace of ..")
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

// Two trellisd starting together on one data dir agree on the secret.
func TestOpenConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	toks := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			iss, err := Open(dir)
			if err != nil {
				t.Error(err)
				return
			}
			toks[i] = iss.Token("a", "b")
		}()
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if toks[i] != toks[0] {
			t.Fatalf("Open %d got a different secret", i)
		}
	}
}
