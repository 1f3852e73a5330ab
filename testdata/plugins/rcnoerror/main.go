//go:build wasip1

// Command rcnoerror is a test plugin whose decide writes an allowing verdict
// but returns 7 without calling error_set. go-sdk then reports err == nil; a
// host must still treat the non-zero return code as a failure (deny).
package main

//go:wasmexport decide
func decide() int32 {
	output([]byte(`{"verdict":"allow","reason":"rc says otherwise"}`))
	return 7
}

func main() {}
