package policy

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// This file is the JSON wire codec shared by the host and by plugins. It is
// hand-written instead of using encoding/json because inside a wasm plugin
// encoding/json costs ~30 µs per request, and far more when the host runs
// plugins with close-on-context-done (every taken branch is a termination
// check). The encoder writes members in one fixed order; the decoder has a
// fast path for exactly that order and a general path for any valid JSON.

// MaxReasonLen caps the length in bytes of a verdict reason accepted by
// ParseVerdictJSON. Longer reasons are truncated (on a UTF-8 boundary): a
// reason ends up in audit logs and on the operator's terminal, and a plugin
// must not be able to flood them.
const MaxReasonLen = 1024

// maxDepth is the deepest nesting of arrays/objects accepted in members the
// decoder skips. It equals encoding/json's limit so that both accept the same
// documents.
const maxDepth = 10000

// WireError is the error returned by the parsers for malformed input. Offset
// is the byte offset in the input where the problem was found.
type WireError struct {
	Offset int
	Msg    string
}

func (e *WireError) Error() string {
	return "policy wire: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

func wireErr(off int, msg string) error { return &WireError{Offset: off, Msg: msg} }

// strClass classifies bytes inside JSON strings: 0 = copied verbatim, 1 =
// needs attention (quote, backslash, control character, non-ASCII).
var strClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			t[c] = 1
		}
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// with encoding/json, because JSON text must be UTF-8. Runs of plain bytes
// are found 8 bytes per step and copied in one piece (in a plugin each loop
// iteration is a termination check).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if len(s)-i >= 8 {
			m := stopMask(word(s, i))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		c := s[i]
		if strClass[c] == 0 {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendRequestJSON appends the JSON encoding of r to dst. Members come in
// the fixed order op, proto, addr, port, embedded_ipv4, names, name, local, guest, labels
// (keys sorted), time_ms; every member but op is omitted when empty. This is
// the form ParseRequestJSON decodes fastest.
func AppendRequestJSON(dst []byte, r *Request) []byte {
	dst = append(dst, `{"op":`...)
	dst = appendString(dst, string(r.Op))
	if r.Proto != "" {
		dst = append(dst, `,"proto":`...)
		dst = appendString(dst, r.Proto)
	}
	if r.Addr.IsValid() {
		dst = append(dst, `,"addr":`...)
		if r.Addr.Zone() != "" {
			// A zone is arbitrary text and may need escaping.
			dst = appendString(dst, r.Addr.String())
		} else {
			dst = append(dst, '"')
			dst = r.Addr.AppendTo(dst)
			dst = append(dst, '"')
		}
	}
	if r.Port != 0 {
		dst = append(dst, `,"port":`...)
		dst = strconv.AppendUint(dst, uint64(r.Port), 10)
	}
	if len(r.EmbeddedIPv4) > 0 {
		dst = append(dst, `,"embedded_ipv4":[`...)
		for i, a := range r.EmbeddedIPv4 {
			if i > 0 {
				dst = append(dst, ',')
			}
			// Only IPv4 is sent; anything else would not parse back.
			dst = append(dst, '"')
			if a.Is4() {
				dst = a.AppendTo(dst)
			}
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	if len(r.Names) > 0 {
		dst = append(dst, `,"names":[`...)
		for i, n := range r.Names {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, n)
		}
		dst = append(dst, ']')
	}
	if r.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, r.Name)
	}
	if r.Local.IsValid() {
		dst = append(dst, `,"local":`...)
		if r.Local.Addr().Zone() != "" {
			dst = appendString(dst, r.Local.String())
		} else {
			dst = append(dst, '"')
			dst = r.Local.AppendTo(dst)
			dst = append(dst, '"')
		}
	}
	if r.Guest != "" {
		dst = append(dst, `,"guest":`...)
		dst = appendString(dst, r.Guest)
	}
	if len(r.Labels) > 0 {
		dst = append(dst, `,"labels":{`...)
		var arr [8]string
		keys := arr[:0]
		for k := range r.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendString(dst, r.Labels[k])
		}
		dst = append(dst, '}')
	}
	if r.TimeMs != 0 {
		dst = append(dst, `,"time_ms":`...)
		dst = strconv.AppendInt(dst, r.TimeMs, 10)
	}
	return append(dst, '}')
}

// AppendVerdictJSON appends the JSON encoding of v to dst:
// {"verdict":...,"reason":...,"cache_ttl_ms":...}, reason and cache_ttl_ms
// omitted when empty. The action is written as is; an action other than
// allow/deny/abstain is rejected by ParseVerdictJSON (and so denies).
func AppendVerdictJSON(dst []byte, v Verdict) []byte {
	// The three actions are appended as literals, and plain reasons in one
	// piece: this runs on every decision inside a plugin, where a byte loop
	// costs a termination check per byte.
	switch {
	case strEqual(string(v.Verdict), string(ActionAllow)):
		dst = append(dst, `{"verdict":"allow"`...)
	case strEqual(string(v.Verdict), string(ActionDeny)):
		dst = append(dst, `{"verdict":"deny"`...)
	case strEqual(string(v.Verdict), string(ActionAbstain)):
		dst = append(dst, `{"verdict":"abstain"`...)
	default:
		dst = append(dst, `{"verdict":`...)
		dst = appendString(dst, string(v.Verdict))
	}
	if v.Reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = appendReason(dst, v.Reason)
	}
	if v.CacheTTLMs != 0 {
		dst = append(dst, `,"cache_ttl_ms":`...)
		dst = appendTTL(dst, v.CacheTTLMs)
	}
	return append(dst, '}')
}

