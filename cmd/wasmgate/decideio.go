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
//
// It fills *in (reset first).
func decodeInputFast(line []byte, in *input) (ok bool) {
	*in = input{}
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	i = skipWS(line, i+1)
	var seen uint8
	if i < len(line) && line[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := fastString(line, i)
			if !ok {
				return false
			}
			j = skipWS(line, j)
			if j >= len(line) || line[j] != ':' {
				return false
			}
			j = skipWS(line, j+1)
			var bit uint8
			switch key {
			case "port":
				bit = 1 << 0
				n, k, ok := fastInt(line, j)
				if !ok {
					return false
				}
				in.port = n
				in.Port, j = &in.port, k
			case "op", "proto", "host", "addr", "local":
				s, k, ok := fastString(line, j)
				if !ok {
					return false
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
				return false
			}
			if seen&bit != 0 {
				return false // encoding/json keeps the last; let it
			}
			seen |= bit
			j = skipWS(line, j)
			if j >= len(line) {
				return false
			}
			if line[j] == '}' {
				i = j + 1
				break
			}
			if line[j] != ',' {
				return false
			}
			i = skipWS(line, j+1)
		}
	}
	return skipWS(line, i) == len(line)
}

// inputWord returns the constant for v when it is one of the input's keys
// or op and proto values (a switch on string(v) does not allocate).
func inputWord(v []byte) (string, bool) {
	switch string(v) {
	case "op":
		return "op", true
	case "proto":
		return "proto", true
	case "addr":
		return "addr", true
	case "port":
		return "port", true
	case "host":
		return "host", true
	case "local":
		return "local", true
	case "connect":
		return "connect", true
	case "tcp":
		return "tcp", true
	case "udp":
		return "udp", true
	case "resolve":
		return "resolve", true
	case "send":
		return "send", true
	case "bind":
		return "bind", true
	case "listen":
		return "listen", true
	case "accept":
		return "accept", true
	case "recv":
		return "recv", true
	}
	return "", false
}

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
			if w, ok := inputWord(v); ok {
				return w, j + 1, true
			}
			return string(v), j + 1, true
		}
		if !plainJSON[c] {
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
	var n int64 // at most 18 digits: no overflow
	for _, c := range b[start:j] {
		n = n*10 + int64(c-'0')
	}
	if start > i {
		n = -n
	}
	return n, j, true
}

// plainJSON is true for the bytes a JSON string holds as themselves and
// json.Encoder writes as themselves (SetEscapeHTML(false)): printable
// ASCII other than the quote and the backslash.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

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
		if !plainJSON[s[i]] {
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
