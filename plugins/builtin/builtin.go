// Package builtin embeds the compiled built-in policy plugins (allowlist,
// denylist, special-ranges, ratelimit), so that a manifest can say
// use = "NAME" with nothing but the wasmgate binary installed.
//
// The .wasm files are generated from ../<name>/ by build.sh and committed;
// TestEmbeddedUpToDate rebuilds them and fails if they differ.
package builtin

//go:generate sh build.sh

import (
	"embed"
	"path"
	"slices"
	"strings"
)

//go:embed *.wasm
var files embed.FS

// Lookup returns the wasm bytes of the built-in plugin name, e.g.
// "allowlist". The slice is shared: do not modify it.
func Lookup(name string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, "/\\.") {
		return nil, false
	}
	b, err := files.ReadFile(name + ".wasm")
	if err != nil {
		return nil, false
	}
	return b, true
}

// Names returns the names of the built-in plugins, sorted.
func Names() []string {
	entries, _ := files.ReadDir(".")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".wasm"); ok && path.Base(n) == n {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
