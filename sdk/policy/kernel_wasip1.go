//go:build wasip1

package policy

import (
	"encoding/binary"
	"runtime"
	"runtime/metrics"
	"sync"
	"unsafe"

	"github.com/wasmgate/wasmgate/internal/policyhook"
)

// The Extism kernel ABI (module extism:host/env), declared directly. Offsets
// and lengths are i64 values in the kernel's memory, not in ours: every byte
// crosses through these calls, so the code below moves 8 bytes per call.

//go:wasmimport extism:host/env input_length
func extismInputLength() uint64

//go:wasmimport extism:host/env input_load_u64
func extismInputLoadU64(idx uint64) uint64

//go:wasmimport extism:host/env input_load_u8
func extismInputLoadU8(idx uint64) uint32

//go:wasmimport extism:host/env alloc
func extismAlloc(n uint64) uint64

//go:wasmimport extism:host/env length
func extismLength(ptr uint64) uint64

//go:wasmimport extism:host/env load_u64
func extismLoadU64(ptr uint64) uint64

//go:wasmimport extism:host/env load_u8
func extismLoadU8(ptr uint64) uint32

//go:wasmimport extism:host/env store_u64
func extismStoreU64(ptr uint64, v uint64)

//go:wasmimport extism:host/env store_u8
func extismStoreU8(ptr uint64, v uint32)

//go:wasmimport extism:host/env output_set
func extismOutputSet(ptr uint64, n uint64)

//go:wasmimport extism:host/env error_set
func extismErrorSet(ptr uint64)

//go:wasmimport extism:host/env config_get
func extismConfigGet(keyPtr uint64) uint64

//go:wasmimport extism:host/env get_log_level
func extismGetLogLevel() int32

//go:wasmimport extism:host/env log_trace
func extismLogTrace(ptr uint64)

//go:wasmimport extism:host/env log_debug
func extismLogDebug(ptr uint64)

//go:wasmimport extism:host/env log_info
func extismLogInfo(ptr uint64)

//go:wasmimport extism:host/env log_warn
func extismLogWarn(ptr uint64)

//go:wasmimport extism:host/env log_error
func extismLogError(ptr uint64)

// Buffers reused across calls: an instance handles one call at a time, and
// fresh allocations cost GC work inside wasm.
var inBuf, outBuf []byte

// reqStrings interns the strings, name lists and label maps of requests.
var reqStrings = newInterner()

// readInput copies the call input into inBuf.
func readInput() []byte {
	n := int(extismInputLength())
	if cap(inBuf) < n {
		inBuf = make([]byte, n)
	}
	b := inBuf[:n]
	i := 0
	// Four loads per iteration: each loop iteration is a termination check
	// (an exit to the host) when the host enforces timeouts.
	for ; n-i >= 32; i += 32 {
		w := b[i : i+32]
		binary.LittleEndian.PutUint64(w[0:], extismInputLoadU64(uint64(i)))
		binary.LittleEndian.PutUint64(w[8:], extismInputLoadU64(uint64(i+8)))
		binary.LittleEndian.PutUint64(w[16:], extismInputLoadU64(uint64(i+16)))
		binary.LittleEndian.PutUint64(w[24:], extismInputLoadU64(uint64(i+24)))
	}
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], extismInputLoadU64(uint64(i)))
	}
	if i < n {
		if n >= 8 {
			// One overlapping load for the tail instead of up to 7 byte loads.
			binary.LittleEndian.PutUint64(b[n-8:], extismInputLoadU64(uint64(n-8)))
		} else {
			for ; i < n; i++ {
				b[i] = byte(extismInputLoadU8(uint64(i)))
			}
		}
	}
	return b
}

// store copies b into a new kernel block and returns its offset, 0 if the
// kernel could not allocate.
func store(b []byte) uint64 {
	n := len(b)
	ptr := extismAlloc(uint64(n))
	if ptr == 0 {
		return 0
	}
	i := 0
	for ; n-i >= 32; i += 32 {
		w := b[i : i+32]
		p := ptr + uint64(i)
		extismStoreU64(p, binary.LittleEndian.Uint64(w[0:]))
		extismStoreU64(p+8, binary.LittleEndian.Uint64(w[8:]))
		extismStoreU64(p+16, binary.LittleEndian.Uint64(w[16:]))
		extismStoreU64(p+24, binary.LittleEndian.Uint64(w[24:]))
	}
	for ; i+8 <= n; i += 8 {
		extismStoreU64(ptr+uint64(i), binary.LittleEndian.Uint64(b[i:]))
	}
	if i < n {
		if n >= 8 {
			// Overlapping store: rewrites a few bytes with the same values.
			extismStoreU64(ptr+uint64(n-8), binary.LittleEndian.Uint64(b[n-8:]))
		} else {
			for ; i < n; i++ {
				extismStoreU8(ptr+uint64(i), uint32(b[i]))
			}
		}
	}
	return ptr
}

