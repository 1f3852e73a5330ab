//go:build wasip1

package main

// Raw Extism kernel imports (see docs/plugins.md), without sdk/policy.

//go:wasmimport extism:host/env alloc
func extismAlloc(n uint64) uint64

//go:wasmimport extism:host/env store_u8
func extismStoreU8(ptr uint64, v uint32)

//go:wasmimport extism:host/env output_set
func extismOutputSet(ptr uint64, n uint64)

// output copies b into kernel memory and makes it the call output.
func output(b []byte) {
	ptr := extismAlloc(uint64(len(b)))
	for i, c := range b {
		extismStoreU8(ptr+uint64(i), uint32(c))
	}
	extismOutputSet(ptr, uint64(len(b)))
}
