package policy

import (
	"encoding/binary"
	"unsafe"
)

// Hot-path helpers. Inside a wasm plugin run with close-on-context-done,
// every taken branch, loop iteration and call of a function with branches is
// a termination check that exits to the host. A Go string switch or string
// comparison is a loop over bytes (runtime.memequal/cmpstring are byte loops
// on wasm), so the code below replaces them with table lookups and 8-byte
// comparisons.

// opHashMul maps the first 8 bytes of each op (all ops are at least 8 bytes
// long, and their first 8 bytes differ) to a distinct slot of opSlots after
// a multiply and a shift: a perfect hash.
const opHashMul = 0xb338013354bf9101

// opNames is Ops as an array that no caller can modify.
var opNames = [...]Op{
	OpDNSLookup, OpDNSAnswer,
	OpTCPConnect, OpTCPBind, OpTCPListen, OpTCPAccept,
	OpUDPBind, OpUDPConnect, OpUDPSend, OpUDPRecv,
}

// opSlots holds 1 + the index in opNames of the op hashing to each slot, 0
// for none.
var opSlots = func() (t [16]uint8) {
	for i, op := range opNames {
		h := binary.LittleEndian.Uint64([]byte(op)) * opHashMul >> 60
		if t[h] != 0 {
			panic("policy: opHashMul is not a perfect hash of the ops")
		}
		t[h] = uint8(i + 1)
	}
	return t
}()

// Per op index: its direction and protocol (see OpDirection).
var (
	opDirs   = [len(opNames)]Direction{DirDNS, DirDNS, DirConnect, DirBind, DirBind, DirAccept, DirBind, DirConnect, DirConnect, DirAccept}
	opProtos = [len(opNames)]string{"", "", "tcp", "tcp", "tcp", "tcp", "udp", "udp", "udp", "udp"}
)

// OpIndex returns the position of op in Ops, or -1 when op is not a known
// operation. It is meant for plugins' hot paths: it hashes the op instead of
// comparing it with each name, so indexing a table with it is much cheaper
// inside wasm than a switch or a map keyed by Op.
func OpIndex(op Op) int {
	if len(op) < 8 {
		return -1
	}
	w := uint64(op[0]) | uint64(op[1])<<8 | uint64(op[2])<<16 | uint64(op[3])<<24 |
		uint64(op[4])<<32 | uint64(op[5])<<40 | uint64(op[6])<<48 | uint64(op[7])<<56
	i := int(opSlots[w*opHashMul>>60]) - 1
	if i < 0 || !eqStr(string(op), string(opNames[i])) {
		return -1
	}
	return i
}

// word reads 8 bytes of s at i, little-endian (i+8 <= len(s)).
func word(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// eqStr is a == b, settled inline when both are the same bytes (a constant
// and what was set from it: an op the decoder interned, a rule's proto, an
// Action a handler returned; the linker stores equal string constants
// once), by strEqual otherwise.
func eqStr(a, b string) bool {
	if len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b) {
		return true
	}
	return strEqual(a, b)
}

// strEqual is a == b comparing 8 bytes per step (the last step overlaps),
// instead of runtime.memequal's byte loop on wasm.
func strEqual(a, b string) bool {
	n := len(a)
	if n != len(b) {
		return false
	}
	if n == 0 || unsafe.StringData(a) == unsafe.StringData(b) {
		// The same bytes: interned ops, constants (the linker stores
		// equal string constants once).
		return true
	}
	if n < 8 {
		for i := 0; i < n; i++ {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	for i := 0; i < n-8; i += 8 {
		if word(a, i) != word(b, i) {
			return false
		}
	}
	return word(a, n-8) == word(b, n-8)
}
