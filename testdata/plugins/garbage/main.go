//go:build wasip1

// Command garbage is a test plugin whose decide returns text that is not
// JSON, with return code 0.
package main

//go:wasmexport decide
func decide() int32 {
	output([]byte("this is not JSON"))
	return 0
}

func main() {}
