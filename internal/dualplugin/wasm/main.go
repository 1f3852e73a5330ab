// Command wasm is package dualplugin built as a sandboxed plugin
// (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared).
package main

import (
	"github.com/wasmgate/wasmgate/internal/dualplugin"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

func init() { policy.Serve(dualplugin.New) }

func main() {}
