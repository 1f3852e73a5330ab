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
// host. Elsewhere, or when the reservation fails, wazero's default is used.

// guestMemoryAllocator returns the allocator for guest memories, or nil for
// wazero's default.
func guestMemoryAllocator() experimental.MemoryAllocator {
	return mmapAllocator()
}

// testHookMemory, when set by a test, sees every guest memory allocated.
var testHookMemory func(experimental.LinearMemory)

// wasmPageSize is the size of a WebAssembly memory page.
const wasmPageSize = 65536