// load copies the kernel block at ptr into a new slice.
func load(ptr uint64) []byte {
	n := int(extismLength(ptr))
	b := make([]byte, n)
	i := 0
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], extismLoadU64(ptr+uint64(i)))
	}
	if i < n {
		if n >= 8 {
			binary.LittleEndian.PutUint64(b[n-8:], extismLoadU64(ptr+uint64(n-8)))
		} else {
			for ; i < n; i++ {
				b[i] = byte(extismLoadU8(ptr + uint64(i)))
			}
		}
	}
	return b
}

// output sets b as the call output; false if the kernel is out of memory.
func output(b []byte) bool {
	if len(b) == 0 {
		extismOutputSet(0, 0)
		return true
	}
	ptr := store(b)
	if ptr == 0 {
		return false
	}
	extismOutputSet(ptr, uint64(len(b)))
	return true
}

// fail sets msg as the call's error and returns the non-zero return code.
func fail(msg string) int32 {
	if ptr := store([]byte(msg)); ptr != 0 {
		extismErrorSet(ptr)
	}
	return 1
}

// yieldEvery is how often, in decisions, the plugin lets its other
// goroutines run (docs/plugins.md#gc, "Go's garbage collector in a plugin").
// Once an export returns, Go's runtime runs no other goroutine, and now and
// then a collection stalls: a plugin that allocates then grows its heap
// until the memory cap kills the instance (one allocating 2 KiB per
// decision died after 160,000 to 190,000 decisions;
// TestAllocatingPluginLives).
const yieldEvery = 1024

// decisions counts the decisions that ran the plugin's handler.
var decisions uint32

// gcSample is what yield reads of the collector's state: cycles ended,
// bytes allocated, the heap goal. gcCycles and gcAllocs are the first two
// when yield last saw the count of cycles change.
var (
	gcSample           = []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	gcCycles, gcAllocs uint64
)

// yield runs the other goroutines (the collector's workers), and collects
// to the end when no cycle has ended while the plugin allocated more than
// the heap goal (a stalled cycle). The exports call it every yieldEvery
// decisions, counting inline: a call per decision is cold code in a
// running guest.
func yield() {
	runtime.Gosched()
	metrics.Read(gcSample)
	cycles, allocs, goal := gcSample[0].Value.Uint64(), gcSample[1].Value.Uint64(), gcSample[2].Value.Uint64()
	if cycles != gcCycles {
		gcCycles, gcAllocs = cycles, allocs
		return
	}
	if allocs-gcAllocs > goal {
		runtime.GC()
	}
}

//go:wasmexport decide
func wasmDecide() int32 {
	if decisions++; decisions%yieldEvery == 0 {
		yield()
	}
	out, err := invokeJSON(readInput(), outBuf[:0], reqStrings)
	if err != nil {
		return fail("decide: bad request: " + err.Error())
	}
	outBuf = out
	if !output(out) {
		return fail("decide: cannot allocate output")
	}
	return 0
}

// fastBuf is the wasmgate fast path's buffer (docs/plugins.md): wasmgate
// writes the request here in the binary encoding (binary.go) and reads the
// binary verdict back, so a decision needs no kernel host call and no JSON.
// Other Extism hosts call decide and never see it.
var fastBuf [64 << 10]byte

//go:wasmexport wasmgate_buffer
func wasmgateBuffer() uint64 {
	return uint64(uintptr(unsafe.Pointer(&fastBuf[0])))<<32 | uint64(len(fastBuf))
}

