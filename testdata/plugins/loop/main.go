//go:build wasip1

// Command loop is a test plugin whose decide never returns.
package main

var counter uint64

//go:wasmexport decide
func decide() int32 {
	for {
		counter++ // a side effect, so the loop is not optimised away
	}
}

func main() {}
