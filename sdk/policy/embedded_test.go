package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The IPv6 forms of 127.0.0.3 (issue 18, item 3), and what they embed.
var embeddedForms = []struct {
	addr string
	want []string
}{
	{"64:ff9b::7f00:3", []string{"127.0.0.3"}},                                       // NAT64 well-known prefix
	{"64:ff9b::127.0.0.3", []string{"127.0.0.3"}},                                    // same, dotted
	{"64:ff9b:1:7f00:0:300::", []string{"127.0.0.3"}},                                // NAT64 local use, /48 layout (u octet skipped)
	{"::127.0.0.3", []string{"127.0.0.3"}},                                           // IPv4-compatible
	{"2002:7f00:3::1", []string{"127.0.0.3"}},                                        // 6to4
	{"2001:0:4136:e378:8000:63bf:80ff:fffc", []string{"127.0.0.3", "65.54.227.120"}}, // Teredo client
	{"2001:0:7f00:3::1", []string{"255.255.255.254", "127.0.0.3"}},                   // Teredo server
}

func TestEmbeddedIPv4(t *testing.T) {
	tests := append(slices.Clone(embeddedForms), []struct {
		addr string
		want []string
	}{
		{"64:ff9b::808:808", []string{"8.8.8.8"}},
		{"64:ff9b:1::7f00:3", []string{"0.0.0.0"}}, // /96 layout inside the /48: not what RFC 6052 says
		// RFC 4380's example: server 65.54.227.120, client 192.0.2.45.
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", []string{"192.0.2.45", "65.54.227.120"}},
		{"::2", []string{"0.0.0.2"}},
		{"::", nil},
		{"::1", nil},
		{"::ffff:127.0.0.3", nil}, // mapped: unmapped before policy, not "embedded"
		{"127.0.0.3", nil},
		{"64:ff9b:0:1::7f00:3", nil}, // outside 64:ff9b::/96
		{"2001:1::7f00:3", nil},      // outside 2001::/32
		{"2003::1", nil},
		{"::1:0:0:1", nil}, // not ::/96
		{"fe80::7f00:3", nil},
		{"", nil},
	}...)
	for _, tt := range tests {
		var a netip.Addr
		if tt.addr != "" {
			a = netip.MustParseAddr(tt.addr)
		}
		var want []netip.Addr
		for _, w := range tt.want {
			want = append(want, netip.MustParseAddr(w))
		}
		if got := EmbeddedIPv4(a); !slices.Equal(got, want) {
			t.Errorf("EmbeddedIPv4(%s) = %v, want %v", tt.addr, got, want)
		}
		// Canonical fills the field from Addr, whatever the host sent.
		r := Canonical(Request{Op: OpTCPConnect, Addr: a, EmbeddedIPv4: []netip.Addr{netip.MustParseAddr("192.0.2.1")}})
		if !slices.Equal(r.EmbeddedIPv4, want) {
			t.Errorf("Canonical(%s).EmbeddedIPv4 = %v, want %v", tt.addr, r.EmbeddedIPv4, want)
		}
	}
}

// A deny rule for an IPv4 range matches every IPv6 form that embeds an
// address in it; an allow rule (Match) matches none of them unless it
// names the IPv6 form.
func TestMatchDenyEmbedded(t *testing.T) {
	rules, err := ParseRules([]string{"tcp://127.0.0.0/8", "udp://127.0.0.3:53", "tcp://[64:ff9b::/96]:8443"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range embeddedForms {
		r := Canonical(Request{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr(f.addr), Port: 443})
		if !rules[0].MatchDeny(&r) {
			t.Errorf("deny tcp://127.0.0.0/8 does not match %s", f.addr)
		}
		if rules[0].Match(&r) {
			t.Errorf("allow tcp://127.0.0.0/8 matches %s", f.addr)
		}
		r.Op, r.Proto = OpUDPSend, "udp"
		if rules[1].MatchDeny(&r) {
			t.Errorf("udp://127.0.0.3:53 matches %s port 443", f.addr)
		}
		r.Port = 53
		if !rules[1].MatchDeny(&r) || rules[1].Match(&r) {
			t.Errorf("udp://127.0.0.3:53 on %s:53: deny %v, allow %v", f.addr, rules[1].MatchDeny(&r), rules[1].Match(&r))
		}
		// Direction still counts: a connect rule never matches a bind.
		r.Op = OpUDPBind
		if rules[1].MatchDeny(&r) {
			t.Errorf("connect rule matches udp.bind of %s", f.addr)
		}
	}
	// Explicitly allowed IPv6 form.
	r := Canonical(Request{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("64:ff9b::7f00:3"), Port: 8443})
	if !rules[2].Match(&r) {
		t.Error("tcp://[64:ff9b::/96]:8443 does not allow 64:ff9b::7f00:3")
	}
	// Names and dns ops are not affected.
	d := Canonical(Request{Op: OpDNSAnswer, Name: "x.test", Addr: netip.MustParseAddr("64:ff9b::7f00:3")})
	if rules[0].MatchDeny(&d) {
		t.Error("connect rule matches dns.answer")
	}
}

// The wire carries embedded_ipv4 after port; both parsers read it back.
func TestEmbeddedIPv4Wire(t *testing.T) {
	r := Canonical(Request{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("2001:0:7f00:3::1"), Port: 443, Names: []string{"a.test"}, TimeMs: 5})
	data := AppendRequestJSON(nil, &r)
	const want = `{"op":"tcp.connect","proto":"tcp","addr":"2001:0:7f00:3::1","port":443,"embedded_ipv4":["255.255.255.254","127.0.0.3"],"names":["a.test"],"time_ms":5}`
	if string(data) != want {
		t.Fatalf("JSON %s\nwant %s", data, want)
	}
	var fast Request
	if !parseRequestFast(data, &fast, nil) || !slices.Equal(fast.EmbeddedIPv4, r.EmbeddedIPv4) || !sameRequest(&fast, &r) {
		t.Errorf("fast path: %+v", fast)
	}
	spaced := strings.ReplaceAll(string(data), ",", ", ")
	var slow Request
	if err := ParseRequestJSON([]byte(spaced), &slow); err != nil || !slices.Equal(slow.EmbeddedIPv4, r.EmbeddedIPv4) || !sameRequest(&slow, &r) {
		t.Errorf("general path: %+v, %v", slow, err)
	}
	for _, bad := range []string{`["::1"]`, `["x"]`, `[1]`, `"127.0.0.1"`, `["127.0.0.1",]`} {
		in := `{"op":"tcp.connect","embedded_ipv4":` + bad + `}`
		var x Request
		if err := ParseRequestJSON([]byte(in), &x); err == nil {
			t.Errorf("%s parsed: %+v", in, x)
		}
	}
	// The binary encoding does not carry it; Canonical derives it again.
	bin, ok := AppendRequestBinary(nil, &r)
	var b Request
	if !ok || ParseRequestBinary(bin, &b) != nil {
		t.Fatal("binary round trip failed")
	}
	if b = Canonical(b); !slices.Equal(b.EmbeddedIPv4, r.EmbeddedIPv4) {
		t.Errorf("binary + Canonical: %v", b.EmbeddedIPv4)
	}
}
