//go:build wasip1

// Command trap is a test plugin whose decide panics. The panic is not
// recovered, so the Go runtime aborts and the module traps.
package main

//go:wasmexport decide
func decide() int32 {
	panic("trap: deliberate panic in decide")
}

func main() {}