// reasonCache holds the JSON encoding of the last reason. Plugins return
// the same reason strings again and again (one per rule, built once), so a
// comparison of the string pointer and length (the cache keeps the string
// alive, so no other string can take its place) skips the encoding. Only a
// plugin (isWasm), where calls never overlap, fills it.
var reasonCache struct {
	reason string
	json   []byte
}

func appendReason(dst []byte, reason string) []byte {
	if c := &reasonCache; len(c.reason) == len(reason) && unsafe.StringData(c.reason) == unsafe.StringData(reason) {
		return append(dst, c.json...)
	}
	start := len(dst)
	if plainString(reason) {
		dst = append(append(append(dst, '"'), reason...), '"')
	} else {
		dst = appendString(dst, reason)
	}
	if isWasm {
		reasonCache.reason = reason
		reasonCache.json = append(reasonCache.json[:0], dst[start:]...)
	}
	return dst
}

// plainString reports whether s needs no escaping in JSON (no quote,
// backslash, control character or non-ASCII byte), 8 bytes per step.
func plainString(s string) bool {
	n := len(s)
	if n < 8 {
		return n == 0 || !strNeedsEscape(s)
	}
	for i := 0; i < n-8; i += 8 {
		if stopMask(word(s, i)) != 0 {
			return false
		}
	}
	return stopMask(word(s, n-8)) == 0
}

// strNeedsEscape is the byte loop of plainString for short strings.
func strNeedsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if strClass[s[i]] != 0 {
			return true
		}
	}
	return false
}

// ttlCache holds the decimal text of the last cache TTL: a plugin returns
// the same TTL on nearly every verdict, and strconv's digit loop costs a
// termination check per digit inside wasm. Only a plugin (isWasm), where
// calls never overlap, fills it; natively it stays empty.
var ttlCache struct {
	v    int64
	text string
}

func appendTTL(dst []byte, v int64) []byte {
	if c := ttlCache; c.text != "" && c.v == v {
		return append(dst, c.text...)
	}
	text := strconv.FormatInt(v, 10)
	if isWasm {
		ttlCache.v, ttlCache.text = v, text
	}
	return append(dst, text...)
}

// ParseRequestJSON decodes one JSON Request from data into *r, replacing its
// previous contents. Any valid JSON object is accepted: members in any order,
// whitespace, escapes, unknown members (skipped). Known members must have the
// right JSON type (null leaves a member empty), appear at most once and match
// case-sensitively; strings must be valid UTF-8; addr and local use
// net/netip syntax. Input produced by AppendRequestJSON takes a fast path.
// ParseRequestJSON is safe for concurrent use.
func ParseRequestJSON(data []byte, r *Request) error {
	return parseRequest(data, r, nil)
}

func parseRequest(data []byte, r *Request, in *interner) error {
	*r = Request{}
	if in != nil {
		in.namesCanonical = false
	}
	if parseRequestFast(data, r, in) {
		return nil
	}
	*r = Request{}
	if in != nil {
		// The general path's names are its own, maybe not canonical.
		in.namesCanonical = false
	}
	p := parser{data: data}
	if err := p.request(r); err != nil {
		*r = Request{}
		return err
	}
	return nil
}

// ParseVerdictJSON decodes a plugin's output strictly: it must be exactly one
// JSON object (surrounding whitespace allowed) with a "verdict" member that is
// "allow", "deny" or "abstain". "reason" must be a string, "cache_ttl_ms" a
// non-negative integer, either may be null, which means absent; other
// members are ignored, duplicates of known members are an error. The reason is truncated to MaxReasonLen bytes and
// control characters in it are replaced with U+FFFD so that a plugin cannot
// forge log lines or drive a terminal.
func ParseVerdictJSON(data []byte) (Verdict, error) {
	p := parser{data: data}
	v, err := p.verdict()
	if err != nil {
		return Verdict{}, err
	}
	return v, nil
}

// ---- fast path -----------------------------------------------------------

