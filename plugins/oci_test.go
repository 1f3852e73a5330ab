package plugins

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// The plugins tests (FuzzParseManifest above all: it could make up an
// `oci` key) never reach a registry; the OCI tests are internal/oci's and
// cmd/wasmgate's, against a loopback one.
func init() {
	pullOCI = func(context.Context, string) ([]byte, error) {
		return nil, errors.New("the plugins tests reach no registry")
	}
}

func TestManifestOCIKey(t *testing.T) {
	pinned := "127.0.0.1:1/team/p@sha256:" + strings.Repeat("ab", 32)
	var pulled []string
	old := pullOCI
	pullOCI = func(_ context.Context, ref string) ([]byte, error) {
		pulled = append(pulled, ref)
		if strings.Contains(ref, "/down@") {
			return nil, errors.New("connection refused")
		}
		return []byte("\x00asm\x01\x00\x00\x00"), nil
	}
	t.Cleanup(func() { pullOCI = old })

	m, err := ParseManifestData("/x/policy.toml", []byte("[[plugins]]\nname = \"p\"\noci = \""+pinned+"\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Plugins[0]; p.OCI != pinned || string(p.Wasm) != "\x00asm\x01\x00\x00\x00" || p.Path != "" || len(pulled) != 1 {
		t.Fatalf("spec %+v, pulled %v", p, pulled)
	}
	for _, tc := range []struct{ body, want string }{
		{`oci = "127.0.0.1:1/team/p:v1"`, "plugins[1].oci: \"127.0.0.1:1/team/p:v1\" is not pinned by digest; run `wasmgate plugin resolve 127.0.0.1:1/team/p:v1`"},
		{`oci = "127.0.0.1:1/team/p@sha256:abc"`, "the digest must be sha256: and 64 lower-case hex digits"},
		{`oci = 7`, "plugins[1].oci: must be a string, not an integer"},
		{"oci = \"" + pinned + "\"\nuse = \"allowlist\"", "has oci and use or path"},
		{"oci = \"" + pinned + "\"\nsha256 = \"" + strings.Repeat("ab", 32) + "\"", "plugins[1].sha256: an oci plugin is pinned by the digest in its reference"},
		{`oci = "127.0.0.1:1/team/down@sha256:` + strings.Repeat("cd", 32) + `"`, "plugins[1].oci: cannot pull plugin: connection refused"},
	} {
		_, err := ParseManifestData("/x/policy.toml", []byte("[[plugins]]\nname = \"p\"\n"+tc.body+"\n"), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.body, err, tc.want)
		}
	}
}
