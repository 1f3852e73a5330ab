package interrupt

// The instruction walker knows the immediates of every opcode in wazero's
// default feature set (WebAssembly 2.0: MVP, sign extension, non-trapping
// float-to-int, multi-value, bulk memory, reference types, SIMD). It must
// agree with wazero's decoder byte for byte: a loop it failed to see would
// run unchecked. Everything else (threads, tail calls, exceptions, typed
// function references, GC, relaxed SIMD, multi-memory) is refused.

func isValType(c byte) bool {
	switch c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f: // i32 i64 f32 f64 v128 funcref externref
		return true
	}
	return false
}

func blockType(r *reader) {
	if r.err != nil {
		return
	}
	if r.p >= len(r.b) {
		r.fail("unexpected end at offset %d", r.p)
		return
	}
	c := r.b[r.p]
	if c == 0x40 || isValType(c) {
		r.p++
		return
	}
	if c&0x40 != 0 { // a negative s33 that is no value type
		r.fail("block type %#x", c)
		return
	}
	r.leb(5) // type index
}

func memarg(r *reader) {
	if align := r.u32(); align&0x40 != 0 {
		r.fail("multi-memory memarg")
	}
	r.u32()
}

// Immediate kinds of one-byte opcodes.
const (
	kBad byte = iota
	kNone
	kU32
	kU32x2
	kBlock
	kLoop
	kMemarg
	kS32
	kS64
	kSkip4
	kSkip8
	kBrTable
	kGlobal
	kSelectT
	kRefNull
	kMisc
	kVec
)

var kinds = func() (k [256]byte) {
	set := func(kind byte, ops ...int) {
		for _, op := range ops {
			k[op] = kind
		}
	}
	set(kNone, 0x00, 0x01, 0x05, 0x0b, 0x0f, 0x1a, 0x1b, 0xd1)
	set(kBlock, 0x02, 0x04)
	set(kLoop, opLoop)
	set(kU32, 0x0c, 0x0d, 0x10, 0x20, 0x21, 0x22, 0x25, 0x26, 0x3f, 0x40, 0xd2)
	set(kU32x2, 0x11)
	set(kBrTable, 0x0e)
	set(kSelectT, 0x1c)
	set(kGlobal, opGlobalGet, opGlobalSet)
	for op := 0x28; op <= 0x3e; op++ {
		k[op] = kMemarg
	}
	set(kS32, 0x41)
	set(kS64, 0x42)
	set(kSkip4, 0x43)
	set(kSkip8, 0x44)
	for op := 0x45; op <= 0xc4; op++ {
		k[op] = kNone
	}
	set(kRefNull, 0xd0)
	set(kMisc, 0xfc)
	set(kVec, 0xfd)
	return k
}()

// rewriteFunc copies one function body (locals and expression) to out
// with check inserted after the locals and after every loop's block type.
// The hot path skips LEB128 immediates inline; rare opcodes go through
// reader.
func rewriteFunc(out, code []byte, flag uint32, check []byte) ([]byte, error) {
	r := &reader{b: code}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.u32()
		if t := r.byte(); r.err == nil && !isValType(t) {
			r.fail("local type %#x", t)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	out = append(out, code[:r.p]...)
	out = append(out, check...)
	last := r.p
	p := r.p
	for p < len(code) {
		op := code[p]
		p++
		switch kinds[op] {
		case kNone:
			continue
		case kU32, kS32:
			// One LEB128 of at most 5 bytes; the common one-byte case
			// first.
			if p < len(code) && code[p] < 0x80 {
				p++
				continue
			}
			var ok bool
			if p, ok = skipLEB(code, p, 5); !ok {
				return nil, unsupported("bad LEB128 at offset %d", p)
			}
			continue
		case kMemarg:
			if p+1 < len(code) && code[p] < 0x40 { // one-byte alignment, no memory index
				var ok bool
				if p, ok = skipLEB(code, p+1, 5); !ok {
					return nil, unsupported("bad memarg at offset %d", p)
				}
				continue
			}
		case kGlobal:
			if p < len(code) && code[p] < 0x80 && uint32(code[p]) < flag {
				p++
				continue
			}
		case kBrTable:
			// A vector of label indexes, then the default label: count+1
			// LEB128s.
			n, q, ok := readU32(code, p)
			if !ok {
				return nil, unsupported("bad br_table at offset %d", p)
			}
			p = q
			for j := uint64(0); j <= uint64(n); j++ {
				if p < len(code) && code[p] < 0x80 {
					p++
				} else if p, ok = skipLEB(code, p, 5); !ok {
					return nil, unsupported("bad br_table at offset %d", p)
				}
			}
			continue
		}
		// Rare or multi-part immediates.
		r.p = p
		switch kinds[op] {
		case kLoop:
			blockType(r)
			if r.err == nil {
				out = append(out, code[last:r.p]...)
				out = append(out, check...)
				last = r.p
			}
		case kBlock:
			blockType(r)
		case kU32, kS32:
			r.u32()
		case kU32x2:
			r.u32()
			r.u32()
		case kMemarg:
			memarg(r)
		case kS64:
			r.leb(10)
		case kSkip4:
			r.skip(4)
		case kSkip8:
			r.skip(8)
		case kSelectT:
			n := r.u32()
			for j := uint32(0); j < n && r.err == nil; j++ {
				if t := r.byte(); !isValType(t) {
					r.fail("select type %#x", t)
				}
			}
		case kGlobal:
			if idx := r.u32(); r.err == nil && idx >= flag {
				r.fail("global %d does not exist", idx)
			}
		case kRefNull:
			if t := r.byte(); t != 0x70 && t != 0x6f {
				r.fail("ref.null type %#x", t)
			}
		case kMisc:
			misc(r)
		case kVec:
			vector(r)
		default:
			r.fail("opcode %#x at offset %d", op, p-1)
		}
		if r.err != nil {
			return nil, r.err
		}
		p = r.p
	}
	return append(out, code[last:]...), nil
}

// readU32 decodes the u32 LEB128 at p.
func readU32(b []byte, p int) (uint32, int, bool) {
	var v uint64
	for i := 0; i < 5; i++ {
		if p >= len(b) {
			return 0, p, false
		}
		c := b[p]
		p++
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return uint32(v), p, v <= 0xffffffff
		}
	}
	return 0, p, false
}

// skipLEB returns the offset after the LEB128 at p, of at most max bytes.
func skipLEB(b []byte, p, max int) (int, bool) {
	for i := 0; i < max; i++ {
		if p >= len(b) {
			return p, false
		}
		c := b[p]
		p++
		if c < 0x80 {
			return p, true
		}
	}
	return p, false
}

func misc(r *reader) {
	switch sub := r.u32(); {
	case sub <= 7: // trunc_sat
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17):
		// data.drop memory.fill elem.drop table.grow/size/fill
		r.u32()
	case sub == 8 || sub == 10 || sub == 12 || sub == 14:
		// memory.init memory.copy table.init table.copy
		r.u32()
		r.u32()
	default:
		r.fail("opcode 0xfc %d", sub)
	}
}

func vector(r *reader) {
	switch sub := r.u32(); {
	case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // loads, store, load_zero
		memarg(r)
	case sub == 0x0c || sub == 0x0d: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 0x15 && sub <= 0x22: // extract/replace lane
		r.byte()
	case sub >= 0x54 && sub <= 0x5b: // load/store lane
		memarg(r)
		r.byte()
	case sub <= 0xff:
	default:
		r.fail("opcode 0xfd %d", sub)
	}
}
