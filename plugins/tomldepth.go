package plugins

import (
	"fmt"
	"math"
)

// MaxManifestDepth bounds how deeply a manifest may nest tables, arrays
// and dotted keys (docs/manifest.md, "Limits"). The TOML decoder's memory
// and time grow much faster than the input with nesting (a 70 KB manifest
// of nested inline tables took gigabytes), so deeper manifests are refused
// by tomlDepth before they reach it. Real manifests nest three or four
// levels.
const MaxManifestDepth = 32

// maxManifestWork bounds the decoder's work on a manifest that is not too
// deep: the sum, over every key (each component of a dotted key), table
// header component and array, of the square of its depth. The decoder's
// cost grows about so (1 MiB of keys 31 levels deep, 150 million units,
// took it 7 s and 1.2 GB); this bound keeps it near a tenth of a second,
// and leaves room for a hundred thousand keys three levels deep.
const maxManifestWork = 4 << 20

// tomlDepth scans TOML source in one linear pass and returns the deepest
// nesting it saw and the first line where nesting exceeds limit (0: none;
// the scan stops there). Nesting is the depth of the decoded document,
// counting every level a key or value creates: each component of a table
// header ([a.b] is 2, [[a.b]] 3 with its array), each component of a
// dotted key (a.b.c = 1 is 3, added to the header's), and each array.
// Strings and comments are skipped. It does not validate: on malformed
// input it returns some answer, and the decoder reports the syntax error.
func tomlDepth(data []byte, limit int) (depth, line int) {
	depth, _, line = tomlScan(data, limit, math.MaxInt)
	return depth, line
}

// tomlScan is tomlDepth that also adds up the work the decoder will do
// (see maxManifestWork) and stops at the first line where it passes
// maxWork.
func tomlScan(data []byte, limit, maxWork int) (depth, work, line int) {
	type open struct {
		table bool // an inline table (keys inside), else an array
		cost  int  // levels it adds: 1, plus its key's components
	}
	var (
		stack    []open
		total    int                 // sum of stack costs
		section  int                 // components of the current [table] header
		expect   bool                // a key may start here
		parts    int                 // components of the key being read
		inKey    bool                // reading a key (before '=')
		valParts int                 // components of the key whose value is being read
		arrays   = map[string]bool{} // [[headers]] seen, normalized
	)
	ln := 1
	expect = true
	deep := func(d int) bool {
		depth = max(depth, d)
		return d > limit || work > maxWork
	}
	// squares adds the squares of the depths from+1 ... to.
	squares := func(from, to int) {
		for k := from + 1; k <= to && work <= maxWork; k++ {
			work += k * k
		}
	}
	i := 0
	for i < len(data) {
		c := data[i]
		switch {
		case c == '\n':
			ln++
			i++
			if len(stack) == 0 {
				expect, inKey, parts, valParts = true, false, 0, 0
			}
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case c == '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			continue
		case c == '"' || c == '\'':
			i, ln = skipString(data, i, ln)
			if expect && !inKey {
				inKey, parts = true, 1
			}
			continue
		}
		if expect && !inKey && len(stack) == 0 && c == '[' {
			// A table header: [a.b] or [[a.b]], on one line.
			var d int
			i, d = header(data, i, ln, arrays)
			section = d
			squares(0, min(section, limit+1))
			if deep(section) {
				return depth, work, ln
			}
			expect = false
			continue
		}
		if expect && (inKey || isBareKey(c)) {
			if !inKey {
				inKey, parts = true, 1
			}
			switch {
			case c == '.':
				parts++
			case c == '=':
				d := total + parts
				if len(stack) == 0 {
					d += section
				}
				squares(d-parts, min(d, limit+1))
				if deep(d) {
					return depth, work, ln
				}
				expect, inKey, valParts = false, false, parts
			}
			i++
			continue
		}
		switch c {
		case '{', '[':
			// The key that leads to it (a.b = {...} is two levels, as
			// are a.b = [...] and a = [[...]]); a table inside an array
			// is the array's element, counted with the array.
			cost := valParts
			if c == '[' {
				cost++
			}
			if len(stack) == 0 {
				cost += section
			}
			stack = append(stack, open{table: c == '{', cost: cost})
			total += cost
			if c == '[' {
				work += total * total
			}
			if deep(total) {
				return depth, work, ln
			}
			valParts = 0
			expect = c == '{'
			inKey, parts = false, 0
		case '}', ']':
			if len(stack) > 0 {
				total -= stack[len(stack)-1].cost
				stack = stack[:len(stack)-1]
			}
			expect, valParts = false, 0
		case ',':
			expect = len(stack) > 0 && stack[len(stack)-1].table
			inKey, parts, valParts = false, 0, 0
		}
		i++
	}
	return depth, work, 0
}

