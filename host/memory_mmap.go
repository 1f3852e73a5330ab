//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || loong64)

package host

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// allocateMapped reserves max bytes of address space for one memory, or
// returns a Go-heap memory when that fails (an address-space limit).
func allocateMapped(capacity, max uint64) experimental.LinearMemory {
	var mem experimental.LinearMemory
	if max == 0 {
		mem = &heapMemory{max: max}
	} else if b, committed, ok := idleReservations.get(max); ok {
		mem = &mappedMemory{reserved: b, committed: committed}
	} else if b, err := unix.Mmap(-1, 0, int(max), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE); err != nil {
		mem = &heapMemory{max: max}
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
		idleReservations.put(m.reserved, m.committed)
		m.reserved = nil
	}
}

// Reusing reservations. A fresh reservation costs the guest a page fault
// for every page it touches, the data segments first: ~15 ms of a 20 ms
// warm start of a Go guest on a virtual machine, where wazero's default
// heap memory reuses pages the Go heap already has. So a freed
// reservation whose accessible part is small is kept, wiped, for the next
// guest: up to maxIdleReservations of them, each at most
// maxIdleCommitted bytes accessible, of which at most maxWipeByWriting
// stay resident (docs/sockets.md, "Limits"). Larger ones are unmapped.
const (
	maxIdleReservations = 8
	maxIdleCommitted    = 64 << 20
	maxWipeByWriting    = 8 << 20
)

// wipe zeroes b: its first maxWipeByWriting bytes by writing zeros (pages
// the next guest will likely touch again stay resident), the rest by
// giving the pages back to the kernel (MADV_DONTNEED: they read as zero
// and cost no RSS until touched), so that a guest that grew its memory
// without touching it does not make the host touch it.
func wipe(b []byte) bool {
	n := min(len(b), maxWipeByWriting)
	clear(b[:n])
	if len(b) > n {
		return unix.Madvise(b[n:], unix.MADV_DONTNEED) == nil
	}
	return true
}

var idleReservations reservationPool

type reservationPool struct {
	mu   sync.Mutex
	idle []idleReservation
}

type idleReservation struct {
	b         []byte // the whole reservation, [0, committed) zeroed
	committed int
}

// get returns an idle reservation of exactly size bytes.
func (p *reservationPool) get(size uint64) ([]byte, int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.idle {
		if uint64(len(r.b)) == size {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return r.b, r.committed, true
		}
	}
	return nil, 0, false
}

// put keeps b for reuse after wiping what the guest could write, or
// unmaps it.
func (p *reservationPool) put(b []byte, committed int) {
	if committed <= maxIdleCommitted && wipe(b[:committed]) {
		p.mu.Lock()
		if len(p.idle) < maxIdleReservations {
			p.idle = append(p.idle, idleReservation{b, committed})
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
	_ = unix.Munmap(b)
}
