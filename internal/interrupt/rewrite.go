package interrupt

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"unicode/utf8"
)

// Section ids of the binary format.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secCode     = 10
	secDataCnt  = 12
	secTag      = 13
	kindGlobal  = 3
	valI32      = 0x7f
	opLoop      = 0x03
	opGlobalGet = 0x23
	opGlobalSet = 0x24
)

// order is the position a known section must have; sections with a lower
// order come first.
func order(id byte) int {
	switch id {
	case secTag:
		return 55 // between memory (5) and global (6)
	case secDataCnt:
		return 95 // between element (9) and code (10)
	case 1, 2, 3, 4, 5, 6, 7, 8, 9:
		return int(id) * 10
	case secCode:
		return 100
	case 11:
		return 110
	}
	return -1
}

// reader decodes with bounds checks; the first error sticks.
type reader struct {
	b   []byte
	p   int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = unsupported(format, args...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.p >= len(r.b) {
		r.fail("unexpected end at offset %d", r.p)
		return 0
	}
	c := r.b[r.p]
	r.p++
	return c
}

// leb reads an unsigned LEB128 of at most maxBytes bytes.
func (r *reader) leb(maxBytes int) uint64 {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("LEB128 longer than %d bytes at offset %d", maxBytes, r.p)
	return 0
}

func (r *reader) u32() uint32 {
	v := r.leb(5)
	if v > 0xffffffff {
		r.fail("u32 out of range at offset %d", r.p)
	}
	return uint32(v)
}

func (r *reader) skip(n int) {
	if r.err != nil {
		return
	}
	if n < 0 || n > len(r.b)-r.p {
		r.fail("unexpected end at offset %d", r.p)
		return
	}
	r.p += n
}

func (r *reader) bytes(n uint32) []byte {
	start := r.p
	r.skip(int(n))
	if r.err != nil {
		return nil
	}
	return r.b[start:r.p]
}

func (r *reader) name() string {
	n := r.u32()
	b := r.bytes(n)
	if r.err == nil && !utf8.Valid(b) {
		r.fail("name is not UTF-8")
	}
	return string(b)
}

func appendU32(b []byte, v uint32) []byte {
	return binary.AppendUvarint(b, uint64(v))
}

// putPaddedU32 writes v as a LEB128 of exactly five bytes.
func putPaddedU32(b []byte, v uint32) {
	for i := 0; i < 4; i++ {
		b[i] = byte(v&0x7f) | 0x80
		v >>= 7
	}
	b[4] = byte(v)
}

type section struct {
	id   byte
	body []byte
}

// Instrument returns wasm with an interruption check at every function
// entry and loop header, and the flag global exported as ExportName (see
// the package documentation). wasm itself is not modified. The result is
// deterministic, so wazero's compilation cache keeps working.
func Instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, unsupported("not a wasm 1.0 binary module")
	}
	r := &reader{b: wasm, p: 8}
	var sections []section
	last := 0
	for r.p < len(wasm) && r.err == nil {
		id := r.byte()
		size := r.u32()
		body := r.bytes(size)
		if r.err != nil {
			break
		}
		if id == secStart {
			// The start function runs inside instantiation, before the
			// caller can find the flag: it could not be stopped.
			return nil, unsupported("module has a start function")
		}
		if id != secCustom {
			o := order(id)
			if o < 0 {
				return nil, unsupported("unknown section id %d", id)
			}
			if o <= last {
				return nil, unsupported("section %d out of order or repeated", id)
			}
			last = o
		}
		sections = append(sections, section{id, body})
	}
	if r.err != nil {
		return nil, r.err
	}

	// Index spaces, as the module has them.
	var types, funcs, globals, mems uint32
	for _, s := range sections {
		sr := &reader{b: s.body}
		switch s.id {
		case secType:
			types = sr.u32()
		case secImport:
			f, g, m, err := countImports(s.body)
			if err != nil {
				return nil, err
			}
			funcs, globals, mems = funcs+f, globals+g, mems+m
		case secFunction:
			funcs += sr.u32()
		case secMemory:
			mems += sr.u32()
		case secGlobal:
			globals += sr.u32()
		case secExport:
			// globals is complete here: imports and globals come first.
			if err := checkExports(s.body, globals); err != nil {
				return nil, err
			}
		}
		if sr.err != nil {
			return nil, sr.err
		}
	}
	flag, budget, slow := globals, globals+1, funcs

	// The check at every site: count the budget down, and when it hits
	// zero call $slow.
	check := []byte{opGlobalGet}
	check = appendU32(check, budget)
	check = append(check, 0x41, 0x01, 0x6b, opGlobalSet) // i32.const 1, i32.sub
	check = appendU32(check, budget)
	check = append(check, opGlobalGet)
	check = appendU32(check, budget)
	check = append(check, 0x45, 0x04, 0x40, 0x10) // i32.eqz, if, call
	check = appendU32(check, slow)
	check = append(check, 0x0b)

	// $slow: refill the budget, trap if the flag is raised, and return to
	// Go once through memory.grow 0 so that the scheduler and the garbage
	// collector can stop this goroutine.
	slowBody := []byte{0x00, 0x41, 0x80, 0x20, opGlobalSet} // no locals; i32.const 4096
	slowBody = appendU32(slowBody, budget)
	slowBody = append(slowBody, opGlobalGet)
	slowBody = appendU32(slowBody, flag)
	slowBody = append(slowBody, 0x04, 0x40, 0x00, 0x0b) // if unreachable end
	slowBody = append(slowBody, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x0b)
	slowEntry := appendU32(nil, uint32(len(slowBody)))
	slowEntry = append(slowEntry, slowBody...)

	export := appendU32(nil, uint32(len(ExportName)))
	export = append(export, ExportName...)
	export = append(export, kindGlobal)
	export = appendU32(export, flag)

	// What each section gains; a section the module lacks is created.
	add := map[byte][][]byte{
		secType:     {{0x60, 0x00, 0x00}},
		secFunction: {appendU32(nil, types)},
		secGlobal: {
			{valI32, 1, 0x41, 0x00, 0x0b},       // flag: mut i32 = 0
			{valI32, 1, 0x41, 0x80, 0x20, 0x0b}, // budget: mut i32 = 4096
		},
		secExport: {export},
		secCode:   {slowEntry},
	}
	if mems == 0 {
		add[secMemory] = [][]byte{{0x01, 0x00, 0x00}} // min 0, max 0: memory.grow 0 only
	}

	out := make([]byte, 0, len(wasm)+len(wasm)/8+256)
	out = append(out, wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	// pending creates the sections the module lacks, before the first
	// section that must follow them.
	pending := func(before int) {
		for _, id := range []byte{secType, secFunction, secMemory, secGlobal, secExport, secCode} {
			if entries, ok := add[id]; ok && order(id) < before {
				emit(id, appendEntries([]byte{0}, entries))
				delete(add, id)
			}
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			pending(order(s.id))
		}
		switch s.id {
		case secCustom:
			sr := &reader{b: s.body}
			if name := sr.name(); sr.err == nil && isDebugSection(name) {
				continue
			}
			emit(s.id, s.body)
		case secCode:
			body, err := rewriteCode(s.body, flag, check, slowEntry)
			if err != nil {
				return nil, err
			}
			delete(add, secCode)
			emit(s.id, body)
		default:
			if entries, ok := add[s.id]; ok {
				emit(s.id, appendEntries(s.body, entries))
				delete(add, s.id)
				continue
			}
			emit(s.id, s.body)
		}
	}
	pending(1 << 30)
	return out, nil
}

