package policy

import (
	"encoding/binary"
	"math/bits"
)

// interner hands out strings, name lists and label maps seen in earlier
// requests instead of allocating new ones. Inside a wasm plugin each
// allocation costs microseconds (the allocator is branchy code, and the host
// runs plugins with termination checks on every taken branch), while a guest
// keeps sending the same guest name, labels and destination names. The
// results are shared between requests: handlers must treat a Request's
// slices and maps as read-only. Not safe for concurrent use; the wasm decide
// export owns one.
//
// Each table is direct-mapped (a new value evicts the one in its slot), so
// memory stays bounded without maps: a Go map lookup hashes and probes in
// loops, each iteration a termination check inside a plugin, and costs more
// than the whole rest of the parse.
type interner struct {
	strs   [internSlots]internStr
	names  [internSlots]internNames
	labels [internSlots]internLabels
	// namesCanonical is set by a parse whose Names came from the names
	// table and are canonical already (see fastNames).
	namesCanonical bool
	// last is what parseRequestCommon compares a binary request with.
	last lastRequest
}

// internSlots is the size of each table (a power of two).
const internSlots = 64

// internMax bounds each table: the tables never hold more entries.
const internMax = internSlots

type internStr struct {
	key internKey
	val string
}

type internNames struct {
	key       internKey
	val       []string
	canonical bool // every name in val is canonical
}

type internLabels struct {
	key internKey
	val map[string]string
}

// internKey identifies a byte string by its length, its first and last 8
// bytes (which cover the whole of a string of up to 16 bytes, so that short
// keys compare without a loop) and, for longer strings, the full text.
type internKey struct {
	n      int
	w0, w1 uint64
	text   []byte // nil when n <= 16
}

func newInterner() *interner { return &interner{} }

// words returns the first and last 8 bytes of b (zero-padded when b is
// shorter than 8), reading past len(b) up to cap(b) when that saves a loop.
func words(b []byte) (w0, w1 uint64) {
	n := len(b)
	if n >= 8 {
		return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[n-8:])
	}
	if cap(b) >= 8 {
		w0 = binary.LittleEndian.Uint64(b[:8]) & (1<<(8*uint(n)) - 1)
		return w0, w0
	}
	for i := n - 1; i >= 0; i-- {
		w0 = w0<<8 | uint64(b[i])
	}
	return w0, w0
}

// slot picks the table slot of a byte string from its length and words.
func slot(n int, w0, w1 uint64) uint {
	h := (w0*0x9e3779b97f4a7c15 ^ bits.RotateLeft64(w1, 31)*0xc2b2ae3d27d4eb4f ^ uint64(n)) * 0x165667b19e3779f9
	return uint(h>>(64-6)) & (internSlots - 1)
}

// equal reports whether k is the key of b, whose words are w0 and w1.
func (k *internKey) equal(b []byte, w0, w1 uint64) bool {
	if k.n != len(b) || k.w0 != w0 || k.w1 != w1 {
		return false
	}
	if k.n <= 16 {
		return true
	}
	// The middle: 8 bytes per step (first and last words already match).
	t := k.text
	for i := 8; i < k.n-8; i += 8 {
		if binary.LittleEndian.Uint64(t[i:]) != binary.LittleEndian.Uint64(b[i:]) {
			return false
		}
	}
	return true
}

// set makes k the key of b, whose words are w0 and w1.
func (k *internKey) set(b []byte, w0, w1 uint64) {
	k.n = len(b)
	k.w0, k.w1 = w0, w1
	k.text = nil
	if len(b) > 16 {
		k.text = append([]byte(nil), b...)
	}
}

func (in *interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	w0, w1 := words(b)
	e := &in.strs[slot(len(b), w0, w1)]
	if e.key.equal(b, w0, w1) {
		return e.val
	}
	e.key.set(b, w0, w1)
	e.val = string(b)
	return e.val
}

func (in *interner) namesSlot(b []byte, w0, w1 uint64) *internNames {
	return &in.names[slot(len(b), w0, w1)]
}

func (in *interner) labelsSlot(b []byte, w0, w1 uint64) *internLabels {
	return &in.labels[slot(len(b), w0, w1)]
}

// lastRequest is the guest name, and the names and labels blocks with
// what they decoded to, of the last binary request parseRequestBinaryZero
// decoded. A block is kept only when it decoded to a list or map (an empty
// one is recognised as such); its bytes are copied into a buffer that is
// reused.
type lastRequest struct {
	guest          string
	namesBlock     []byte
	names          []string
	namesCanonical bool
	labelsBlock    []byte
	labels         map[string]string
}

// keepLast records r, decoded from the names and labels blocks given, as
// the last binary request.
func (in *interner) keepLast(r *Request, names, labels []byte) {
	l := &in.last
	l.guest = r.Guest
	if r.Names != nil {
		l.namesBlock = append(l.namesBlock[:0], names...)
		l.names, l.namesCanonical = r.Names, in.namesCanonical
	}
	if r.Labels != nil {
		l.labelsBlock = append(l.labelsBlock[:0], labels...)
		l.labels = r.Labels
	}
}
