package plugins

import "github.com/wasmgate/wasmgate/plugins/builtin"

// defaultBuiltins resolves `use = "NAME"` to the plugins embedded in the
// wasmgate binary.
var defaultBuiltins BuiltinLookup = builtin.Lookup
