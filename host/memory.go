package host

import "github.com/tetratelabs/wazero/experimental"

// Guest linear memory (docs/sockets.md, "Limits"). wazero's default
// memory is a Go slice that grows by copying into a bigger one, so a guest
// growing to N bytes leaves about N more of old copies in the Go heap until
// the garbage collector returns them, and a server guest's host RSS was
// several times its linear memory. On Linux (64-bit) the host instead
// reserves the memory's whole maximum as address space once (PROT_NONE,
// no RSS) and makes pages accessible as the memory grows (mprotect): the
// memory never moves, growth copies nothing, and only pages the guest
// touches cost RSS. The limits are unchanged: memory.grow past the
// module's maximum fails as before (wazero checks it), and a grow the
// system cannot back also fails (-1 to the guest) instead of aborting the
// host. Elsewhere, or when the reservation fails, the memory is a Go slice
// that grows by copying, as wazero's default.

// guestMemoryAllocator returns the allocator for guest memories. limit
// (bytes, 0 for none; Config.WithMemoryLimit) lowers the module's maximum:
// the memory is reserved, or allowed to grow, only up to it, so that
// memory.grow past it fails (-1 to the guest) as it does past the
// module's own maximum.
func guestMemoryAllocator(limit uint64) experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capacity, max uint64) experimental.LinearMemory {
		if limit > 0 && max > limit {
			max = limit
		}
		if capacity > max {
			// The initial size is past the limit: wazero's instantiation
			// fails (run.go, instantiate); reserve nothing for it.
			return &heapMemory{max: max}
		}
		return allocateMapped(min(capacity, max), max)
	})
}

// heapMemory is a linear memory in the Go heap that grows by appending, as
// wazero's default does: the fallback when address space cannot be
// reserved, and the memory on platforms without the reservation. It
// refuses to grow past max.
type heapMemory struct {
	buf []byte
	max uint64
}

func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if n := uint64(len(m.buf)); size > n {
		m.buf = append(m.buf, make([]byte, size-n)...)
	}
	return m.buf[:size]
}

func (m *heapMemory) Free() { m.buf = nil }

// testHookMemory, when set by a test, sees every guest memory allocated.
var testHookMemory func(experimental.LinearMemory)

// wasmPageSize is the size of a WebAssembly memory page.
const wasmPageSize = 65536
