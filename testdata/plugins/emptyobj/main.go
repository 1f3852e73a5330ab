//go:build wasip1

// Command emptyobj is a test plugin whose decide returns {}: no verdict,
// which must be a deny.
package main

//go:wasmexport decide
func decide() int32 {
	output([]byte("{}"))
	return 0
}

func main() {}