//go:wasmexport wasmgate_decide
func wasmgateDecide(n int32) int64 {
	if n < 0 || int(n) > len(fastBuf) {
		return fastError("decide: bad request length")
	}
	// A built-in's shortcut (internal/policyhook) takes a known non-dns
	// op on an IPv4 address with no local address, no name and empty
	// names and labels blocks (docs/plugins.md#4-the-wire-format); the
	// guest name and the time are skipped, as the rule lists do not look at
	// them. The checks are here, not in a function: each call is cold code
	// in a running guest.
	var (
		action byte
		ttl    int64
		reason string
		ok     bool
	)
	if h := policyhook.IPv4; h != nil && n >= 33 {
		d := fastBuf[:25]
		op := int(d[1]) - 1
		g := int(d[23]) | int(d[24])<<8
		if d[0] == BinaryVersion && op >= 0 && op < len(Ops) && d[2] <= 2 && d[3] == 4 &&
			d[10]|d[11]|d[12] == 0 && d[21]|d[22] == 0 &&
			int(n) == 25+g+8 && binary.LittleEndian.Uint64(fastBuf[25+g:]) == 0x0000000200000002 {
			action, ttl, reason, ok = h(op, [4]byte{d[4], d[5], d[6], d[7]}, uint16(d[8])|uint16(d[9])<<8)
			ok = ok && action >= 1 && action <= 3
		}
	}
	if !ok {
		var req Request
		if !parseRequestCommon(fastBuf[:n], &req, reqStrings) {
			if err := parseRequestBinaryZero(fastBuf[:n], &req, reqStrings); err != nil {
				return fastError("decide: bad request: " + err.Error())
			}
		}
		v := invoke(handler, &req, reqStrings.namesCanonical)
		action, ttl, reason = verdictActionByte(v.Verdict), v.CacheTTLMs, v.Reason
		// Only this path allocates (the handler may): the shortcut's
		// decisions do not count towards yieldEvery.
		if decisions++; decisions%yieldEvery == 0 {
			yield()
		}
	}
	// Every string of the request is interned or copied: the verdict goes
	// straight into the buffer, as AppendVerdictBinary would append it,
	// here with fixed offsets and no call (each is cold code in a running
	// guest). It fits: the reason is cut to MaxReasonLen (checked at
	// compile time below).
	b := fastBuf[:]
	b[0] = action
	binary.LittleEndian.PutUint64(b[1:], uint64(max(ttl, 0)))
	if len(reason) > MaxReasonLen {
		reason = truncate(reason, MaxReasonLen)
	}
	binary.LittleEndian.PutUint16(b[9:], uint16(len(reason)))
	return int64(11 + copy(b[11:], reason))
}

// A binary verdict (action, TTL, reason length, a reason of at most
// MaxReasonLen bytes) fits in fastBuf, or this constant overflows.
const _ = uint(len(fastBuf) - (1 + 8 + 2 + MaxReasonLen))

// fastError puts msg in the fast-path buffer and returns minus its length.
func fastError(msg string) int64 {
	return -int64(copy(fastBuf[:], msg))
}

//go:wasmexport describe
func wasmDescribe() int32 {
	if !output(DescribeJSON()) {
		return fail("describe: cannot allocate output")
	}
	return 0
}

//go:wasmexport validate
func wasmValidate() int32 {
	if !output(ValidateJSON()) {
		return fail("validate: cannot allocate output")
	}
	return 0
}

// configJSON returns the plugin's config: the Extism config key "config",
// unless a test set one with SetConfig.
func configJSON() []byte {
	if raw, ok := testConfig(); ok {
		return raw
	}
	return hostConfig()
}

// hostConfig reads the Extism config key "config" once per instance: the
// host fixes the config when it creates the instance.
var hostConfig = sync.OnceValue(func() []byte {
	key := store([]byte("config"))
	if key == 0 {
		return nil
	}
	ptr := extismConfigGet(key)
	if ptr == 0 {
		return nil
	}
	return load(ptr)
})

// hostConfigValue reads an Extism config key from the host.
func hostConfigValue(key string) (string, bool) {
	k := store([]byte(key))
	if k == 0 {
		return "", false
	}
	ptr := extismConfigGet(k)
	if ptr == 0 {
		return "", false
	}
	return string(load(ptr)), true
}

// Log sends msg to the host's log at level, if the host's level lets it
// through (checked first, so a filtered message costs one host call).
func Log(level LogLevel, msg string) {
	if f := testLogOutput(); f != nil {
		f(level, msg)
		return
	}
	if LogLevel(extismGetLogLevel()) > level {
		return
	}
	ptr := store([]byte(msg))
	if ptr == 0 {
		return
	}
	switch level {
	case LogTrace:
		extismLogTrace(ptr)
	case LogDebug:
		extismLogDebug(ptr)
	case LogInfo:
		extismLogInfo(ptr)
	case LogWarn:
		extismLogWarn(ptr)
	default:
		extismLogError(ptr)
	}
}

// isWasm enables caches that are only safe in a plugin, where calls never
// run concurrently.
const isWasm = true
