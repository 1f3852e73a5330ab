package policy

import (
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
	in := newInterner()
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		if err := parseRequestBinary(data, &r, in); err != nil {
			return
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
