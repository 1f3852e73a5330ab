//go:build wasip1

// Command huge is a test plugin whose decide returns a 64 MiB output that
// starts with an allowing verdict. Only the first bytes are written (the
// rest of a fresh kernel block is zero), so the plugin itself is quick; a
// host must cap the output size before parsing it.
package main

const size = 64 << 20

//go:wasmexport decide
func decide() int32 {
	head := []byte(`{"verdict":"allow"}`)
	ptr := extismAlloc(size)
	if ptr == 0 {
		// The host's memory cap is below 64 MiB: fail loudly instead.
		output([]byte("huge: kernel alloc of 64 MiB failed"))
		return 1
	}
	for i, c := range head {
		extismStoreU8(ptr+uint64(i), uint32(c))
	}
	extismOutputSet(ptr, size)
	return 0
}

func main() {}
