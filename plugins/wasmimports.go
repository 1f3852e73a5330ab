package plugins

import (
	"errors"
	"fmt"
)

// wasmImport is one entry of a module's import section.
type wasmImport struct {
	module, name string
	kind         byte // 0 function, 1 table, 2 memory, 3 global, 4 tag
}

const (
	wasmImportSection = 2
	maxWasmImports    = 100_000 // wazero's own limit on a section's entries
)

var errBadWasm = errors.New("not a valid wasm module")

// wasmImports lists the imports of a wasm binary. It reads only the
// section headers and the import section; everything else is the
// compiler's to validate.
func wasmImports(b []byte) ([]wasmImport, error) {
	var out []wasmImport
	err := walkImports(b, func(imp wasmImport, _, _ int) error {
		out = append(out, imp)
		return nil
	})
	return out, err
}

// redirectImports returns a copy of b in which every function import
// module.name whose name is in names is imported from newModule instead.
// Nothing else changes: indices, types and every other section stay as
// they are, only the import section is re-encoded.
func redirectImports(b []byte, module string, names map[string]bool, newModule string) ([]byte, error) {
	type span struct{ start, end int } // byte range of a module name string, length included
	var (
		spans        []span
		secStart     int // the section's id byte
		secBody      int // the section's first content byte
		secEnd       int
		foundSection bool
	)
	err := walkSections(b, func(id byte, start, body, end int) error {
		if id != wasmImportSection {
			return nil
		}
		foundSection = true
		secStart, secBody, secEnd = start, body, end
		return readImports(b[body:end], func(imp wasmImport, modStart, modEnd int) error {
			if imp.kind == 0 && imp.module == module && names[imp.name] {
				spans = append(spans, span{body + modStart, body + modEnd})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if !foundSection || len(spans) == 0 {
		return b, nil
	}
	var content []byte
	at := secBody
	for _, s := range spans {
		content = append(content, b[at:s.start]...)
		content = appendULEB(content, uint64(len(newModule)))
		content = append(content, newModule...)
		at = s.end
	}
	content = append(content, b[at:secEnd]...)
	out := make([]byte, 0, len(b)+len(spans)*len(newModule)+8)
	out = append(out, b[:secStart]...)
	out = append(out, wasmImportSection)
	out = appendULEB(out, uint64(len(content)))
	out = append(out, content...)
	out = append(out, b[secEnd:]...)
	return out, nil
}

// walkImports calls f for each import with the byte range of its module
// name (its length prefix included) relative to the section content.
func walkImports(b []byte, f func(imp wasmImport, modStart, modEnd int) error) error {
	return walkSections(b, func(id byte, _, body, end int) error {
		if id != wasmImportSection {
			return nil
		}
		return readImports(b[body:end], f)
	})
}

// walkSections calls f with each section's id, the offset of its id byte,
// of its content and of its end.
func walkSections(b []byte, f func(id byte, start, body, end int) error) error {
	if len(b) < 8 || string(b[:4]) != "\x00asm" || string(b[4:8]) != "\x01\x00\x00\x00" {
		return fmt.Errorf("%w: bad header", errBadWasm)
	}
	p := 8
	var seen [256]bool
	for p < len(b) {
		start := p
		id := b[p]
		p++
		if id != 0 && seen[id] {
			// Only custom sections repeat in a valid module.
			return fmt.Errorf("%w: section %d repeated", errBadWasm, id)
		}
		seen[id] = true
		n, q, ok := readULEB(b, p, 5)
		if !ok || n > uint64(len(b)-q) {
			return fmt.Errorf("%w: section at byte %d runs past the end", errBadWasm, start)
		}
		p = q + int(n)
		if err := f(id, start, q, p); err != nil {
			return err
		}
	}
	return nil
}

// readImports parses an import section's content.
func readImports(s []byte, f func(imp wasmImport, modStart, modEnd int) error) error {
	bad := func(what string) error { return fmt.Errorf("%w: import section: %s", errBadWasm, what) }
	count, p, ok := readULEB(s, 0, 5)
	if !ok || count > maxWasmImports {
		return bad("bad count")
	}
	name := func() (string, bool) {
		n, q, ok := readULEB(s, p, 5)
		if !ok || n > uint64(len(s)-q) {
			return "", false
		}
		p = q + int(n)
		return string(s[q:p]), true
	}
	limits := func() bool {
		if p >= len(s) {
			return false
		}
		flags := s[p]
		p++
		if flags > 7 {
			return false
		}
		var ok bool
		if _, p, ok = readULEB(s, p, 10); !ok {
			return false
		}
		if flags&1 != 0 {
			if _, p, ok = readULEB(s, p, 10); !ok {
				return false
			}
		}
		return true
	}
	for i := uint64(0); i < count; i++ {
		modStart := p
		mod, ok := name()
		if !ok {
			return bad("bad module name")
		}
		modEnd := p
		field, ok := name()
		if !ok || p >= len(s) {
			return bad("bad import name")
		}
		kind := s[p]
		p++
		switch kind {
		case 0: // function: type index
			_, p, ok = readULEB(s, p, 5)
		case 1: // table: reference type, limits
			ok = p < len(s)
			p++
			ok = ok && limits()
		case 2: // memory: limits
			ok = limits()
		case 3: // global: value type, mutability
			ok = p+2 <= len(s)
			p += 2
		case 4: // tag: attribute, type index
			ok = p < len(s)
			p++
			if ok {
				_, p, ok = readULEB(s, p, 5)
			}
		default:
			ok = false
		}
		if !ok || p > len(s) {
			return bad(fmt.Sprintf("bad descriptor of %s.%s", mod, field))
		}
		if err := f(wasmImport{mod, field, kind}, modStart, modEnd); err != nil {
			return err
		}
	}
	if p != len(s) {
		return bad("trailing bytes")
	}
	return nil
}

// readULEB reads an unsigned LEB128 of at most maxBytes bytes at b[p:].
func readULEB(b []byte, p, maxBytes int) (uint64, int, bool) {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		if p >= len(b) {
			return 0, p, false
		}
		c := b[p]
		p++
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, p, true
		}
	}
	return 0, p, false
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

const wasmExportSection = 7

// renameExports returns a copy of b in which each export named a key of
// names is exported under the value instead (kinds and indices unchanged;
// the new names must not collide with existing ones). b itself is returned
// when nothing is renamed.
func renameExports(b []byte, names map[string]string) ([]byte, error) {
	var out []byte
	err := walkSections(b, func(id byte, start, body, end int) error {
		if id != wasmExportSection || out != nil {
			return nil
		}
		s := b[body:end]
		bad := func(what string) error { return fmt.Errorf("%w: export section: %s", errBadWasm, what) }
		count, p, ok := readULEB(s, 0, 5)
		if !ok || count > maxWasmImports {
			return bad("bad count")
		}
		content := appendULEB(nil, count)
		seen := map[string]bool{}
		renamed := false
		for i := uint64(0); i < count; i++ {
			n, q, ok := readULEB(s, p, 5)
			if !ok || n > uint64(len(s)-q) {
				return bad("bad name")
			}
			name := string(s[q : q+int(n)])
			p = q + int(n)
			if p >= len(s) {
				return bad("truncated")
			}
			kind := s[p]
			var r int
			if _, r, ok = readULEB(s, p+1, 5); !ok {
				return bad("bad index")
			}
			if nn, ok := names[name]; ok {
				name, renamed = nn, true
			}
			if seen[name] {
				return bad(fmt.Sprintf("duplicate export %q", name))
			}
			seen[name] = true
			content = appendULEB(content, uint64(len(name)))
			content = append(content, name...)
			content = append(content, kind)
			content = append(content, s[p+1:r]...)
			p = r
		}
		if p != len(s) {
			return bad("trailing bytes")
		}
		if !renamed {
			return nil
		}
		out = make([]byte, 0, len(b)+64)
		out = append(out, b[:start]...)
		out = append(out, wasmExportSection)
		out = appendULEB(out, uint64(len(content)))
		out = append(out, content...)
		out = append(out, b[end:]...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return b, nil
	}
	return out, nil
}

// wasmFuncExports lists the names of a module's function exports.
func wasmFuncExports(b []byte) (map[string]bool, error) {
	out := map[string]bool{}
	err := walkSections(b, func(id byte, _, body, end int) error {
		if id != wasmExportSection {
			return nil
		}
		s := b[body:end]
		bad := fmt.Errorf("%w: export section", errBadWasm)
		count, p, ok := readULEB(s, 0, 5)
		if !ok || count > maxWasmImports {
			return bad
		}
		for i := uint64(0); i < count; i++ {
			n, q, ok := readULEB(s, p, 5)
			if !ok || n > uint64(len(s)-q) || q+int(n) >= len(s) {
				return bad
			}
			name, kind := string(s[q:q+int(n)]), s[q+int(n)]
			if _, p, ok = readULEB(s, q+int(n)+1, 5); !ok {
				return bad
			}
			if kind == 0 {
				out[name] = true
			}
		}
		return nil
	})
	return out, err
}
