//go:build wasip1

// Command raw is a benchmark plugin written without sdk/policy: its
// wasmgate_decide reads the address kind and port straight from the fast
// path's buffer and answers with a fixed verdict. It is the least a Go
// plugin can do per decision, the floor the SDK's own cost is measured
// against (BenchmarkColdCall, BenchmarkSockConnectPolicy's go-raw).
package main

import (
	"encoding/binary"
	"unsafe"
)

//go:wasmimport extism:host/env alloc
func extismAlloc(n uint64) uint64

//go:wasmimport extism:host/env store_u8
func extismStoreU8(ptr uint64, v uint32)

//go:wasmimport extism:host/env output_set
func extismOutputSet(ptr uint64, n uint64)

func output(b []byte) {
	p := extismAlloc(uint64(len(b)))
	for i, c := range b {
		extismStoreU8(p+uint64(i), uint32(c))
	}
	extismOutputSet(p, uint64(len(b)))
}

//go:wasmexport describe
func describe() int32 { output([]byte(`{"name":"raw","ops":["tcp.connect"]}`)); return 0 }

//go:wasmexport validate
func validate() int32 { output([]byte(`{}`)); return 0 }

//go:wasmexport decide
func decide() int32 { output([]byte(`{"verdict":"deny","reason":"raw: json"}`)); return 0 }

var fastBuf [1024]byte

//go:wasmexport wasmgate_buffer
func wasmgateBuffer() uint64 {
	return uint64(uintptr(unsafe.Pointer(&fastBuf[0])))<<32 | uint64(len(fastBuf))
}

const reason = "raw: allowed"

//go:wasmexport wasmgate_decide
func wasmgateDecide(n int32) int64 {
	// version, op, proto, then addr kind: 4 → 4 bytes + port.
	b := fastBuf[:n]
	action := byte(3)
	if len(b) > 10 && b[3] == 4 {
		port := uint16(b[8]) | uint16(b[9])<<8
		if port != 0 {
			action = 1
		}
	}
	out := fastBuf[:0]
	out = append(out, action)
	out = binary.LittleEndian.AppendUint64(out, 0)
	out = append(out, byte(len(reason)), 0)
	out = append(out, reason...)
	return int64(len(out))
}

func main() {}