// appendEntries returns a vector section body with entries appended.
func appendEntries(body []byte, entries [][]byte) []byte {
	r := &reader{b: body}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(body)+64), n+uint32(len(entries)))
	out = append(out, body[r.p:]...)
	for _, e := range entries {
		out = append(out, e...)
	}
	return out
}

// countImports counts the function, global and memory imports.
func countImports(body []byte) (funcs, globals, mems uint32, err error) {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0: // func
			r.u32()
			funcs++
		case 1: // table
			r.byte()
			limits(r)
		case 2: // memory
			limits(r)
			mems++
		case kindGlobal:
			r.byte()
			r.byte()
			globals++
		default:
			r.fail("import kind %d", kind)
		}
	}
	if r.err == nil && r.p != len(r.b) {
		r.fail("import section has %d trailing bytes", len(r.b)-r.p)
	}
	return funcs, globals, mems, r.err
}

func limits(r *reader) {
	switch flags := r.byte(); flags {
	case 0:
		r.u32()
	case 1, 3: // max; shared
		r.u32()
		r.u32()
	default:
		r.fail("limits flags %#x", flags)
	}
}

// checkExports refuses a module that already uses the flag's export name
// or refers to the flag's index (invalid before the rewrite, so nothing
// a valid module does).
func checkExports(body []byte, globals uint32) error {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if r.name() == ExportName {
			r.fail("module already exports %q", ExportName)
		}
		kind := r.byte()
		if idx := r.u32(); kind == kindGlobal && idx >= globals {
			r.fail("export of global %d, which does not exist", idx)
		}
	}
	if r.err == nil && r.p != len(r.b) {
		r.fail("export section has %d trailing bytes", len(r.b)-r.p)
	}
	return r.err
}

// rewriteCode inserts check at the start of every function body and after
// every loop's block type. Big code sections are split between up to
// GOMAXPROCS goroutines by byte size: a Go guest's ~2 MB of code is
// otherwise ~9 ms of start-up.
func rewriteCode(body []byte, flag uint32, check, extra []byte) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if uint64(n) > uint64(len(body)) {
		return nil, unsupported("code section claims %d functions in %d bytes", n, len(body))
	}
	funcs := make([][]byte, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		funcs = append(funcs, r.bytes(r.u32()))
	}
	if r.err == nil && r.p != len(r.b) {
		r.fail("code section has %d trailing bytes", len(r.b)-r.p)
	}
	if r.err != nil {
		return nil, r.err
	}
	workers := runtime.GOMAXPROCS(0)
	if workers > 4 {
		workers = 4
	}
	if len(body) < 256<<10 || workers < 2 {
		workers = 1
	}
	type part struct {
		out []byte
		err error
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	first, share := 0, len(body)/workers
	for w := 0; w < workers; w++ {
		end := first
		size := 0
		for end < len(funcs) && (size < share || w == workers-1) {
			size += len(funcs[end])
			end++
		}
		wg.Add(1)
		go func(w, first, end, size int) {
			defer wg.Done()
			out := make([]byte, 0, size+size/8+(end-first)*(len(check)+5))
			for i := first; i < end; i++ {
				at := len(out)
				// The body goes in place after a 5-byte (padded, valid)
				// LEB128 size that is patched afterwards.
				out = append(out, 0x80, 0x80, 0x80, 0x80, 0x00)
				var err error
				if out, err = rewriteFunc(out, funcs[i], flag, check); err != nil {
					parts[w].err = fmt.Errorf("function %d: %w", i, err)
					return
				}
				putPaddedU32(out[at:at+5], uint32(len(out)-at-5))
			}
			parts[w].out = out
		}(w, first, end, size)
		first = end
	}
	wg.Wait()
	total := 5
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		total += len(p.out)
	}
	out := appendU32(make([]byte, 0, total+len(extra)), n+1)
	for _, p := range parts {
		out = append(out, p.out...)
	}
	return append(out, extra...), nil
}