// fastBytes reads a string value that starts at data[i] (the opening
// quote) and contains only plain ASCII, without copying. It returns ok=false
// for anything else, leaving it to the general parser. It scans 8 bytes per
// step: in a plugin each loop iteration is a termination check for the host.
func fastBytes(data []byte, i int) (b []byte, next int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	j := i + 1
	// Strings of up to 15 bytes (ops, protos, addresses, guests) end in
	// the first two words: tested without a loop when the input is long
	// enough, the loop below handles the rest.
	if len(data)-j >= 16 {
		p := unsafe.Pointer(unsafe.SliceData(data))
		m0 := stopMask(*(*uint64)(unsafe.Add(p, j)))
		m1 := stopMask(*(*uint64)(unsafe.Add(p, j+8)))
		if m0|m1 != 0 {
			// The lowest flagged byte of the first flagged word.
			k := bits.TrailingZeros64(m0) >> 3
			if m0 == 0 {
				k = 8 + bits.TrailingZeros64(m1)>>3
			}
			j += k
			if data[j] != '"' {
				return nil, 0, false
			}
			return data[i+1 : j], j + 1, true
		}
		j += 16
	}
	for {
		if len(data)-j < 8 {
			for j < len(data) && strClass[data[j]] == 0 {
				j++
			}
			break
		}
		if m := stopMask(binary.LittleEndian.Uint64(data[j:])); m != 0 {
			j += bits.TrailingZeros64(m) >> 3
			break
		}
		j += 8
	}
	if j >= len(data) || data[j] != '"' {
		return nil, 0, false
	}
	return data[i+1 : j], j + 1, true
}

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// stopMask flags (high bit of the byte) the bytes of x, read little-endian,
// that end a plain ASCII JSON string: '"', '\\', control characters and
// non-ASCII. Only the lowest flagged byte is exact (the classic "has zero
// byte" trick can flag bytes above a true hit), which is the one used.
func stopMask(x uint64) uint64 {
	q := x ^ (lsbs * '"')
	bs := x ^ (lsbs * '\\')
	return ((q-lsbs)&^q | (bs-lsbs)&^bs | (x-lsbs*0x20)&^x | x) & msbs
}

// key is a member prefix such as `,"proto":` (8 to 16 bytes), compared as
// two overlapping 8-byte words instead of byte by byte.
type key struct {
	n      int
	w0, w1 uint64
}

func mkKey(s string) key {
	return key{n: len(s), w0: binary.LittleEndian.Uint64([]byte(s[:8])), w1: binary.LittleEndian.Uint64([]byte(s[len(s)-8:]))}
}

var (
	keyProto  = mkKey(`,"proto":`)
	keyAddr   = mkKey(`,"addr":`)
	keyPort   = mkKey(`,"port":`)
	keyNames  = mkKey(`,"names":[`)
	keyEmbed  = mkKey(`,"embedded_ipv4":[`)
	keyName   = mkKey(`,"name":`)
	keyLocal  = mkKey(`,"local":`)
	keyGuest  = mkKey(`,"guest":`)
	keyLabels = mkKey(`,"labels":{`)
	keyTimeMs = mkKey(`,"time_ms":`)
)

// fastKey reports whether data[i:] starts with k (0 <= i <= len(data)).
// After the one length check it loads the two words without bounds checks,
// so that it inlines: a call costs a termination check in a plugin.
func fastKey(data []byte, i int, k *key) bool {
	if len(data)-i < k.n {
		return false
	}
	p := unsafe.Pointer(unsafe.SliceData(data))
	return *(*uint64)(unsafe.Add(p, i)) == k.w0 && *(*uint64)(unsafe.Add(p, i+k.n-8)) == k.w1
}

// digits8 reads the run of ASCII digits (at most 8) at the start of the
// 8 bytes at b[i:i+8], which may extend past len(b) up to cap(b). It works
// on the whole word at once: a byte loop costs a termination check per
// iteration inside a plugin. ok is false when fewer than 8 bytes are there.
func digits8(b []byte, i int) (v uint64, n int, ok bool) {
	if cap(b)-i < 8 {
		return 0, 0, false
	}
	x := binary.LittleEndian.Uint64(b[i : i+8 : cap(b)])
	// High bit set in each byte that is not '0'..'9': above '9' (adding
	// 0x46 reaches 0x80), below '0' (subtracting 0x30 from the byte with
	// its high bit forced clears it), or non-ASCII.
	nondigit := ((x + lsbs*0x46) | ^((x | msbs) - lsbs*0x30) | x) & msbs
	n = 8
	if nondigit != 0 {
		n = bits.TrailingZeros64(nondigit) >> 3
	}
	if n == 0 {
		return 0, 0, true
	}
	// Keep the n digit values in the top n bytes (first digit lowest), zeros
	// below acting as leading zeros, then combine pairs, quads, octets.
	d := (x - lsbs*0x30) << (64 - 8*n)
	d = d*10 + d>>8
	d = ((d&0x000000ff000000ff)*(100+1000000<<32) + (d>>16&0x000000ff000000ff)*(1+10000<<32)) >> 32
	return d, n, true
}

var pow10 = [...]uint64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// fastUint reads an unsigned decimal integer of up to 19 digits at
// data[i]. A leading zero must be the whole number, as JSON requires.
func fastUint(data []byte, i int) (v uint64, next int, ok bool) {
	data = data[:len(data):len(data)] // never read past the input
	j := i
	for k := 0; k < 3; k++ {
		d, n, ok := digits8(data, j)
		if !ok {
			// Less than a word left: finish byte by byte.
			for j < len(data) && data[j]-'0' < 10 && j-i < 20 {
				v = v*10 + uint64(data[j]-'0')
				j++
			}
			break
		}
		v = v*pow10[n] + d
		j += n
		if n < 8 {
			break
		}
	}
	if j == i || j > len(data) || j-i > 19 || (data[i] == '0' && j-i > 1) || (j < len(data) && data[j]-'0' < 10) {
		return 0, 0, false
	}
	return v, j, true
}

