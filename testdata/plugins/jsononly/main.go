//go:build wasip1

// Command jsononly is a well-behaved policy plugin that does not use
// sdk/policy: it speaks the wire format of docs/plugins.md with raw Extism
// kernel imports and encoding/json, as a plugin from another language's PDK
// would. It exports only decide (describe and validate are optional), allows
// tcp.connect to port 443, denies port 25 and abstains on everything else.
package main

import "encoding/json"

//go:wasmimport extism:host/env input_length
func inputLength() uint64

//go:wasmimport extism:host/env input_load_u8
func inputLoadU8(i uint64) uint32

//go:wasmimport extism:host/env alloc
func alloc(n uint64) uint64

//go:wasmimport extism:host/env store_u8
func storeU8(ptr uint64, v uint32)

//go:wasmimport extism:host/env output_set
func outputSet(ptr, n uint64)

//go:wasmimport extism:host/env error_set
func errorSet(ptr uint64)

func input() []byte {
	b := make([]byte, inputLength())
	for i := range b {
		b[i] = byte(inputLoadU8(uint64(i)))
	}
	return b
}

func put(b []byte) uint64 {
	ptr := alloc(uint64(len(b)))
	for i, c := range b {
		storeU8(ptr+uint64(i), uint32(c))
	}
	return ptr
}

type request struct {
	Op    string   `json:"op"`
	Proto string   `json:"proto"`
	Addr  string   `json:"addr"`
	Port  int      `json:"port"`
	Names []string `json:"names"`
}

type verdict struct {
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
}

//go:wasmexport decide
func decide() int32 {
	var req request
	if err := json.Unmarshal(input(), &req); err != nil {
		errorSet(put([]byte("jsononly: " + err.Error())))
		return 1
	}
	v := verdict{Verdict: "abstain"}
	if req.Op == "tcp.connect" {
		switch req.Port {
		case 443:
			v = verdict{"allow", "jsononly: https"}
		case 25:
			v = verdict{"deny", "jsononly: no smtp"}
		}
	}
	out, _ := json.Marshal(v)
	outputSet(put(out), uint64(len(out)))
	return 0
}

func main() {}
