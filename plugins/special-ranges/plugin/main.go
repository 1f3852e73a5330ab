// Command plugin is the special-ranges built-in as a plugin module of its own
// (package specialranges has the policy). wasmgate embeds all built-ins in one
// module instead (plugins/builtin); this one is for other Extism hosts and
// as the smallest example of a complete plugin.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags='-s -w'
package main

import "github.com/wasmgate/wasmgate/plugins/special-ranges"

func init() { specialranges.Register() }

func main() {}
