//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || loong64)

package host

import (
	"context"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
)

// growModule exports "memory" (1 page, at most 2) and grow(delta) =
// memory.grow.
var growModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type (i32) -> i32
	0x03, 0x02, 0x01, 0x00, // one function
	0x05, 0x04, 0x01, 0x01, 0x01, 0x02, // memory min 1 max 2
	0x07, 0x11, 0x02, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, 0x04, 'g', 'r', 'o', 'w', 0x00, 0x00,
	0x0a, 0x08, 0x01, 0x06, 0x00, 0x20, 0x00, 0x40, 0x00, 0x0b, // local.get 0; memory.grow; end
}

// TestMappedMemoryGrowsInPlace: the guest memory keeps its address and
// contents across memory.grow, and grow past the module's maximum fails
// (-1) exactly as with wazero's default memory.
func TestMappedMemoryGrowsInPlace(t *testing.T) {
	ctx := context.Background()
	var mems []*mappedMemory
	testHookMemory = func(m experimental.LinearMemory) {
		if mm, ok := m.(*mappedMemory); ok {
			mems = append(mems, mm)
		}
	}
	defer func() { testHookMemory = nil }()
	for _, alloc := range []experimental.MemoryAllocator{nil, guestMemoryAllocator(0)} {
		r := wazero.NewRuntime(ctx)
		mod, err := r.InstantiateWithConfig(experimental.WithMemoryAllocator(ctx, alloc), growModule, wazero.NewModuleConfig())
		if err != nil {
			t.Fatal(err)
		}
		mem := mod.Memory()
		mem.WriteByte(100, 42)
		before, _ := mem.Read(0, 1)
		grow := mod.ExportedFunction("grow")
		for _, c := range []struct{ delta, want uint32 }{{1, 1}, {1, 0xffffffff}, {0, 2}} {
			res, err := grow.Call(ctx, uint64(c.delta))
			if err != nil {
				t.Fatal(err)
			}
			if uint32(res[0]) != c.want {
				t.Errorf("allocator %v: grow(%d) = %d, want %d", alloc != nil, c.delta, int32(res[0]), int32(c.want))
			}
		}
		if mem.Size() != 2*65536 {
			t.Errorf("size %d", mem.Size())
		}
		after, _ := mem.Read(0, mem.Size())
		if b, _ := mem.ReadByte(100); b != 42 {
			t.Error("contents lost in the grow")
		}
		if alloc != nil {
			if unsafe.SliceData(before) != unsafe.SliceData(after) {
				t.Error("the memory moved")
			}
			// The new page is usable and zero.
			if b, _ := mem.ReadByte(65536 + 7); b != 0 || !mem.WriteByte(2*65536-1, 1) {
				t.Error("the grown page is not usable")
			}
		}
		r.Close(ctx)
	}
	if len(mems) != 1 {
		t.Fatalf("%d mapped memories, want 1", len(mems))
	}
	if mems[0].reserved != nil {
		t.Error("closing the module did not unmap the memory")
	}
	if m := mems[0]; m.Reallocate(65536) != nil {
		t.Error("a freed memory grew")
	}
}

// TestRunMapsGuestMemory: Run gives the guest a mapped memory that grows
// in place as its Go heap grows (64 MiB here), and frees it at the end.
func TestRunMapsGuestMemory(t *testing.T) {
	var mems []*mappedMemory
	testHookMemory = func(m experimental.LinearMemory) {
		if mm, ok := m.(*mappedMemory); ok {
			mems = append(mems, mm)
		}
	}
	defer func() { testHookMemory = nil }()
	code, out, errOut, err := hostRunGuest(t, hostGoGuest(t, "holdmem"), NewConfig().WithArgs("holdmem", "64"), time.Minute)
	if err != nil || code != 0 || !strings.HasPrefix(out, "held 64 MiB") {
		t.Fatalf("code %d, err %v, out %q %q", code, err, out, errOut)
	}
	if len(mems) != 1 {
		t.Fatalf("%d mapped memories, want 1 (the guest's)", len(mems))
	}
	m := mems[0]
	if m.grows < 2 || m.committed < 64<<20 {
		t.Errorf("grows %d, committed %d: the guest's heap did not grow in the mapping", m.grows, m.committed)
	}
	if m.reserved != nil {
		t.Error("the memory was not unmapped after the run")
	}
}

