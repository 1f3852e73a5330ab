package oci

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseArtifact: whatever manifest a registry sends, parsing never
// panics, and what the checks accept is what the loaders rely on: one
// application/wasm layer for a plugin; for a policy, the manifest layer
// first and only clean, unique, local file names.
func FuzzParseArtifact(f *testing.F) {
	wasm := blob{mediaType: WasmLayerMediaType, data: []byte("\x00asm\x01\x00\x00\x00")}
	seed := func(config blob, layers ...blob) {
		m := ociManifest{SchemaVersion: 2, MediaType: ManifestMediaType, Config: config.descriptor()}
		for _, l := range layers {
			m.Layers = append(m.Layers, l.descriptor())
		}
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	seed(blob{mediaType: WasmConfigMediaType, data: []byte(`{}`)}, wasm)
	seed(blob{mediaType: WasmConfigMediaType, data: []byte(`{}`)}, wasm, wasm)
	title := func(b blob, n string) blob { b.annotations = map[string]string{TitleAnnotation: n}; return b }
	seed(blob{mediaType: PolicyConfigMediaType, data: []byte(`{}`)},
		title(blob{mediaType: PolicyManifestMediaType, data: []byte("x")}, "policy.toml"),
		title(wasm, "a/b.wasm"), title(wasm, "../c.wasm"))
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:` + strings.Repeat("0", 64) + `"},"layers":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d := digestOf(raw)
		if a, err := parseArtifact(d, raw, checkWasm); err == nil {
			if len(a.Manifest.Layers) != 1 || a.Manifest.Layers[0].MediaType != WasmLayerMediaType {
				t.Fatalf("accepted as a plugin: %s", raw)
			}
		}
		if a, err := parseArtifact(d, raw, checkPolicy); err == nil {
			ls := a.Manifest.Layers
			if len(ls) == 0 || ls[0].MediaType != PolicyManifestMediaType || len(ls) > MaxPolicyFiles+1 {
				t.Fatalf("accepted as a policy: %s", raw)
			}
			seen := map[string]bool{}
			for _, l := range ls {
				n := l.Annotations[TitleAnnotation]
				if n == "" || seen[n] || !filepath.IsLocal(filepath.FromSlash(n)) || strings.Contains(n, "..") && filepath.Clean(n) != n {
					t.Fatalf("accepted file name %q: %s", n, raw)
				}
				seen[n] = true
			}
		}
	})
}
