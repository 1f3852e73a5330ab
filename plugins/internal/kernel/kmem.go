package kernel

import "sort"

// kmem is the Extism kernel's memory, kept on the Go side for one instance.
// Offsets are what the plugin sees as kernel pointers: 0 is NULL, blocks are
// 8-byte aligned and never overlap. Everything is reset before each call, as
// go-sdk does, so a bump allocator is enough; freeing the most recent block
// gives its space back (the common pattern for config keys and log lines).
type kmem struct {
	buf    []byte   // len(buf) is the high-water mark; offsets index it directly
	blocks []kblock // in increasing offset order
	limit  int      // hard cap on len(buf)
}

type kblock struct {
	off, n uint64
	free   bool
}

const kmemBase = 8 // offset 0 means NULL; keep the first block aligned

func (m *kmem) reset() {
	if cap(m.buf) < kmemBase {
		m.buf = make([]byte, kmemBase, 4096)
	}
	m.buf = m.buf[:kmemBase]
	m.blocks = m.blocks[:0]
}

// alloc returns the offset of a new zeroed block of n bytes, or 0 when n is
// 0 or the block would exceed the limit (the kernel's "allocation failed").
func (m *kmem) alloc(n uint64) uint64 {
	if n == 0 || n > uint64(m.limit) {
		return 0
	}
	off := (uint64(len(m.buf)) + 7) &^ 7
	end := off + n
	if end > uint64(m.limit) {
		return 0
	}
	m.buf = append(m.buf, make([]byte, int(end)-len(m.buf))...)
	m.blocks = append(m.blocks, kblock{off: off, n: n})
	return off
}

// find returns the index of the block starting at off, or -1.
func (m *kmem) find(off uint64) int {
	i := sort.Search(len(m.blocks), func(i int) bool { return m.blocks[i].off >= off })
	if i < len(m.blocks) && m.blocks[i].off == off {
		return i
	}
	return -1
}

// length is the size of the active block at off, or 0.
func (m *kmem) length(off uint64) uint64 {
	// The newest block is by far the most common argument.
	if k := len(m.blocks) - 1; k >= 0 && m.blocks[k].off == off {
		if m.blocks[k].free {
			return 0
		}
		return m.blocks[k].n
	}
	i := m.find(off)
	if i < 0 || m.blocks[i].free {
		return 0
	}
	return m.blocks[i].n
}

func (m *kmem) free(off uint64) {
	i := m.find(off)
	if i < 0 {
		return
	}
	if i == len(m.blocks)-1 {
		m.blocks = m.blocks[:i]
		m.buf = m.buf[:off]
		return
	}
	m.blocks[i].free = true
}

// bytes returns the active block at off, or nil.
func (m *kmem) bytes(off uint64) []byte {
	n := m.length(off)
	if n == 0 {
		return nil
	}
	return m.buf[off : off+n]
}

// span returns buf[off:off+n] when the whole range lies in allocated memory.
func (m *kmem) span(off, n uint64) ([]byte, bool) {
	if off < kmemBase || off > uint64(len(m.buf)) || n > uint64(len(m.buf))-off {
		return nil, false
	}
	return m.buf[off : off+n], true
}
