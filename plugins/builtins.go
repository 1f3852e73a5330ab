package plugins

import (
	"fmt"
	"slices"
	"strings"

	"github.com/wasmgate/wasmgate/plugins/builtin"
)

// defaultBuiltins resolves `use = "NAME"` to the plugins embedded in the
// wasmgate binary.
var defaultBuiltins BuiltinLookup = builtin.Lookup

// unknownBuiltin is the problem of a use = "NAME" that lookup does not
// know: it lists the built-ins lookup does know (of the embedded ones), or
// says that there are none, rather than name plugins the caller left out.
func unknownBuiltin(name string, lookup BuiltinLookup) string {
	var known []string
	if lookup != nil {
		// In the order the docs list them (docs/plugins.md#6-the-built-in-plugins).
		names := []string{"allowlist", "denylist", "special-ranges", "ratelimit"}
		for _, n := range builtin.Names() {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		for _, n := range names {
			if _, ok := lookup(n); ok {
				known = append(known, n)
			}
		}
	}
	if len(known) == 0 {
		return fmt.Sprintf("unknown built-in plugin %q (no built-in plugins are available here; use path = \"FILE.wasm\")", name)
	}
	return fmt.Sprintf("unknown built-in plugin %q (built-ins: %s)", name, strings.Join(known, ", "))
}
