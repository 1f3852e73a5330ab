package policy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var sampleRequest = Request{
	Op:     OpTCPConnect,
	Proto:  "tcp",
	Addr:   netip.MustParseAddr("198.51.100.10"),
	Port:   443,
	Names:  []string{"api.example.test", "www.example.test"},
	Guest:  "app",
	Labels: map[string]string{"tenant": "a", "env": "prod"},
	TimeMs: 1795780800000,
}

const sampleJSON = `{"op":"tcp.connect","proto":"tcp","addr":"198.51.100.10","port":443,"names":["api.example.test","www.example.test"],"guest":"app","labels":{"env":"prod","tenant":"a"},"time_ms":1795780800000}`

// sameRequest compares requests treating nil and empty lists/maps alike.
func sameRequest(a, b *Request) bool {
	if a.Op != b.Op || a.Proto != b.Proto || a.Addr != b.Addr || a.Port != b.Port ||
		a.Name != b.Name || a.Local != b.Local || a.Guest != b.Guest || a.TimeMs != b.TimeMs {
		return false
	}
	if !slices.Equal(a.Names, b.Names) || !slices.Equal(a.EmbeddedIPv4, b.EmbeddedIPv4) || len(a.Labels) != len(b.Labels) {
		return false
	}
	for k, v := range a.Labels {
		if w, ok := b.Labels[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestAppendRequestJSON(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"full", sampleRequest, sampleJSON},
		{"empty", Request{}, `{"op":""}`},
		{"dns", Request{Op: OpDNSLookup, Name: "api.example.test"}, `{"op":"dns.lookup","name":"api.example.test"}`},
		{"accept", Request{Op: OpTCPAccept, Proto: "tcp", Addr: netip.MustParseAddr("2001:db8::9"), Port: 5555,
			Local: netip.MustParseAddrPort("[::1]:8080")},
			`{"op":"tcp.accept","proto":"tcp","addr":"2001:db8::9","port":5555,"local":"[::1]:8080"}`},
		{"escapes", Request{Op: "x\"\\\n\r\t\x01\x7f", Guest: "é\xff"},
			`{"op":"x\"\\\n\r\t\u0001` + "\x7f" + `","guest":"é\ufffd"}`},
		{"zone needs escaping", Request{Op: OpTCPBind, Addr: netip.MustParseAddr("fe80::1%a\"b")},
			`{"op":"tcp.bind","addr":"fe80::1%a\"b"}`},
		{"negative time", Request{Op: OpUDPSend, TimeMs: -5}, `{"op":"udp.send","time_ms":-5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendRequestJSON(nil, &tt.req))
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

func TestParseRequestJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Request
		wantErr string
	}{
		{"fast", sampleJSON, sampleRequest, ""},
		{"reordered with spaces", ` { "time_ms" : 1795780800000, "labels":{"tenant":"a","env":"prod"}, "guest":"app",
			"names":["api.example.test","www.example.test"], "port":443, "addr":"198.51.100.10", "proto":"tcp", "op":"tcp.connect" } `,
			sampleRequest, ""},
		{"unknown members skipped", `{"op":"tcp.connect","x":{"a":[1,2.5e3,-0.1,true,false,null,{"b":"\u00e9"}]},"proto":"tcp","y":[]}`,
			Request{Op: OpTCPConnect, Proto: "tcp"}, ""},
		{"escapes", `{"op":"tcp\u002econnect","guest":"a\"b\\c\/d\n\ud83d\ude00\ud800x"}`,
			Request{Op: OpTCPConnect, Guest: "a\"b\\c/d\n😀\ufffdx"}, ""},
		{"nulls", `{"op":null,"names":null,"labels":null,"port":null,"addr":null}`, Request{}, ""},
		{"null elements", `{"op":"x","names":["a",null],"labels":{"k":null}}`,
			Request{Op: "x", Names: []string{"a", ""}, Labels: map[string]string{"k": ""}}, ""},
		{"empty addr", `{"op":"x","addr":"","local":""}`, Request{Op: "x"}, ""},
		{"mapped addr kept as sent", `{"op":"x","addr":"::ffff:10.0.0.1"}`,
			Request{Op: "x", Addr: netip.MustParseAddr("::ffff:10.0.0.1")}, ""},
		{"port max", `{"op":"x","port":65535}`, Request{Op: "x", Port: 65535}, ""},
		{"port too big", `{"op":"x","port":65536}`, Request{}, "port must be"},
		{"port fraction", `{"op":"x","port":44.0}`, Request{}, "port must be"},
		{"port negative", `{"op":"x","port":-1}`, Request{}, "port must be"},
		{"time exponent", `{"op":"x","time_ms":1e3}`, Request{}, "time_ms"},
		{"bad addr", `{"op":"x","addr":"1.2.3"}`, Request{}, "bad addr"},
		{"bad local", `{"op":"x","local":"1.2.3.4"}`, Request{}, "bad local"},
		{"duplicate", `{"op":"x","op":"y"}`, Request{}, "duplicate member"},
		{"wrong type", `{"op":1}`, Request{}, "want string"},
		{"trailing", `{"op":"x"}x`, Request{}, "trailing data"},
		{"two objects", `{"op":"x"}{"op":"y"}`, Request{}, "trailing data"},
		{"not object", `[]`, Request{}, "want '{'"},
		{"empty", ``, Request{}, "unexpected end"},
		{"unterminated", `{"op":"x`, Request{}, "unterminated"},
		{"raw control", "{\"op\":\"a\x01\"}", Request{}, "control character"},
		{"invalid utf8", "{\"op\":\"a\xff\"}", Request{}, "invalid UTF-8"},
		{"bad escape", `{"op":"\x"}`, Request{}, "bad escape"},
		{"bad number", `{"op":"x","z":01}`, Request{}, "want ',' or '}'"},
		{"bad literal", `{"op":"x","z":nul}`, Request{}, "want value"},
		{"unbalanced", `{"op":"x","z":[1}`, Request{}, "want ',' or ']'"},
		{"case matters", `{"OP":"x"}`, Request{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Request
			err := ParseRequestJSON([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				var we *WireError
				if !errors.As(err, &we) {
					t.Errorf("error %T is not a *WireError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameRequest(&got, &tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestParseRequestFastPath checks that what AppendRequestJSON writes takes
// the fast path (the general path is correct but slower).
func TestParseRequestFastPath(t *testing.T) {
	reqs := []Request{
		sampleRequest,
		{Op: OpDNSAnswer, Name: "a.example.test", Addr: netip.MustParseAddr("2001:db8::1"), TimeMs: 1},
		{Op: OpTCPAccept, Proto: "tcp", Addr: netip.MustParseAddr("203.0.113.9"), Port: 5555,
			Local: netip.MustParseAddrPort("127.0.0.1:8080"), Guest: "g"},
		{Op: OpUDPRecv},
	}
	for _, r := range reqs {
		var got Request
		if !parseRequestFast(AppendRequestJSON(nil, &r), &got, nil) {
			t.Errorf("fast path refused %s", AppendRequestJSON(nil, &r))
		}
		if !sameRequest(&got, &r) {
			t.Errorf("fast path: got %+v want %+v", got, r)
		}
	}
}

func TestAppendVerdictJSON(t *testing.T) {
	tests := []struct {
		v    Verdict
		want string
	}{
		{Allow("ok"), `{"verdict":"allow","reason":"ok"}`},
		{Abstain(), `{"verdict":"abstain"}`},
		{Verdict{Verdict: ActionDeny, Reason: "a\"b", CacheTTLMs: 60000}, `{"verdict":"deny","reason":"a\"b","cache_ttl_ms":60000}`},
		{Verdict{}, `{"verdict":""}`},
	}
	for _, tt := range tests {
		if got := string(AppendVerdictJSON(nil, tt.v)); got != tt.want {
			t.Errorf("got %s want %s", got, tt.want)
		}
	}
}

func TestParseVerdictJSON(t *testing.T) {
	long := strings.Repeat("é", MaxReasonLen) // 2 bytes each
	tests := []struct {
		name    string
		in      string
		want    Verdict
		wantErr string
	}{
		{"allow", `{"verdict":"allow"}`, Allow(""), ""},
		{"full", ` {"reason":"r","cache_ttl_ms":5,"verdict":"deny","extra":[1,{"x":null}]}` + "\n", Verdict{ActionDeny, "r", 5}, ""},
		{"abstain", `{"verdict":"abstain","reason":""}`, Abstain(), ""},
		{"null reason", `{"verdict":"deny","reason":null}`, Deny(""), ""},
		{"null ttl", `{"verdict":"allow","reason":"r","cache_ttl_ms":null}`, Allow("r"), ""},
		{"both null, spaced, first", `{ "reason" : null , "cache_ttl_ms" :null,"verdict":"allow"}`, Allow(""), ""},
		{"null then duplicate", `{"verdict":"deny","reason":null,"reason":"x"}`, Verdict{}, "duplicate"},
		{"nul literal", `{"verdict":"deny","reason":nul}`, Verdict{}, "want string"},
		{"null prefix", `{"verdict":"deny","cache_ttl_ms":nullx}`, Verdict{}, "unexpected"},
		{"empty object", `{}`, Verdict{}, `missing member "verdict"`},
		{"unknown verdict", `{"verdict":"Allow"}`, Verdict{}, "verdict must be"},
		{"empty verdict", `{"verdict":""}`, Verdict{}, "verdict must be"},
		{"null verdict", `{"verdict":null}`, Verdict{}, "want string"},
		{"numeric verdict", `{"verdict":1}`, Verdict{}, "want string"},
		{"duplicate verdict", `{"verdict":"deny","verdict":"allow"}`, Verdict{}, "duplicate"},
		{"negative ttl", `{"verdict":"allow","cache_ttl_ms":-1}`, Verdict{}, "non-negative integer"},
		{"fraction ttl", `{"verdict":"allow","cache_ttl_ms":1.5}`, Verdict{}, "non-negative integer"},
		{"exp ttl", `{"verdict":"allow","cache_ttl_ms":1e3}`, Verdict{}, "non-negative integer"},
		{"leading zero ttl", `{"verdict":"allow","cache_ttl_ms":01}`, Verdict{}, "non-negative integer"},
		{"huge ttl", `{"verdict":"allow","cache_ttl_ms":99999999999999999999}`, Verdict{}, "non-negative integer"},
		{"string ttl", `{"verdict":"allow","cache_ttl_ms":"5"}`, Verdict{}, "non-negative integer"},
		{"trailing garbage", `{"verdict":"allow"}garbage`, Verdict{}, "trailing data"},
		{"two objects", `{"verdict":"deny"}{"verdict":"allow"}`, Verdict{}, "trailing data"},
		{"garbage", `garbage`, Verdict{}, "want '{'"},
		{"empty", ``, Verdict{}, "unexpected end"},
		{"array", `[{"verdict":"allow"}]`, Verdict{}, "want '{'"},
		{"truncated", `{"verdict":"allow"`, Verdict{}, "unexpected end"},
		{"invalid utf8 reason", "{\"verdict\":\"deny\",\"reason\":\"\xff\"}", Verdict{}, "invalid UTF-8"},
		{"control chars sanitized", `{"verdict":"deny","reason":"a\u001b[31mb\nc\u202ed"}`, Deny("a\ufffd[31mb\ufffdc\ufffdd"), ""},
		{"reason capped", `{"verdict":"deny","reason":"` + long + `"}`, Deny(strings.Repeat("é", MaxReasonLen/2)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVerdictJSON([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if got != (Verdict{}) {
					t.Errorf("verdict on error = %+v, want zero (deny)", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRequestDeepNesting(t *testing.T) {
	ok := `{"op":"x","z":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`
	var r Request
	if err := ParseRequestJSON([]byte(ok), &r); err != nil || r.Op != "x" {
		t.Fatalf("depth %d: %v", maxDepth, err)
	}
	if err := json.Unmarshal([]byte(ok), &r); err != nil {
		t.Fatalf("encoding/json disagrees at depth %d: %v", maxDepth, err)
	}
	tooDeep := `{"op":"x","z":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`
	if err := ParseRequestJSON([]byte(tooDeep), &r); err == nil || !strings.Contains(err.Error(), "too deep") {
		t.Fatalf("depth %d: err = %v", maxDepth+1, err)
	}
}

var knownRequestKeys = []string{"op", "proto", "addr", "port", "embedded_ipv4", "names", "name", "local", "guest", "labels", "time_ms"}

// comparableWithEncodingJSON reports whether encoding/json's reading of data
// is the one ParseRequestJSON documents: a top-level object, valid UTF-8, no
// duplicate known member and no member that encoding/json would match
// case-insensitively to a known one.
func comparableWithEncodingJSON(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		key := tok.(string)
		for _, k := range knownRequestKeys {
			if key != k && strings.EqualFold(key, k) {
				return false
			}
		}
		if seen[key] || key == "embedded_ipv4" {
			// embedded_ipv4 accepts only IPv4 strings; encoding/json
			// takes any netip.Addr text (and "" or null).
			return false
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return true
}

// fuzzInterner persists across fuzz inputs, so that cached lists are hit.
var fuzzInterner = newInterner()

func FuzzRequestJSON(f *testing.F) {
	f.Add([]byte(sampleJSON))
	f.Add(AppendRequestJSON(nil, &Request{Op: OpTCPAccept, Proto: "tcp", Addr: netip.MustParseAddr("::1"), Port: 1,
		Local: netip.MustParseAddrPort("[fe80::1%eth0]:80"), Name: "n", TimeMs: -1}))
	f.Add([]byte(`{"op":"x","names":[],"labels":{},"z":[{"a":1e5}]}`))
	f.Add([]byte(`{"op":"\ud800\udc00","guest":"\u00e9"}`))
	f.Add([]byte(`{"op":null,"port":0,"time_ms":-0}`))
	f.Add([]byte(`{"op":"tcp.connect","addr":"2001:0:7f00:3::1","port":1,"embedded_ipv4":["255.255.255.254","127.0.0.3"]}`))
	f.Add([]byte(`{"embedded_ipv4" : [ "127.0.0.3" ] , "op":"tcp.connect"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Request
		err := ParseRequestJSON(data, &got)

		// Differential: on the inputs where the semantics are the same,
		// encoding/json must agree.
		if comparableWithEncodingJSON(data) {
			var want Request
			jerr := json.Unmarshal(data, &want)
			switch {
			case (err == nil) != (jerr == nil):
				t.Fatalf("ParseRequestJSON err=%v, encoding/json err=%v for %q", err, jerr, data)
			case err == nil && !sameRequest(&got, &want):
				t.Fatalf("ParseRequestJSON=%+v encoding/json=%+v for %q", got, want, data)
			}
		} else if err == nil && !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if err != nil {
			return
		}

		// The interning parser of the wasm decide path reads the same.
		var interned Request
		if err := parseRequest(data, &interned, fuzzInterner); err != nil || !sameRequest(&got, &interned) {
			t.Fatalf("interning parser: %+v, %v; want %+v", interned, err, got)
		}

		// Round trip: append(parse(x)) parses back to the same request,
		// through the fast path when the strings are plain.
		enc := AppendRequestJSON(nil, &got)
		var again Request
		if err := ParseRequestJSON(enc, &again); err != nil {
			t.Fatalf("re-parse of %s: %v", enc, err)
		}
		if !sameRequest(&got, &again) {
			t.Fatalf("round trip: %+v != %+v via %s", got, again, enc)
		}
		if !json.Valid(enc) {
			t.Fatalf("AppendRequestJSON wrote invalid JSON %s", enc)
		}
	})
}

func FuzzVerdictJSON(f *testing.F) {
	f.Add([]byte(`{"verdict":"allow","reason":"ok","cache_ttl_ms":10}`))
	f.Add([]byte(`{"verdict":"deny","x":[{}],"reason":"\u001b"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"verdict":"abstain"} `))
	f.Add([]byte(`{"verdict":"deny","reason":null,"cache_ttl_ms":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseVerdictJSON(data)
		if err != nil {
			if v != (Verdict{}) {
				t.Fatalf("non-zero verdict %+v with error", v)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		switch v.Verdict {
		case ActionAllow, ActionDeny, ActionAbstain:
		default:
			t.Fatalf("accepted verdict %q", v.Verdict)
		}
		if v.CacheTTLMs < 0 || len(v.Reason) > MaxReasonLen+2*utf8.UTFMax || !utf8.ValidString(v.Reason) {
			t.Fatalf("bad verdict accepted: %+v", v)
		}
		// encoding/json matches struct fields case-insensitively; a map
		// keeps member names exact, as the wire format does. null leaves
		// a member absent in both.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err == nil {
			var jv struct {
				Verdict    string
				CacheTTLMs int64
			}
			json.Unmarshal(m["verdict"], &jv.Verdict)
			if raw, ok := m["cache_ttl_ms"]; ok {
				json.Unmarshal(raw, &jv.CacheTTLMs)
			}
			if string(v.Verdict) != jv.Verdict || v.CacheTTLMs != jv.CacheTTLMs {
				t.Fatalf("disagrees with encoding/json: %+v vs %+v for %q", v, jv, data)
			}
		}
		again, err := ParseVerdictJSON(AppendVerdictJSON(nil, v))
		if err != nil || again != v {
			t.Fatalf("round trip: %+v -> %+v, %v", v, again, err)
		}
	})
}

func BenchmarkParseRequestJSON(b *testing.B) {
	data := []byte(sampleJSON)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var r Request
	for b.Loop() {
		if err := ParseRequestJSON(data, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequestJSONGeneral(b *testing.B) {
	data := []byte(" " + sampleJSON)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var r Request
	for b.Loop() {
		if err := ParseRequestJSON(data, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequestEncodingJSON(b *testing.B) {
	data := []byte(sampleJSON)
	b.ReportAllocs()
	for b.Loop() {
		var r Request
		if err := json.Unmarshal(data, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRequestJSON(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for b.Loop() {
		buf = AppendRequestJSON(buf[:0], &sampleRequest)
	}
}

func BenchmarkAppendVerdictJSON(b *testing.B) {
	b.ReportAllocs()
	v := Verdict{Verdict: ActionAllow, Reason: "rule \"tcp://*.example.test:443\"", CacheTTLMs: 300000}
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = AppendVerdictJSON(buf[:0], v)
	}
}

func BenchmarkParseVerdictJSON(b *testing.B) {
	data := []byte(`{"verdict":"allow","reason":"rule \"tcp://*.example.test:443\"","cache_ttl_ms":300000}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseVerdictJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestInterner(t *testing.T) {
	in := newInterner()
	data := AppendRequestJSON(nil, &sampleRequest)
	var a, b Request
	if err := parseRequest(data, &a, in); err != nil {
		t.Fatal(err)
	}
	if err := parseRequest(data, &b, in); err != nil {
		t.Fatal(err)
	}
	if !sameRequest(&a, &sampleRequest) || !sameRequest(&b, &sampleRequest) {
		t.Fatalf("got %+v and %+v", a, b)
	}
	if &a.Names[0] != &b.Names[0] {
		t.Error("second parse did not reuse the names list")
	}
	// A different list is not confused with the cached one.
	other := sampleRequest
	other.Names = []string{"api.example.test"}
	other.Labels = map[string]string{"tenant": "b"}
	if err := parseRequest(AppendRequestJSON(nil, &other), &b, in); err != nil || !sameRequest(&b, &other) {
		t.Errorf("got %+v, %v", b, err)
	}
	// The tables stay bounded.
	for i := range 3 * internMax {
		r := Request{Op: OpTCPConnect, Guest: strconv.Itoa(i), Names: []string{strconv.Itoa(i)}, Labels: map[string]string{"i": strconv.Itoa(i)}}
		if err := parseRequest(AppendRequestJSON(nil, &r), &b, in); err != nil || !sameRequest(&b, &r) {
			t.Fatalf("%d: got %+v, %v", i, b, err)
		}
	}
	if len(in.strs) > internMax || len(in.names) > internMax || len(in.labels) > internMax {
		t.Errorf("interner grew to %d/%d/%d", len(in.strs), len(in.names), len(in.labels))
	}
}

func TestFastIPv4(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "198.51.100.10", "01.2.3.4", "1.2.3", "1.2.3.4.5",
		"256.1.1.1", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4a", "", "1.2.3.1000", "::1"} {
		got, ok := fastIPv4(append([]byte(s), `",".......`...)[:len(s)])
		want, err := netip.ParseAddr(s)
		if ok && (err != nil || got != want) {
			t.Errorf("fastIPv4(%q) = %v, netip says %v, %v", s, got, want, err)
		}
		if !ok && err == nil && want.Is4() {
			t.Errorf("fastIPv4(%q) refused a valid IPv4 address", s)
		}
	}
}

func TestInternOp(t *testing.T) {
	for _, op := range Ops {
		b := []byte(op)
		if got := internOp(b); got != op {
			t.Errorf("internOp(%q) = %q", op, got)
		}
		if n := testing.AllocsPerRun(10, func() { internOp(b) }); n != 0 {
			t.Errorf("internOp(%q) allocates %v times", op, n)
		}
	}
	for _, s := range []string{"", "tcp", "tcp.connecT", "tcp.conneXt", "tcp.connect2", "udp.sendX", "tcp.bin", "dns.lookupX"} {
		if got := internOp([]byte(s)); string(got) != s {
			t.Errorf("internOp(%q) = %q", s, got)
		}
	}
}

func TestStopMask(t *testing.T) {
	// For every byte value at every position, with plain bytes around it,
	// the lowest flagged byte must be the first byte strClass stops at.
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			for q := pos + 1; q < 8; q++ {
				w[q] = byte(c) // worst case for borrow artefacts: repeats above
			}
			want := 8
			for k := 0; k < 8; k++ {
				if strClass[w[k]] != 0 {
					want = k
					break
				}
			}
			got := 8
			if m := stopMask(binary.LittleEndian.Uint64(w)); m != 0 {
				got = bits.TrailingZeros64(m) >> 3
			}
			if got != want {
				t.Fatalf("word %q: stop at %d, want %d", w, got, want)
			}
		}
	}
}

func TestParseRequestFastAllocs(t *testing.T) {
	in := newInterner()
	data := AppendRequestJSON(nil, &sampleRequest)
	var r Request
	if err := parseRequest(data, &r, in); err != nil {
		t.Fatal(err)
	}
	// Steady state of the wasm decide path: nothing allocated.
	if n := testing.AllocsPerRun(100, func() { parseRequest(data, &r, in) }); n != 0 {
		t.Errorf("interning parse allocates %v times per request", n)
	}
}

func TestDigits8AndFastUint(t *testing.T) {
	for _, s := range []string{"0", "7", "42", "443", "65535", "12345678", "123456789", "1795780800000", "9223372036854775807",
		"18446744073709551615", "99999999999999999999", "00", "01", "", "x", "1x", "12345678x", "1234567890123456789"} {
		for _, suffix := range []string{"", "}", `,"x":1}`, "0000000000"} {
			data := []byte(s + suffix)
			v, next, ok := fastUint(data, 0)
			n := 0
			for n < len(data) && data[n] >= '0' && data[n] <= '9' {
				n++
			}
			digits := string(data[:n])
			want, err := strconv.ParseUint(digits, 10, 64)
			valid := err == nil && n > 0 && n <= 19 && !(digits[0] == '0' && n > 1)
			if ok != valid || (ok && (v != want || next != n)) {
				t.Errorf("fastUint(%q) = %d, %d, %v; want %d, %d, %v", data, v, next, ok, want, n, valid)
			}
		}
	}
	// Bytes past the length (but within capacity) are never used.
	buf := []byte("12345678999")
	if v, next, ok := fastUint(buf[:3], 0); !ok || v != 123 || next != 3 {
		t.Errorf("fastUint over capacity: %d %d %v", v, next, ok)
	}
	if v, next, ok := fastUint(buf[:9], 0); !ok || v != 123456789 || next != 9 {
		t.Errorf("fastUint(buf[:9]) = %d %d %v", v, next, ok)
	}
}

// FuzzRequestRoundTrip builds requests from fuzzed fields, so that the fast
// path (which only sees AppendRequestJSON's output) gets random content.
func FuzzRequestRoundTrip(f *testing.F) {
	f.Add("tcp.connect", "tcp", []byte{198, 51, 100, 10}, uint16(443), "api.example.test", "x.test", "app", "tenant", "a", int64(1795780800000), uint16(8080))
	f.Add("udp.recv", "", []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(0), "", "", "é\"\\", "", "", int64(-1), uint16(0))
	f.Add("tcp.connect", "tcp", []byte{0x20, 1, 0, 0, 0x7f, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(1), "a.test", "", "", "", "", int64(0), uint16(0))
	f.Fuzz(func(t *testing.T, op, proto string, ip []byte, port uint16, name1, name2, guest, lk, lv string, timeMs int64, lport uint16) {
		r := Request{Op: Op(op), Proto: proto, Port: port, Guest: guest, TimeMs: timeMs, Name: name2}
		if a, ok := netip.AddrFromSlice(ip); ok {
			r.Addr = a
			r.Local = netip.AddrPortFrom(a, lport)
			r.EmbeddedIPv4 = EmbeddedIPv4(a)
		}
		if name1 != "" {
			r.Names = []string{name1, name2}
		}
		if lk != "" {
			r.Labels = map[string]string{lk: lv, "k2": lv}
		}
		// Strings go through JSON: each invalid UTF-8 byte becomes U+FFFD.
		valid := func(s string) string {
			var b []byte
			for _, r := range s {
				b = utf8.AppendRune(b, r)
			}
			return string(b)
		}
		want := r
		want.Op, want.Proto, want.Guest, want.Name = Op(valid(op)), valid(proto), valid(guest), valid(name2)
		if r.Names != nil {
			want.Names = []string{valid(name1), valid(name2)}
		}
		if r.Labels != nil {
			want.Labels = map[string]string{}
			for k, v := range r.Labels {
				want.Labels[valid(k)] = valid(v)
			}
		}
		data := AppendRequestJSON(nil, &r)
		for _, in := range []*interner{nil, fuzzInterner} {
			var got Request
			if err := parseRequest(data, &got, in); err != nil {
				t.Fatalf("parse %s: %v", data, err)
			}
			if !sameRequest(&got, &want) {
				t.Fatalf("interner=%v: got %+v\nwant %+v\nvia %s", in != nil, got, want, data)
			}
		}
	})
}