// FuzzMappedMemory: any sequence of sizes (within and past a reservation of
// a few pages) keeps the address and the contents written so far, zero
// beyond them, and refuses sizes past the reservation, as wazero needs.
func FuzzMappedMemory(f *testing.F) {
	f.Add([]byte{1, 2, 2, 0, 5, 9, 3})
	f.Add([]byte{0, 0, 8, 8, 1})
	f.Fuzz(func(t *testing.T, steps []byte) {
		const page, maxPages = 65536, 8
		m, ok := allocateMapped(page, maxPages*page).(*mappedMemory)
		if !ok {
			t.Skip("no address space to reserve")
		}
		defer m.Free()
		var model []byte
		var base *byte
		for i, st := range steps {
			size := uint64(st%12) * page / 2 // half pages too, and past the maximum
			b := m.Reallocate(size)
			if size > maxPages*page {
				if b != nil {
					t.Fatalf("step %d: grew to %d past the reservation", i, size)
				}
				continue
			}
			if b == nil || uint64(len(b)) != size {
				t.Fatalf("step %d: Reallocate(%d) gave %d bytes", i, size, len(b))
			}
			if size > 0 {
				if base == nil {
					base = &b[0]
				} else if &b[0] != base {
					t.Fatalf("step %d: the memory moved", i)
				}
			}
			for j := range min(len(model), len(b)) {
				if b[j] != model[j] {
					t.Fatalf("step %d: byte %d is %d, want %d", i, j, b[j], model[j])
				}
			}
			for j := len(model); j < len(b); j += 4093 {
				if b[j] != 0 {
					t.Fatalf("step %d: new byte %d is %d", i, j, b[j])
				}
			}
			// Write a marker in every page we now have.
			for j := 0; j < len(b); j += 4096 {
				b[j] = byte(i + 1)
			}
			if len(b) > len(model) {
				model = append(model, make([]byte, len(b)-len(model))...)
			}
			for j := 0; j < len(b); j += 4096 {
				model[j] = byte(i + 1)
			}
		}
	})
}

// TestReservationReusedWiped: a freed reservation is reused by the next
// memory of the same maximum, at the same address, with every byte the
// previous guest could write zeroed; one with too much accessible is
// unmapped instead.
func TestReservationReusedWiped(t *testing.T) {
	const max = 1 << 30
	a := allocateMapped(0, max).(*mappedMemory)
	buf := a.Reallocate(3 * 65536)
	for i := range buf {
		buf[i] = 0xAA
	}
	addr := &buf[0]
	a.Free()
	b := allocateMapped(0, max).(*mappedMemory)
	defer b.Free()
	got := b.Reallocate(65536)
	if &got[0] != addr {
		t.Fatal("the freed reservation was not reused")
	}
	got = b.Reallocate(4 * 65536)
	for i, v := range got {
		if v != 0 {
			t.Fatalf("byte %d of a reused reservation is %#x, want 0", i, v)
		}
	}

	// Past maxWipeByWriting the pages are given back, and read as zero.
	mid := allocateMapped(0, max).(*mappedMemory)
	buf = mid.Reallocate(2 * maxWipeByWriting)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 0xBB
	}
	mid.Free()
	mid = allocateMapped(0, max).(*mappedMemory)
	defer mid.Free()
	got = mid.Reallocate(2 * maxWipeByWriting)
	for i := 0; i < len(got); i += 4096 {
		if got[i] != 0 {
			t.Fatalf("byte %d of a reused reservation is %#x, want 0", i, got[i])
		}
	}

	big := allocateMapped(0, max).(*mappedMemory)
	if big.Reallocate(maxIdleCommitted+65536) == nil {
		t.Fatal("grow failed")
	}
	idle := func() int {
		idleReservations.mu.Lock()
		defer idleReservations.mu.Unlock()
		return len(idleReservations.idle)
	}
	before := idle()
	big.Free()
	if idle() != before {
		t.Fatal("a reservation with more than maxIdleCommitted accessible was kept")
	}
}
