//go:build wasip1

// Command alloc is a test plugin whose decide allocates (and touches) 1 MiB
// blocks until the Go runtime runs out of memory under the host's cap.
package main

var hoard [][]byte

//go:wasmexport decide
func decide() int32 {
	for {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hoard = append(hoard, b)
	}
}

func main() {}
