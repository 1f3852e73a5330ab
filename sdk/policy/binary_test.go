package policy

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func binaryRequests() []Request {
	return []Request{
		{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("93.184.216.34"), Port: 443,
			Names: []string{"api.example.test", "cdn.example.test"}, Guest: "app", TimeMs: 1795780800000},
		{Op: OpDNSLookup, Name: "api.example.test", TimeMs: 1},
		{Op: OpDNSAnswer, Name: "v6.example.test", Addr: netip.MustParseAddr("2001:db8::1")},
		{Op: OpTCPAccept, Proto: "tcp", Addr: netip.MustParseAddr("::1"), Port: 40000,
			Local: netip.MustParseAddrPort("[::1]:8080"), Labels: map[string]string{"team": "a", "env": "prod", "": "empty"}},
		{Op: OpUDPRecv, Proto: "udp", Addr: netip.MustParseAddr("::ffff:10.0.0.1"), Port: 53, TimeMs: -5},
		{Op: OpUDPBind, Proto: "udp", Addr: netip.IPv4Unspecified(), Names: []string{}},
	}
}

func TestBinaryRequestRoundTrip(t *testing.T) {
	for _, in := range []*interner{nil, newInterner()} {
		for _, r := range binaryRequests() {
			b, ok := AppendRequestBinary([]byte("prefix"), &r)
			if !ok || string(b[:6]) != "prefix" {
				t.Fatalf("%+v: not encoded", r)
			}
			for round := 0; round < 2; round++ { // the second hits the interner
				var got Request
				if err := parseRequestBinary(b[6:], &got, in); err != nil {
					t.Fatalf("%+v: %v", r, err)
				}
				want := r
				if len(want.Names) == 0 {
					want.Names = nil
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
				}
			}
		}
	}
}

// commonRequests have the shape parseRequestCommon decodes.
func commonRequests() []Request {
	a := netip.MustParseAddr("127.0.0.1")
	return []Request{
		{Op: OpTCPConnect, Proto: "tcp", Addr: a, Port: 8443, Guest: "app", TimeMs: 1795780800000},
		{Op: OpTCPConnect, Proto: "tcp", Addr: a, Port: 8443, Guest: "app", TimeMs: 1795780800001},
		{Op: OpTCPAccept, Proto: "tcp", Addr: a, Port: 40000, Guest: "app", Labels: map[string]string{"team": "a"}},
		{Op: OpTCPAccept, Proto: "tcp", Addr: a, Port: 40001, Guest: "app", Labels: map[string]string{"team": "a"}},
		{Op: OpUDPSend, Proto: "udp", Addr: a, Port: 53, Guest: "app", Names: []string{"Api.Example.test"}, Labels: map[string]string{"team": "a"}},
		{Op: OpUDPSend, Proto: "udp", Addr: a, Port: 53, Guest: "app", Names: []string{"Api.Example.test"}, Labels: map[string]string{"team": "a"}},
		{Op: OpUDPSend, Proto: "udp", Addr: a, Port: 53, Guest: "app", Names: []string{"api.example.test"}, Labels: map[string]string{"team": "b"}},
		{Op: OpDNSAnswer, Addr: a, Guest: "app"},
		{Op: OpTCPConnect, Proto: "tcp", Addr: a, Port: 1},
		{Op: OpTCPConnect, Proto: "tcp", Addr: a, Port: 2},
		{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("::1"), Port: 2, Guest: "app"},
	}
}

// The fast path's decoder takes the requests of the shape it knows once
// the decoder has seen their guest, names and labels, and gives what the
// decoder gives; the rest it leaves to the decoder, untouched.
func TestParseRequestCommon(t *testing.T) {
	in := newInterner()
	took := 0
	for i, r := range commonRequests() {
		b, ok := AppendRequestBinary(nil, &r)
		if !ok {
			t.Fatal(r)
		}
		var c, full Request
		common := parseRequestCommon(b, &c, in)
		canonical := in.namesCanonical
		if err := parseRequestBinary(b, &full, in); err != nil {
			t.Fatal(err)
		}
		if common {
			took++
			if !reflect.DeepEqual(c, full) || canonical != in.namesCanonical {
				t.Errorf("%d: common %+v (%v), full %+v (%v)", i, c, canonical, full, in.namesCanonical)
			}
		} else if !reflect.DeepEqual(c, Request{}) {
			t.Errorf("%d: refused but wrote %+v", i, c)
		}
		want := i == 1 || i == 3 || i == 5 || i == 7 || i == 9
		if common != want {
			t.Errorf("%d: common %v, want %v", i, common, want)
		}
	}
	if took != 5 {
		t.Errorf("took %d", took)
	}
}

func TestBinaryRequestNotEncodable(t *testing.T) {
	long := strings.Repeat("x", 1<<16)
	for _, r := range []Request{
		{Op: "tcp.frobnicate"},
		{Op: OpTCPConnect, Proto: "sctp"},
		{Op: OpTCPConnect, Addr: netip.MustParseAddr("fe80::1%eth0")},
		{Op: OpTCPConnect, Guest: long},
		{Op: OpTCPConnect, Names: []string{long}},
		{Op: OpTCPConnect, Labels: map[string]string{"k": long}},
	} {
		if b, ok := AppendRequestBinary([]byte("x"), &r); ok || string(b) != "x" {
			t.Errorf("%.60v: encoded (%v) or dst changed (%q)", r, ok, b)
		}
	}
}

