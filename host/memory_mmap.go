//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || loong64)

package host

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

func mmapAllocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(allocateMapped)
}

// allocateMapped reserves max bytes of address space for one memory, or
// returns a Go-heap memory when that fails (an address-space limit).
func allocateMapped(capacity, max uint64) experimental.LinearMemory {
	var mem experimental.LinearMemory
	if max == 0 {
		mem = &heapMemory{}
	} else if b, err := unix.Mmap(-1, 0, int(max), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE); err != nil {
		mem = &heapMemory{}
	} else {
		mem = &mappedMemory{reserved: b}
	}
	if testHookMemory != nil {
		testHookMemory(mem)
	}
	return mem
}

// mappedMemory is a linear memory in a fixed reservation: bytes
// [0, committed) are readable and writable, the rest PROT_NONE.
type mappedMemory struct {
	mu        sync.Mutex // Free may come from another goroutine than growth
	reserved  []byte     // the whole reservation; nil once freed
	committed int
	grows     int // Reallocate calls that committed more (for tests)
}

// Reallocate implements experimental.LinearMemory: it commits up to size
// and returns the memory's first size bytes, always at the same address.
// nil (the grow fails) past the reservation or when mprotect fails.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reserved == nil || size > uint64(len(m.reserved)) {
		return nil
	}
	n := int(size)
	if n > m.committed {
		if err := unix.Mprotect(m.reserved[m.committed:n], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		m.committed = n
		m.grows++
	}
	return m.reserved[:n:n]
}

// Free implements experimental.LinearMemory: it unmaps the reservation.
// wazero calls it when the module is closed, after the guest's last call.
func (m *mappedMemory) Free() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reserved != nil {
		_ = unix.Munmap(m.reserved)
		m.reserved = nil
	}
}

// heapMemory is a linear memory in the Go heap that grows by appending, as
// wazero's default does: the fallback when address space cannot be
// reserved.
type heapMemory struct{ buf []byte }

func (m *heapMemory) Reallocate(size uint64) []byte {
	if n := uint64(len(m.buf)); size > n {
		m.buf = append(m.buf, make([]byte, size-n)...)
	}
	return m.buf[:size]
}

func (m *heapMemory) Free() { m.buf = nil }
