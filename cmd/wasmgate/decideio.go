package main

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The per-line codec of `wasmgate decide`. encoding/json costs more than
// the whole decision when no plugin runs (reflection, a Decoder per line
// for DisallowUnknownFields), so the common line is read and written here
// by hand, and everything else goes through encoding/json exactly as
// before: decodeInputFast accepts only lines for which encoding/json would
// give the same input, and appendOutput writes the bytes json.Encoder
// (SetEscapeHTML(false)) writes. TestDecideCodecSameAsJSON holds both to
// that.

// decodeInputFast decodes a line that is one JSON object whose members are
// the input's fields, each at most once and spelled exactly, with string
// values of printable ASCII without escapes and an integer port. ok is
// false for any other line (which encoding/json then decodes, or rejects
// with its own message).
func decodeInputFast(line []byte) (in *input, ok bool) {
	in = new(input)
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return in, false
	}
	i = skipWS(line, i+1)
	var seen uint8
	if i < len(line) && line[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := fastString(line, i)
			if !ok {
				return in, false
			}
			j = skipWS(line, j)
			if j >= len(line) || line[j] != ':' {
				return in, false
			}
			j = skipWS(line, j+1)
			var bit uint8
			switch key {
			case "port":
				bit = 1 << 0
				n, k, ok := fastInt(line, j)
				if !ok {
					return in, false
				}
				in.port = n
				in.Port, j = &in.port, k
			case "op", "proto", "host", "addr", "local":
				s, k, ok := fastString(line, j)
				if !ok {
					return in, false
				}
				j = k
				switch key {
				case "op":
					bit, in.Op = 1<<1, s
				case "proto":
					bit, in.Proto = 1<<2, s
				case "host":
					bit, in.host = 1<<3, s
					in.Host = &in.host
				case "addr":
					bit, in.addr = 1<<4, s
					in.Addr = &in.addr
				case "local":
					bit, in.local = 1<<5, s
					in.Local = &in.local
				}
			default:
				return in, false
			}
			if seen&bit != 0 {
				return in, false // encoding/json keeps the last; let it
			}
			seen |= bit
			j = skipWS(line, j)
			if j >= len(line) {
				return in, false
			}
			if line[j] == '}' {
				i = j + 1
				break
			}
			if line[j] != ',' {
				return in, false
			}
			i = skipWS(line, j+1)
		}
	}
	if skipWS(line, i) != len(line) {
		return in, false
	}
	return in, true
}

// inputWords are the keys and the op and proto values of the input.
var inputWords = [...]string{"op", "proto", "addr", "port", "host", "local", "connect", "tcp", "udp", "resolve", "send", "bind", "listen", "accept", "recv"}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// fastString reads a JSON string at b[i] made only of printable ASCII
// other than the quote and the backslash. The words of the input format
// come back as constants, without allocating.
func fastString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			v := b[i+1 : j]
			for _, w := range inputWords {
				if string(v) == w {
					return w, j + 1, true
				}
			}
			return string(v), j + 1, true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return "", i, false
		}
	}
	return "", i, false
}

// fastInt reads a JSON integer at b[i]: an optional minus, then 0 or a
// non-zero digit and at most 17 more digits, not followed by a fraction
// or an exponent.
func fastInt(b []byte, i int) (int64, int, bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	start := j
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	digits := j - start
	if digits == 0 || digits > 18 || (digits > 1 && b[start] == '0') {
		return 0, i, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, i, false
	}
	n, err := strconv.ParseInt(string(b[i:j]), 10, 64)
	if err != nil {
		return 0, i, false
	}
	return n, j, true
}

// appendOutput appends o as json.Encoder with SetEscapeHTML(false) writes
// it, newline included.
func appendOutput(b []byte, o *output) []byte {
	b = append(b, `{"op":`...)
	b = appendJSONString(b, o.Op)
	if o.Host != nil {
		b = appendJSONString(append(b, `,"host":`...), *o.Host)
	}
	if o.Proto != "" {
		b = appendJSONString(append(b, `,"proto":`...), o.Proto)
	}
	if o.Addr != nil {
		b = appendJSONString(append(b, `,"addr":`...), *o.Addr)
	}
	if o.Port != nil {
		b = strconv.AppendInt(append(b, `,"port":`...), *o.Port, 10)
	}
	if o.Local != nil {
		b = appendJSONString(append(b, `,"local":`...), *o.Local)
	}
	b = appendJSONString(append(b, `,"verdict":`...), o.Verdict)
	if o.Addrs != nil {
		b = appendJSONStrings(append(b, `,"addrs":`...), *o.Addrs)
	}
	if o.Dropped != nil {
		b = appendJSONStrings(append(b, `,"dropped":`...), *o.Dropped)
	}
	if o.Plugin != nil {
		b = appendJSONString(append(b, `,"plugin":`...), *o.Plugin)
	}
	b = appendJSONString(append(b, `,"reason":`...), o.Reason)
	return append(b, "}\n"...)
}

func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString appends s as a JSON string: as is when it is printable
// ASCII without a quote or backslash, otherwise as encoding/json (no HTML
// escaping) writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s) // a string always encodes
			return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