func TestBinaryVerdict(t *testing.T) {
	for _, c := range []struct {
		in, want Verdict
	}{
		{Allow("ok"), Allow("ok")},
		{Verdict{Verdict: ActionAbstain, CacheTTLMs: 5000}, Verdict{Verdict: ActionAbstain, CacheTTLMs: 5000}},
		{Verdict{Verdict: "maybe", CacheTTLMs: -1}, Verdict{Verdict: ActionDeny}},
		{Deny("a\x1b[31mred\nline"), Deny("a\uFFFD[31mred\uFFFDline")},
		{Deny(strings.Repeat("é", MaxReasonLen)), Deny(truncate(strings.Repeat("é", MaxReasonLen), MaxReasonLen))},
	} {
		got, err := ParseVerdictBinary(AppendVerdictBinary(nil, c.in))
		if err != nil || got != c.want {
			t.Errorf("%+v: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	good := AppendVerdictBinary(nil, Allow("ok"))
	for name, b := range map[string][]byte{
		"empty":          nil,
		"action 0":       append([]byte{0}, good[1:]...),
		"action 4":       append([]byte{4}, good[1:]...),
		"short":          good[:len(good)-1],
		"trailing":       append(append([]byte(nil), good...), 0),
		"negative ttl":   {1, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0},
		"ttl 10^18":      {1, 0, 0, 0x64, 0xa7, 0xb3, 0xb6, 0xe0, 0x0d, 0, 0},
		"reason too big": {1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff},
	} {
		if v, err := ParseVerdictBinary(b); err == nil {
			t.Errorf("%s: accepted as %+v", name, v)
		}
	}
}

// FuzzRequestBinary: no input makes the decoder panic; whatever it accepts
// re-encodes to a request that decodes to the same thing.
func FuzzRequestBinary(f *testing.F) {
	for _, r := range binaryRequests() {
		b, _ := AppendRequestBinary(nil, &r)
		f.Add(b)
	}
	for _, r := range commonRequests() {
		b, _ := AppendRequestBinary(nil, &r)
		f.Add(b)
	}
	in := newInterner()
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fast path's decoder first, as the wasm fast path runs it:
		// what it accepts is what the full decoder gives.
		var c Request
		common := parseRequestCommon(data, &c, in)
		if !common && !reflect.DeepEqual(c, Request{}) {
			t.Fatalf("parseRequestCommon refused %x but left %+v", data, c)
		}
		commonCanonical := in.namesCanonical
		var r Request
		if err := parseRequestBinary(data, &r, in); err != nil {
			if common {
				t.Fatalf("parseRequestCommon accepted %x as %+v; the decoder: %v", data, c, err)
			}
			return
		}
		if common && (!reflect.DeepEqual(c, r) || commonCanonical != in.namesCanonical) {
			t.Fatalf("parseRequestCommon %+v (canonical %v), the decoder %+v (%v)", c, commonCanonical, r, in.namesCanonical)
		}
		var plain Request
		if err := ParseRequestBinary(data, &plain); err != nil || !reflect.DeepEqual(r, plain) {
			t.Fatalf("interned %+v, plain %+v (%v)", r, plain, err)
		}
		b, ok := AppendRequestBinary(nil, &r)
		if !ok {
			t.Fatalf("accepted %+v cannot be encoded", r)
		}
		var again Request
		if err := ParseRequestBinary(b, &again); err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoded %+v decodes to %+v (%v)", r, again, err)
		}
	})
}

// FuzzVerdictBinary: no input makes the verdict decoder panic, and what it
// accepts is a valid, sanitised verdict.
func FuzzVerdictBinary(f *testing.F) {
	f.Add(AppendVerdictBinary(nil, Allow("ok")))
	f.Add(AppendVerdictBinary(nil, Deny("no\x00")))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseVerdictBinary(data)
		if err != nil {
			return
		}
		if v.CacheTTLMs < 0 || (v.Verdict != ActionAllow && v.Verdict != ActionDeny && v.Verdict != ActionAbstain) ||
			v.Reason != SanitizeReason(v.Reason) {
			t.Fatalf("accepted invalid %+v", v)
		}
	})
}

// TestParseRequestCommonZeroLengthBlocks: a names or labels block of no
// bytes (not even a count) is malformed, also to the common decoder of an
// interner that has kept no block yet (found by the kernel's
// FuzzShortcutWire: it matched the empty last block, and a request the
// decoder refuses was decided).
func TestParseRequestCommonZeroLengthBlocks(t *testing.T) {
	r := Request{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Guest: "app", TimeMs: 1}
	good, _ := AppendRequestBinary(nil, &r)
	// good ends with the names block (02 00 00 00) and the labels block
	// (02 00 00 00).
	n := len(good)
	for name, data := range map[string][]byte{
		"names":  append(append(bytes.Clone(good[:n-8]), 0, 0), good[n-4:]...),
		"labels": append(bytes.Clone(good[:n-4]), 0, 0),
	} {
		// An interner that has seen the guest, and no names or labels.
		in := newInterner()
		var prime Request
		if err := parseRequestBinary(good, &prime, in); err != nil {
			t.Fatal(err)
		}
		var c, full Request
		if parseRequestCommon(data, &c, in) {
			t.Errorf("%s: a zero-length block accepted as %+v", name, c)
		}
		if err := ParseRequestBinary(data, &full); err == nil {
			t.Errorf("%s: the decoder accepted %x", name, data)
		}
	}
}