// fastIPv4 parses a dotted-quad IPv4 address without allocating; anything
// else (IPv6, leading zeros, out of range) is left to netip. The loop body
// has no branches: the checks are or-ed together and tested once.
func fastIPv4(b []byte) (netip.Addr, bool) {
	if len(b) < 7 || len(b) > 15 {
		return netip.Addr{}, false
	}
	var w [24]byte // zero padding ends the last octet
	copy(w[:], b)
	var ip [4]byte
	var p, bad uint64
	for k := 0; k < 4; k++ {
		x := binary.LittleEndian.Uint64(w[p&15:])
		n := digitCount(x)
		v := digitsVal(x, n)
		ip[k] = byte(v)
		// 1 to 3 digits, at most 255, no leading zero, then '.' (or, after
		// the last octet, the end).
		sep := byte(x >> (8 * (n & 7)))
		bad |= b2u(n-1 > 2) | b2u(v > 255) | b2u(n > 1)&b2u(byte(x) == '0') | b2u(k < 3)&b2u(sep != '.')
		p += n + 1
	}
	if bad != 0 || p-1 != uint64(len(b)) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

func fastAddr(b []byte) (netip.Addr, bool) {
	if a, ok := fastIPv4(b); ok {
		return a, true
	}
	a, err := netip.ParseAddr(string(b))
	return a, err == nil
}

// parseRequestFast decodes the member order AppendRequestJSON writes, or
// returns false and leaves the input to the general parser. It is written for
// wasm under termination checks (see ops.go): one function, members tested in
// order with two 8-byte comparisons each, numbers and addresses decoded a
// word at a time by branch-free helpers.
func parseRequestFast(data []byte, r *Request, in *interner) bool {
	// `{"op":"` is 7 bytes: compare them as one masked little-endian word.
	if len(data) < 8 || binary.LittleEndian.Uint64(data)&0x00ffffffffffffff != 0x00223a22706f227b {
		return false
	}
	b, i, ok := fastBytes(data, 6)
	if !ok {
		return false
	}
	r.Op = internOp(b)
	if fastKey(data, i, &keyProto) {
		if b, i, ok = fastBytes(data, i+9); !ok {
			return false
		}
		r.Proto = internProto(b)
	}
	if fastKey(data, i, &keyAddr) {
		if b, i, ok = fastBytes(data, i+8); !ok {
			return false
		}
		if r.Addr, ok = fastAddr(b); !ok {
			return false
		}
	}
	if fastKey(data, i, &keyPort) {
		w := padded(data, i+8)
		x := binary.LittleEndian.Uint64(w[:])
		k := digitCount(x)
		v := digitsVal(x, k)
		// 1 to 5 digits, no leading zero unless alone, at most 65535.
		if b2u(k-1 > 4)|b2u(k > 1)&b2u(w[0] == '0')|b2u(v > 65535) != 0 {
			return false
		}
		r.Port = uint16(v)
		i += 8 + int(k)
	}
	if fastKey(data, i, &keyEmbed) {
		// Rare (IPv6 addresses that embed IPv4): no need to be clever.
		i += 18
		for {
			if b, i, ok = fastBytes(data, i); !ok {
				return false
			}
			a, ok := fastIPv4(b)
			if !ok || len(r.EmbeddedIPv4) >= 2 {
				return false
			}
			r.EmbeddedIPv4 = append(r.EmbeddedIPv4, a)
			if i >= len(data) {
				return false
			}
			if data[i] == ']' {
				i++
				break
			}
			if data[i] != ',' {
				return false
			}
			i++
		}
	}
	if fastKey(data, i, &keyNames) {
		if i, ok = fastNames(data, i+10, r, in); !ok {
			return false
		}
	}
	if fastKey(data, i, &keyName) {
		if b, i, ok = fastBytes(data, i+8); !ok {
			return false
		}
		r.Name = in.str(b)
	}
	if fastKey(data, i, &keyLocal) {
		if b, i, ok = fastBytes(data, i+9); !ok {
			return false
		}
		ap, err := netip.ParseAddrPort(string(b))
		if err != nil {
			return false
		}
		r.Local = ap
	}
	if fastKey(data, i, &keyGuest) {
		if b, i, ok = fastBytes(data, i+9); !ok {
			return false
		}
		r.Guest = in.str(b)
	}
	if fastKey(data, i, &keyLabels) {
		if i, ok = fastLabels(data, i+11, r, in); !ok {
			return false
		}
	}
	if fastKey(data, i, &keyTimeMs) {
		w := padded(data, i+11)
		x0 := binary.LittleEndian.Uint64(w[0:])
		x1 := binary.LittleEndian.Uint64(w[8:])
		x2 := binary.LittleEndian.Uint64(w[16:])
		k0, k1, k2 := digitCount(x0), digitCount(x1), digitCount(x2)
		// Digits continue into the next word only when a word is full.
		k1 &= -(k0 >> 3)
		k2 &= -(k1 >> 3)
		k := k0 + k1 + k2
		v := (digitsVal(x0, k0)*pow10[k1]+digitsVal(x1, k1))*pow10[k2] + digitsVal(x2, k2)
		// 1 to 19 digits (19 fit in a uint64, not always in an int64),
		// no leading zero unless alone.
		if b2u(k-1 > 18)|b2u(k > 1)&b2u(w[0] == '0')|b2u(v > 1<<63-1) != 0 {
			return false
		}
		r.TimeMs = int64(v)
		i += 11 + int(k)
	}
	return i == len(data)-1 && data[i] == '}'
}

// b2u is 1 for true, 0 for false, without a branch (wasm select), so that
// validity checks can be or-ed together and tested once.
func b2u(b bool) uint64 {
	var u uint64
	if b {
		u = 1
	}
	return u
}

// padded returns up to 24 bytes of data from i, zero-padded: word reads
// from it never run past the input (zeros are not digits).
func padded(data []byte, i int) (w [24]byte) {
	if i <= len(data) {
		copy(w[:], data[i:])
	}
	return w
}

// digitCount returns how many of the bytes of x (little-endian) are ASCII
// digits before the first other byte (8 if all are). No branches.
func digitCount(x uint64) uint64 {
	// High bit set in each byte that is not '0'..'9': above '9' (adding
	// 0x46 reaches 0x80), below '0' (subtracting 0x30 from the byte with
	// its high bit forced clears it), or non-ASCII.
	nondigit := ((x + lsbs*0x46) | ^((x | msbs) - lsbs*0x30) | x) & msbs
	return uint64(bits.TrailingZeros64(nondigit)) >> 3
}

// digitsVal returns the value of the first k (0 to 8) digits of x. No
// branches (a shift by 64 yields 0 in Go; wasm gets a select).
func digitsVal(x, k uint64) uint64 {
	// Keep the k digit values in the top k bytes (first digit lowest), zeros
	// below acting as leading zeros, then combine pairs, quads, octets.
	d := (x - lsbs*0x30) << (64 - 8*k)
	d = d*10 + d>>8
	return ((d&0x000000ff000000ff)*(100+1000000<<32) + (d>>16&0x000000ff000000ff)*(1+10000<<32)) >> 32
}

// fastNames parses the elements of the names array from data[i] (after the
// '[') to the ']' and returns the offset after it. With an interner and a
// list seen before, it only validates and the caller swaps in the cached
// list.
func fastNames(data []byte, i int, r *Request, in *interner) (int, bool) {
	start := i - 1
	var names []string
	lookup := in != nil
	for {
		b, next, ok := fastBytes(data, i)
		if !ok || next >= len(data) {
			return 0, false
		}
		i = next
		if !lookup {
			names = append(names, string(b))
		}
		if data[i] == ']' {
			i++
			break
		}
		if data[i] != ',' {
			return 0, false
		}
		i++
	}
	if lookup {
		w0, w1 := words(data[start:i])
		e := in.namesSlot(data[start:i], w0, w1)
		if e.key.equal(data[start:i], w0, w1) {
			r.Names = e.val
			in.namesCanonical = e.canonical
			return i, true
		}
		// A miss: parse again, keeping the strings, and remember the list
		// under its JSON text.
		end, _ := fastNames(data, start+1, r, nil)
		// Check once whether the list is canonical (the host sends
		// canonical names), so that decide need not check it every time.
		e.canonical = true
		for _, n := range r.Names {
			e.canonical = e.canonical && CanonicalName(n) == n
		}
		e.key.set(data[start:i], w0, w1)
		e.val = r.Names
		in.namesCanonical = e.canonical
		return end, true
	}
	r.Names = names
	return i, true
}

// fastLabels is fastNames for the labels object.
func fastLabels(data []byte, i int, r *Request, in *interner) (int, bool) {
	start := i - 1
	lookup := in != nil
	var labels map[string]string
	if !lookup {
		labels = make(map[string]string)
	}
	for {
		k, next, ok := fastBytes(data, i)
		if !ok || next >= len(data) || data[next] != ':' {
			return 0, false
		}
		v, next, ok := fastBytes(data, next+1)
		if !ok || next >= len(data) {
			return 0, false
		}
		i = next
		if !lookup {
			labels[string(k)] = string(v)
		}
		if data[i] == '}' {
			i++
			break
		}
		if data[i] != ',' {
			return 0, false
		}
		i++
	}
	if lookup {
		w0, w1 := words(data[start:i])
		e := in.labelsSlot(data[start:i], w0, w1)
		if e.key.equal(data[start:i], w0, w1) {
			r.Labels = e.val
			return i, true
		}
		end, _ := fastLabels(data, start+1, r, nil)
		e.key.set(data[start:i], w0, w1)
		e.val = r.Labels
		return end, true
	}
	r.Labels = labels
	return i, true
}

// ---- general path --------------------------------------------------------

type parser struct {
	data []byte
	i    int
}

func (p *parser) ws() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (p *parser) peek() byte {
	p.ws()
	if p.i >= len(p.data) {
		return 0
	}
	return p.data[p.i]
}

func (p *parser) expect(c byte, what string) error {
	if p.peek() != c {
		return p.unexpected(what)
	}
	p.i++
	return nil
}

func (p *parser) unexpected(what string) error {
	if p.i >= len(p.data) {
		return wireErr(p.i, "unexpected end of input, want "+what)
	}
	return wireErr(p.i, "unexpected "+strconv.QuoteRune(rune(p.data[p.i]))+", want "+what)
}

// literal consumes "null", "true" or "false" if present.
func (p *parser) literal(lit string) bool {
	if len(p.data)-p.i >= len(lit) && string(p.data[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return true
	}
	return false
}

func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// str parses a JSON string at the current position (after whitespace).
// Escapes are decoded like encoding/json does (an unpaired surrogate becomes
// U+FFFD); raw bytes must be valid UTF-8.
func (p *parser) str() (string, error) {
	if p.peek() != '"' {
		return "", p.unexpected("string")
	}
	start := p.i + 1
	j := start
	for j < len(p.data) && strClass[p.data[j]] == 0 {
		j++
	}
	if j < len(p.data) && p.data[j] == '"' {
		p.i = j + 1
		return string(p.data[start:j]), nil
	}
	buf := append([]byte(nil), p.data[start:j]...)
	for {
		if j >= len(p.data) {
			return "", wireErr(j, "unterminated string")
		}
		c := p.data[j]
		switch {
		case c == '"':
			p.i = j + 1
			return string(buf), nil
		case c < 0x20:
			return "", wireErr(j, "control character in string")
		case c == '\\':
			if j+1 >= len(p.data) {
				return "", wireErr(j, "unterminated string")
			}
			e := p.data[j+1]
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r := hex4(p.data[j+2:])
				if r < 0 {
					return "", wireErr(j, "bad \\u escape")
				}
				j += 6
				if r >= 0xd800 && r < 0xe000 {
					// A surrogate: valid only as a high+low pair.
					if r < 0xdc00 && j+1 < len(p.data) && p.data[j] == '\\' && p.data[j+1] == 'u' {
						if r2 := hex4(p.data[j+2:]); r2 >= 0xdc00 && r2 < 0xe000 {
							buf = utf8.AppendRune(buf, 0x10000+(r-0xd800)<<10+(r2-0xdc00))
							j += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				return "", wireErr(j, "bad escape")
			}
			j += 2
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			j++
		default:
			r, size := utf8.DecodeRune(p.data[j:])
			if r == utf8.RuneError && size == 1 {
				return "", wireErr(j, "invalid UTF-8 in string")
			}
			buf = append(buf, p.data[j:j+size]...)
			j += size
		}
	}
}

// number scans a JSON number and returns its text.
func (p *parser) number() ([]byte, error) {
	p.ws()
	d := p.data
	start := p.i
	j := p.i
	if j < len(d) && d[j] == '-' {
		j++
	}
	switch {
	case j < len(d) && d[j] == '0':
		j++
	case j < len(d) && d[j] >= '1' && d[j] <= '9':
		for j < len(d) && d[j]-'0' < 10 {
			j++
		}
	default:
		return nil, p.unexpected("number")
	}
	if j < len(d) && d[j] == '.' {
		j++
		k := j
		for j < len(d) && d[j]-'0' < 10 {
			j++
		}
		if j == k {
			return nil, wireErr(j, "bad number")
		}
	}
	if j < len(d) && (d[j] == 'e' || d[j] == 'E') {
		j++
		if j < len(d) && (d[j] == '+' || d[j] == '-') {
			j++
		}
		k := j
		for j < len(d) && d[j]-'0' < 10 {
			j++
		}
		if j == k {
			return nil, wireErr(j, "bad number")
		}
	}
	p.i = j
	return d[start:j], nil
}

// skip consumes one JSON value of any type, checking that it is valid.
func (p *parser) skip(depth int) error {
	// Nesting is tracked on an explicit stack so that deep input cannot
	// exhaust the goroutine stack.
	var stack []byte
	for {
		// Here a value is expected.
		switch c := p.peek(); c {
		case '{', '[':
			if depth+len(stack)+1 > maxDepth {
				return wireErr(p.i, "nesting too deep")
			}
			p.i++
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			if p.peek() == closer {
				p.i++
				break
			}
			stack = append(stack, closer)
			if closer == '}' {
				if _, err := p.strBytes(); err != nil {
					return err
				}
				if err := p.expect(':', "':'"); err != nil {
					return err
				}
			}
			continue
		case '"':
			if _, err := p.strBytes(); err != nil {
				return err
			}
		case 't':
			if !p.literal("true") {
				return p.unexpected("value")
			}
		case 'f':
			if !p.literal("false") {
				return p.unexpected("value")
			}
		case 'n':
			if !p.literal("null") {
				return p.unexpected("value")
			}
		default:
			if _, err := p.number(); err != nil {
				return err
			}
		}
		// A value ended: close containers or move to the next element.
		for {
			if len(stack) == 0 {
				return nil
			}
			top := stack[len(stack)-1]
			c := p.peek()
			if c == top {
				p.i++
				stack = stack[:len(stack)-1]
				continue
			}
			if c != ',' {
				return p.unexpected("',' or '" + string(top) + "'")
			}
			p.i++
			if top == '}' {
				if _, err := p.strBytes(); err != nil {
					return err
				}
				if err := p.expect(':', "':'"); err != nil {
					return err
				}
			}
			break
		}
	}
}

// member advances to the next member of an object whose '{' has been
// consumed; n is the number of members read so far. It returns the key
// (aliasing the input when it has no escapes: compare it, do not keep it)
// and consumes the ':'; done is true at the closing '}'.
func (p *parser) member(n int) (key []byte, at int, done bool, err error) {
	c := p.peek()
	if n > 0 {
		switch c {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil, 0, true, nil
		default:
			return nil, 0, false, p.unexpected("',' or '}'")
		}
	} else if c == '}' {
		p.i++
		return nil, 0, true, nil
	}
	at = p.i
	if key, err = p.strBytes(); err != nil {
		return nil, 0, false, err
	}
	if err := p.expect(':', "':'"); err != nil {
		return nil, 0, false, err
	}
	return key, at, false, nil
}

// strBytes is str returning bytes, without copying when the string has no
// escapes and is plain ASCII.
func (p *parser) strBytes() ([]byte, error) {
	if p.peek() == '"' {
		start := p.i + 1
		j := start
		for j < len(p.data) && strClass[p.data[j]] == 0 {
			j++
		}
		if j < len(p.data) && p.data[j] == '"' {
			p.i = j + 1
			return p.data[start:j], nil
		}
	}
	s, err := p.str()
	return []byte(s), err
}

func (p *parser) end() error {
	if p.peek() != 0 || p.i != len(p.data) {
		return wireErr(p.i, "trailing data after JSON object")
	}
	return nil
}

// nullableStr reads a string or null (null → "").
func (p *parser) nullableStr() (string, error) {
	if p.peek() == 'n' && p.literal("null") {
		return "", nil
	}
	return p.str()
}

// internOp returns the constant for a known op, so that decoding one does
// not allocate. It compares 8-byte words: the first 8 bytes of the ten ops
// differ, and the last 8 confirm.
func internOp(b []byte) Op {
	if len(b) < 8 || len(b) > 11 {
		return Op(b)
	}
	var op Op
	var tail uint64
	switch binary.LittleEndian.Uint64(b) {
	case 0x6e6e6f632e706374: // tcp.conn
		op, tail = OpTCPConnect, 0x7463656e6e6f632e
	case 0x6b6f6f6c2e736e64: // dns.look
		op, tail = OpDNSLookup, 0x70756b6f6f6c2e73
	case 0x77736e612e736e64: // dns.answ
		op, tail = OpDNSAnswer, 0x726577736e612e73
	case 0x646e69622e706374: // tcp.bind
		op, tail = OpTCPBind, 0x646e69622e706374
	case 0x7473696c2e706374: // tcp.list
		op, tail = OpTCPListen, 0x6e657473696c2e70
	case 0x656363612e706374: // tcp.acce
		op, tail = OpTCPAccept, 0x7470656363612e70
	case 0x646e69622e706475: // udp.bind
		op, tail = OpUDPBind, 0x646e69622e706475
	case 0x6e6e6f632e706475: // udp.conn
		op, tail = OpUDPConnect, 0x7463656e6e6f632e
	case 0x646e65732e706475: // udp.send
		op, tail = OpUDPSend, 0x646e65732e706475
	case 0x766365722e706475: // udp.recv
		op, tail = OpUDPRecv, 0x766365722e706475
	default:
		return Op(b)
	}
	if len(b) != len(op) || binary.LittleEndian.Uint64(b[len(b)-8:]) != tail {
		return Op(b)
	}
	return op
}

// internProto does the same for proto.
func internProto(b []byte) string {
	switch string(b) {
	case "tcp":
		return "tcp"
	case "udp":
		return "udp"
	}
	return string(b)
}

// Bits of the request members, for duplicate detection.
const (
	mOp = 1 << iota
	mProto
	mAddr
	mPort
	mNames
	mName
	mLocal
	mGuest
	mLabels
	mTimeMs
	mEmbedded
)

func requestMember(key []byte) int {
	switch string(key) {
	case "op":
		return mOp
	case "proto":
		return mProto
	case "addr":
		return mAddr
	case "port":
		return mPort
	case "names":
		return mNames
	case "name":
		return mName
	case "local":
		return mLocal
	case "guest":
		return mGuest
	case "labels":
		return mLabels
	case "time_ms":
		return mTimeMs
	case "embedded_ipv4":
		return mEmbedded
	}
	return 0
}

func (p *parser) request(r *Request) error {
	if err := p.expect('{', "'{'"); err != nil {
		return err
	}
	seen := 0
	for n := 0; ; n++ {
		key, at, done, err := p.member(n)
		if err != nil {
			return err
		}
		if done {
			return p.end()
		}
		m := requestMember(key)
		if m == 0 {
			if err := p.skip(1); err != nil {
				return err
			}
			continue
		}
		if seen&m != 0 {
			return wireErr(at, "duplicate member "+strconv.Quote(string(key)))
		}
		seen |= m
		if p.peek() == 'n' && p.literal("null") {
			// As with encoding/json: null empties a list or map and
			// leaves any other member unset.
			continue
		}
		if err := p.requestValue(r, m, at); err != nil {
			return err
		}
	}
}

func (p *parser) requestValue(r *Request, m, at int) error {
	switch m {
	case mOp, mProto:
		b, err := p.strBytes()
		if err != nil {
			return err
		}
		if m == mOp {
			r.Op = internOp(b)
		} else {
			r.Proto = internProto(b)
		}
	case mName, mGuest:
		s, err := p.str()
		if err != nil {
			return err
		}
		if m == mName {
			r.Name = s
		} else {
			r.Guest = s
		}
	case mAddr, mLocal:
		s, err := p.str()
		if err != nil || s == "" {
			return err
		}
		if m == mAddr {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return wireErr(at, "bad addr: "+err.Error())
			}
			r.Addr = a
		} else {
			a, err := netip.ParseAddrPort(s)
			if err != nil {
				return wireErr(at, "bad local: "+err.Error())
			}
			r.Local = a
		}
	case mPort:
		num, err := p.number()
		if err != nil {
			return err
		}
		v, err := strconv.ParseUint(string(num), 10, 16)
		if err != nil {
			return wireErr(at, "port must be an integer 0-65535")
		}
		r.Port = uint16(v)
	case mTimeMs:
		num, err := p.number()
		if err != nil {
			return err
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			return wireErr(at, "time_ms must be a 64-bit integer")
		}
		r.TimeMs = v
	case mEmbedded:
		if err := p.expect('[', "array"); err != nil {
			return err
		}
		r.EmbeddedIPv4 = []netip.Addr{}
		if p.peek() == ']' {
			p.i++
			return nil
		}
		for {
			s, err := p.str()
			if err != nil {
				return err
			}
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is4() {
				return wireErr(at, "embedded_ipv4 must list IPv4 addresses")
			}
			r.EmbeddedIPv4 = append(r.EmbeddedIPv4, a)
			switch p.peek() {
			case ',':
				p.i++
				continue
			case ']':
				p.i++
				return nil
			}
			return p.unexpected("',' or ']'")
		}
	case mNames:
		if err := p.expect('[', "array"); err != nil {
			return err
		}
		r.Names = []string{}
		if p.peek() == ']' {
			p.i++
			return nil
		}
		for {
			s, err := p.nullableStr()
			if err != nil {
				return err
			}
			r.Names = append(r.Names, s)
			switch p.peek() {
			case ',':
				p.i++
				continue
			case ']':
				p.i++
				return nil
			}
			return p.unexpected("',' or ']'")
		}
	case mLabels:
		if err := p.expect('{', "'{'"); err != nil {
			return err
		}
		r.Labels = map[string]string{}
		for n := 0; ; n++ {
			key, _, done, err := p.member(n)
			if err != nil || done {
				return err
			}
			v, err := p.nullableStr()
			if err != nil {
				return err
			}
			r.Labels[string(key)] = v
		}
	}
	return nil
}

func (p *parser) verdict() (Verdict, error) {
	var v Verdict
	if err := p.expect('{', "'{'"); err != nil {
		return v, err
	}
	var seen uint8
	for n := 0; ; n++ {
		key, at, done, err := p.member(n)
		if err != nil {
			return Verdict{}, err
		}
		if done {
			break
		}
		var bit uint8
		switch string(key) {
		case "verdict":
			bit = 1
		case "reason":
			bit = 2
		case "cache_ttl_ms":
			bit = 4
		default:
			if err := p.skip(1); err != nil {
				return Verdict{}, err
			}
			continue
		}
		if seen&bit != 0 {
			return Verdict{}, wireErr(at, "duplicate member "+strconv.Quote(string(key)))
		}
		seen |= bit
		// null means absent for reason and cache_ttl_ms (many JSON
		// encoders write empty optional fields so); never for verdict.
		if bit != 1 {
			if p.peek() == 'n' && p.literal("null") {
				continue
			}
		}
		switch bit {
		case 1:
			b, err := p.strBytes()
			if err != nil {
				return Verdict{}, err
			}
			switch string(b) {
			case "allow":
				v.Verdict = ActionAllow
			case "deny":
				v.Verdict = ActionDeny
			case "abstain":
				v.Verdict = ActionAbstain
			default:
				return Verdict{}, wireErr(at, "verdict must be \"allow\", \"deny\" or \"abstain\", not "+strconv.Quote(truncate(string(b), 64)))
			}
		case 2:
			s, err := p.str()
			if err != nil {
				return Verdict{}, err
			}
			v.Reason = SanitizeReason(s)
		case 4:
			p.ws()
			start := p.i
			var ttl int64
			for p.i < len(p.data) && p.data[p.i]-'0' < 10 && p.i-start < 18 {
				ttl = ttl*10 + int64(p.data[p.i]-'0')
				p.i++
			}
			digits := p.i - start
			if digits == 0 || (digits > 1 && p.data[start] == '0') ||
				(p.i < len(p.data) && (p.data[p.i]-'0' < 10 || p.data[p.i] == '.' || p.data[p.i] == 'e' || p.data[p.i] == 'E')) {
				return Verdict{}, wireErr(start, "cache_ttl_ms must be a non-negative integer below 10^18")
			}
			v.CacheTTLMs = ttl
		}
	}
	if err := p.end(); err != nil {
		return Verdict{}, err
	}
	if seen&1 == 0 {
		return Verdict{}, wireErr(0, "missing member \"verdict\"")
	}
	return v, nil
}

// truncate cuts s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// SanitizeReason returns reason cut to MaxReasonLen bytes, with invalid
// UTF-8, C0/C1 control characters, DEL and Unicode bidirectional controls
// replaced by U+FFFD. The host applies it to every reason a plugin returns
// (ParseVerdictJSON does) because reasons are written to logs and terminals.
func SanitizeReason(reason string) string {
	reason = truncate(reason, MaxReasonLen)
	clean := true
	for i := 0; i < len(reason); i++ {
		if c := reason[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return reason
	}
	out := make([]byte, 0, len(reason)+8)
	for _, r := range reason {
		switch {
		case r < 0x20, r >= 0x7f && r < 0xa0,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069,
			r == 0x2028, r == 0x2029:
			r = utf8.RuneError
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}