// header reads the table header at data[i] ('[') and returns the index
// after it and its depth: its components, plus one for each prefix of it
// (itself included) that names an array of tables, because [a.b] after
// [[a]] is inside a's last element. A [[header]] is recorded in arrays.
// Keys are normalized by dropping quotes and spaces around components,
// without unescaping.
func header(data []byte, i, ln int, arrays map[string]bool) (int, int) {
	j := i + 1
	isArray := j < len(data) && data[j] == '['
	if isArray {
		j++
	}
	var parts []string
	var cur []byte
	for j < len(data) && data[j] != ']' && data[j] != '\n' {
		switch c := data[j]; c {
		case '"', '\'':
			k, _ := skipString(data, j, ln)
			s := data[j+1 : k]
			if len(s) > 0 && s[len(s)-1] == c {
				s = s[:len(s)-1]
			}
			cur = append(cur, s...)
			j = k
			continue
		case '.':
			parts = append(parts, string(cur))
			cur = cur[:0]
		case ' ', '\t':
		default:
			cur = append(cur, c)
		}
		j++
	}
	parts = append(parts, string(cur))
	for j < len(data) && data[j] == ']' {
		j++
	}
	d := len(parts)
	key := ""
	for n, p := range parts {
		if n > MaxManifestDepth {
			break // deep enough to be refused anyway
		}
		if n > 0 {
			key += "."
		}
		key += p
		if arrays[key] || isArray && n == len(parts)-1 {
			d++
		}
	}
	if isArray {
		arrays[key] = true
	}
	return j, d
}

// isBareKey reports whether c can appear in a key: bare-key characters,
// the dot between components, and '=' which ends it.
func isBareKey(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == '='
}

// skipString returns the index after the string starting at i (basic or
// literal, single- or multi-line) and the line number there. An
// unterminated string runs to the end of its line (single-line) or of the
// data (multi-line).
func skipString(data []byte, i, ln int) (int, int) {
	q := data[i]
	if i+2 < len(data) && data[i+1] == q && data[i+2] == q {
		i += 3
		for i < len(data) {
			switch {
			case data[i] == '\n':
				ln++
			case q == '"' && data[i] == '\\':
				i++
				if i < len(data) && data[i] == '\n' {
					ln++
				}
			case data[i] == q && i+2 < len(data) && data[i+1] == q && data[i+2] == q:
				i += 3
				// Up to two more quotes belong to the string.
				for k := 0; k < 2 && i < len(data) && data[i] == q; k++ {
					i++
				}
				return i, ln
			}
			i++
		}
		return i, ln
	}
	i++
	for i < len(data) && data[i] != '\n' {
		switch {
		case q == '"' && data[i] == '\\':
			i++
		case data[i] == q:
			return i + 1, ln
		}
		i++
	}
	return i, ln
}

// nestingProblem checks data with tomlScan and returns the problem, if
// any.
func nestingProblem(file string, data []byte) (Problem, bool) {
	depth, _, line := tomlScan(data, MaxManifestDepth, maxManifestWork)
	switch {
	case line == 0:
		return Problem{}, false
	case depth > MaxManifestDepth:
		return Problem{File: file, Line: line, Msg: fmt.Sprintf(
			"nested deeper than %d levels (tables, arrays, inline tables and dotted keys count); refused before decoding", MaxManifestDepth)}, true
	}
	return Problem{File: file, Line: line, Msg: fmt.Sprintf(
		"too much nesting in all: the sum over keys and arrays of the square of their depth passes %d here; refused before decoding (flatten the manifest)", maxManifestWork)}, true
}
