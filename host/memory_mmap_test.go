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
	for _, alloc := range []experimental.MemoryAllocator{nil, guestMemoryAllocator()} {
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
