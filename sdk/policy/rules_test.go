package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestHostPatternMatchName(t *testing.T) {
	tests := []struct {
		pattern string
		name    string
		want    bool
	}{
		{"*.example.test", "a.example.test", true},
		{"*.example.test", "a.b.example.test", true},
		{"*.example.test", "example.test", false},     // never the apex
		{"*.example.test", "badexample.test", false},  // never a bare suffix
		{"*.example.test", ".example.test", false},    // not a name
		{"*.example.test", "a..example.test", false},  // empty label
		{"*.example.test", "a.example.test.x", false}, // suffix must end the name
		{"*.Example.TEST.", "a.example.test", true},   // pattern canonicalised
		{"api.example.test", "api.example.test", true},
		{"api.example.test", "x.api.example.test", false},
		{"*", "anything.at.all", true},
		{"10.0.0.0/8", "10.example", false},
	}
	for _, tt := range tests {
		h, err := ParseHostPattern(tt.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tt.pattern, err)
		}
		if got := h.MatchName(tt.name); got != tt.want {
			t.Errorf("%q.MatchName(%q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestHostPatternMatchAddr(t *testing.T) {
	tests := []struct {
		pattern string
		addr    string
		want    bool
	}{
		{"10.0.0.0/8", "10.1.2.3", true},
		{"10.0.0.0/8", "::ffff:10.1.2.3", true}, // unmapped before the test
		{"10.0.0.0/8", "11.0.0.0", false},
		{"2001:db8::/32", "2001:db8:1::1", true},
		{"[2001:db8::/32]", "2001:db9::1", false},
		{"192.0.2.1", "192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"::ffff:192.0.2.1", "192.0.2.1", true}, // a mapped literal is unmapped
		{"[::1]", "::1", true},
		{"*", "203.0.113.1", true},
		{"fe80::/10", "fe80::1%eth0", true},
		{"example.test", "192.0.2.1", false},
	}
	for _, tt := range tests {
		h, err := ParseHostPattern(tt.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tt.pattern, err)
		}
		if got := h.MatchAddr(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("%q.MatchAddr(%s) = %v, want %v", tt.pattern, tt.addr, got, tt.want)
		}
	}
}

func TestParseHostPatternErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty host"},
		{"*example.test", "wildcard must be a whole first label"},
		{"a.*.test", "wildcard must be a whole first label"},
		{"*.*.test", `invalid character '*'`},
		{"10.1.2.3/8", "did you mean 10.0.0.0/8?"},
		{"10.0.0.0/33", "bad CIDR"},
		{"1.2.3", "bad IP address"},
		{"1.2.3.256", "bad IP address"},
		{"fe80::1%eth0", "zoned"},
		{"::ffff:10.0.0.0/104", "IPv4-mapped prefix"},
		{"[10.0.0.1]", "brackets are only for IPv6"},
		{"[::1", "missing ']'"},
		{"exa mple.test", "invalid character ' '"},
		{"a..b", "empty label"},
		{strings.Repeat("a", 64) + ".test", "label longer than 63"},
		{strings.Repeat("a.", 127) + "ab", "longer than 253"},
	}
	for _, tt := range tests {
		_, err := ParseHostPattern(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseHostPattern(%q) err = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String() of the set
		match   []uint16
		nomatch []uint16
		err     string
	}{
		{in: "443", want: "443", match: []uint16{443}, nomatch: []uint16{0, 442, 444}},
		{in: "80,443", want: "80,443", match: []uint16{80, 443}, nomatch: []uint16{81}},
		{in: "8000-8999", want: "8000-8999", match: []uint16{8000, 8500, 8999}, nomatch: []uint16{7999, 9000}},
		{in: "22,8000-8001", want: "22,8000-8001", match: []uint16{22, 8001}, nomatch: []uint16{23}},
		{in: "*", want: "*", match: []uint16{0, 1, 65535}},
		{in: "0-65535", want: "0-65535", match: []uint16{0, 65535}},
		{in: "", err: "empty port list"},
		{in: "65536", err: `bad port "65536"`},
		{in: "-1", err: `bad port ""`},
		{in: "9-8", err: "ends before it starts"},
		{in: "80,", err: `bad port ""`},
		{in: "080", err: `bad port "080"`},
		{in: "http", err: `bad port "http"`},
	}
	for _, tt := range tests {
		ps, err := ParsePorts(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParsePorts(%q) err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParsePorts(%q): %v", tt.in, err)
		}
		if ps.String() != tt.want {
			t.Errorf("ParsePorts(%q).String() = %q", tt.in, ps.String())
		}
		for _, p := range tt.match {
			if !ps.Match(p) {
				t.Errorf("%q should match %d", tt.in, p)
			}
		}
		for _, p := range tt.nomatch {
			if ps.Match(p) {
				t.Errorf("%q should not match %d", tt.in, p)
			}
		}
	}
}

func TestParseRule(t *testing.T) {
	tests := []struct {
		in    string
		dir   Direction
		proto string
		host  string
		ports string
	}{
		{"tcp://api.example.test:443", DirConnect, "tcp", "api.example.test", "443"},
		{"connect udp://*.example.test", DirConnect, "udp", "*.example.test", "*"},
		{"bind tcp://127.0.0.1:8080", DirBind, "tcp", "127.0.0.1", "8080"},
		{"accept *://10.0.0.0/8:1000-2000", DirAccept, "*", "10.0.0.0/8", "1000-2000"},
		{"tcp://[2001:db8::/32]:80,443", DirConnect, "tcp", "[2001:db8::/32]", "80,443"},
		{"tcp://[::1]:443", DirConnect, "tcp", "[::1]", "443"},
		{"tcp://[::1]", DirConnect, "tcp", "[::1]", "*"},
		{"tcp://*:*", DirConnect, "tcp", "*", "*"},
		{"  tcp://API.Example.Test.:443 ", DirConnect, "tcp", "api.example.test", "443"},
		{"dns://*.example.test", DirDNS, "", "*.example.test", "*"},
		{"dns://*", DirDNS, "", "*", "*"},
	}
	for _, tt := range tests {
		r, err := ParseRule(tt.in)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tt.in, err)
			continue
		}
		if r.Dir != tt.dir || r.Proto != tt.proto || r.Host.String() != tt.host || r.Ports.String() != tt.ports || r.Text != tt.in {
			t.Errorf("ParseRule(%q) = %v %q %q %q %q", tt.in, r.Dir, r.Proto, r.Host.String(), r.Ports.String(), r.Text)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"api.example.test:443", `missing "://"`},
		{"http://example.test", `unknown protocol "http"`},
		{"outbound tcp://x.test", `unknown direction "outbound"`},
		{"tcp://::1:443", "IPv6 addresses must be in brackets"},
		{"tcp://[::1]443", `unexpected "443" after ']'`},
		{"tcp://example.test:", "empty port list"},
		{"tcp://example.test:99999", `bad port "99999"`},
		{"tcp://*example.test", "wildcard must be a whole first label"},
		{"bind tcp://localhost:8080", "bind rules match addresses, not names"},
		{"accept tcp://*.example.test", "accept rules match addresses, not names"},
		{"dns://10.0.0.0/8", "dns rules match names"},
		{"dns://example.test:53", "dns rules take no ports"},
		{"connect dns://example.test", "dns rules take no direction"},
		{"tcp://a b", "unexpected space"},
		{"tcp://", "empty host"},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRule(%q) err = %v, want %q", tt.in, err, tt.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), "rule \""+tt.in+"\": ") {
			t.Errorf("error %q does not quote the rule", err)
		}
	}
}

func TestParseRulesReportsEveryError(t *testing.T) {
	_, err := ParseRules([]string{"tcp://ok.test:443", "bad1", "tcp://ok2.test", "udp://x:0-"})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, `rule "bad1"`) || !strings.Contains(msg, `rule "udp://x:0-"`) || strings.Contains(msg, "ok.test") {
		t.Errorf("error = %q", msg)
	}
}

func TestRuleMatch(t *testing.T) {
	a := netip.MustParseAddr
	connect := func(proto string, addr string, port uint16, names ...string) Request {
		op := OpTCPConnect
		if proto == "udp" {
			op = OpUDPConnect
		}
		return Request{Op: op, Proto: proto, Addr: a(addr), Port: port, Names: names}
	}
	tests := []struct {
		rule string
		req  Request
		want bool
	}{
		{"tcp://api.example.test:443", connect("tcp", "198.51.100.10", 443, "api.example.test"), true},
		{"tcp://api.example.test:443", connect("tcp", "198.51.100.10", 443, "other.test", "api.example.test"), true},
		{"tcp://api.example.test:443", connect("tcp", "198.51.100.10", 443), false}, // no binding
		{"tcp://api.example.test:443", connect("tcp", "198.51.100.10", 80, "api.example.test"), false},
		{"tcp://api.example.test:443", connect("udp", "198.51.100.10", 443, "api.example.test"), false},
		{"*://api.example.test:443", connect("udp", "198.51.100.10", 443, "api.example.test"), true},
		{"udp://*.example.test:53", Request{Op: OpUDPSend, Proto: "udp", Addr: a("192.0.2.53"), Port: 53, Names: []string{"ns.example.test"}}, true},
		{"tcp://10.0.0.0/8", connect("tcp", "10.9.9.9", 22), true},
		{"tcp://10.0.0.0/8", connect("tcp", "::ffff:10.9.9.9", 22), true},
		{"tcp://[2001:db8::/32]:443", connect("tcp", "2001:db8::5", 443), true},
		{"tcp://*:443", connect("tcp", "203.0.113.1", 443), true},
		{"tcp://*:443", Request{Op: OpTCPBind, Proto: "tcp", Addr: a("0.0.0.0"), Port: 443}, false},
		{"bind tcp://127.0.0.1:8080", Request{Op: OpTCPBind, Proto: "tcp", Addr: a("127.0.0.1"), Port: 8080}, true},
		{"bind tcp://127.0.0.1:8080", Request{Op: OpTCPListen, Proto: "tcp", Addr: a("127.0.0.1"), Port: 8080}, true},
		{"bind tcp://127.0.0.1:8080", Request{Op: OpUDPBind, Proto: "udp", Addr: a("127.0.0.1"), Port: 8080}, false},
		{"bind tcp://127.0.0.1:8080", connect("tcp", "127.0.0.1", 8080), false},
		{"accept tcp://203.0.113.0/24", Request{Op: OpTCPAccept, Proto: "tcp", Addr: a("203.0.113.9"), Port: 5555}, true},
		{"accept udp://*", Request{Op: OpUDPRecv, Proto: "udp", Addr: a("192.0.2.1"), Port: 53}, true},
		{"accept udp://*", Request{Op: OpTCPAccept, Proto: "tcp", Addr: a("192.0.2.1"), Port: 53}, false},
		// DNS through connect rules and dns:// rules.
		{"tcp://api.example.test:443", Request{Op: OpDNSLookup, Name: "api.example.test"}, true},
		{"tcp://*.example.test:443", Request{Op: OpDNSAnswer, Name: "a.example.test", Addr: a("192.0.2.1")}, true},
		{"tcp://*.example.test:443", Request{Op: OpDNSLookup, Name: "example.test"}, false},
		{"tcp://192.0.2.1:443", Request{Op: OpDNSLookup, Name: "api.example.test"}, false},
		{"bind tcp://*:80", Request{Op: OpDNSLookup, Name: "api.example.test"}, false},
		{"dns://*.example.test", Request{Op: OpDNSLookup, Name: "x.example.test"}, true},
		{"dns://*.example.test", connect("tcp", "192.0.2.1", 443, "x.example.test"), false},
		{"dns://*", Request{Op: OpDNSLookup, Name: "anything.test"}, true},
		{"dns://*", Request{Op: OpDNSLookup}, false},
		{"tcp://*", Request{Op: "tcp.teleport", Addr: a("192.0.2.1")}, false},
	}
	for _, tt := range tests {
		r, err := ParseRule(tt.rule)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Match(&tt.req); got != tt.want {
			t.Errorf("%q.Match(%+v) = %v, want %v", tt.rule, tt.req, got, tt.want)
		}
	}
}

func TestCanonical(t *testing.T) {
	names := []string{"API.Example.Test.", "ok.test"}
	r := Canonical(Request{
		Op: OpTCPConnect, Addr: netip.MustParseAddr("::ffff:10.0.0.1"), Names: names, Name: "X.Test.",
		Local: netip.MustParseAddrPort("[::ffff:127.0.0.1]:80"),
	})
	if r.Addr != netip.MustParseAddr("10.0.0.1") || r.Name != "x.test" || r.Names[0] != "api.example.test" ||
		r.Names[1] != "ok.test" || r.Local != netip.MustParseAddrPort("127.0.0.1:80") {
		t.Errorf("Canonical = %+v", r)
	}
	if names[0] != "API.Example.Test." {
		t.Error("Canonical modified the caller's slice")
	}
}

func TestRuleSet(t *testing.T) {
	rs, err := ParseRules([]string{"tcp://10.0.0.0/8:22", "udp://*.example.test:53", "bind tcp://127.0.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	got := rs.Ops()
	want := []Op{OpDNSLookup, OpDNSAnswer, OpTCPConnect, OpTCPBind, OpTCPListen, OpUDPConnect, OpUDPSend}
	if !slices.Equal(got, want) {
		t.Errorf("Ops() = %v, want %v", got, want)
	}
	req := Request{Op: OpUDPSend, Proto: "udp", Addr: netip.MustParseAddr("192.0.2.1"), Port: 53, Names: []string{"ns.example.test"}}
	if r := rs.First(&req); r == nil || r.Text != "udp://*.example.test:53" {
		t.Errorf("First = %v", r)
	}
	req.Port = 54
	if r := rs.First(&req); r != nil {
		t.Errorf("First = %v, want nil", r)
	}
	onlyAddrs, _ := ParseRules([]string{"tcp://10.0.0.0/8"})
	if got := onlyAddrs.Ops(); !slices.Equal(got, []Op{OpTCPConnect}) {
		t.Errorf("address-only rules: Ops() = %v", got)
	}
}

func TestRuleSetPortFreeOps(t *testing.T) {
	tests := []struct {
		rules []string
		want  []Op
	}{
		{nil, Ops},
		{[]string{"accept tcp://127.0.0.1", "bind tcp://127.0.0.1:8080"},
			[]Op{OpDNSLookup, OpDNSAnswer, OpTCPConnect, OpTCPAccept, OpUDPBind, OpUDPConnect, OpUDPSend, OpUDPRecv}},
		{[]string{"accept tcp://127.0.0.1:1000-2000"},
			[]Op{OpDNSLookup, OpDNSAnswer, OpTCPConnect, OpTCPBind, OpTCPListen, OpUDPBind, OpUDPConnect, OpUDPSend, OpUDPRecv}},
		{[]string{"accept *://10.0.0.0/8:*", "accept udp://[::1]:53"},
			[]Op{OpDNSLookup, OpDNSAnswer, OpTCPConnect, OpTCPBind, OpTCPListen, OpTCPAccept, OpUDPBind, OpUDPConnect, OpUDPSend}},
		{[]string{"*://api.example.test:443", "dns://*.example.test"},
			[]Op{OpDNSLookup, OpDNSAnswer, OpTCPBind, OpTCPListen, OpTCPAccept, OpUDPBind, OpUDPRecv}},
	}
	for _, tt := range tests {
		rs, err := ParseRules(tt.rules)
		if err != nil {
			t.Fatal(err)
		}
		got := rs.PortFreeOps(Ops)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %v, want %v", tt.rules, got, tt.want)
		}
		// The declaration is true: on a port-free op, the first matching
		// rule is the same for every port.
		for _, op := range got {
			for _, addr := range []string{"127.0.0.1", "10.1.2.3", "::1", "192.0.2.1"} {
				req := Request{Op: op, Addr: netip.MustParseAddr(addr), Names: []string{"api.example.test"}, Name: "api.example.test"}
				var first *Rule
				for i, port := range []uint16{0, 53, 443, 1000, 1500, 2000, 8080, 40000, 65535} {
					req.Port = port
					if r := rs.First(&req); i == 0 {
						first = r
					} else if r != first {
						t.Errorf("%q: %s from %s port %d matches %v, port 0 %v", tt.rules, op, addr, port, r, first)
					}
				}
			}
		}
	}
	if got := (RuleSet{}).PortFreeOps([]Op{"no.such.op"}); got != nil {
		t.Errorf("unknown op declared port-free: %v", got)
	}
}

// FuzzPortFreeOps checks that the declaration is true: on an op
// PortFreeOps returns, the first matching rule of any rule list is the same
// for every port, so a verdict cached without the port is the verdict the
// plugin would have given.
func FuzzPortFreeOps(f *testing.F) {
	f.Add("accept tcp://127.0.0.1", "bind tcp://127.0.0.1:8080", uint8(5), []byte{127, 0, 0, 1}, uint16(40000), uint16(40001))
	f.Add("accept *://10.0.0.0/8:1000-2000", "accept udp://[::1]", uint8(9), []byte{10, 1, 2, 3}, uint16(999), uint16(1000))
	f.Add("*://api.example.test:443", "dns://*.example.test", uint8(0), []byte{192, 0, 2, 1}, uint16(443), uint16(80))
	f.Add("udp://192.0.2.0/24", "connect tcp://*:25", uint8(8), []byte{192, 0, 2, 9}, uint16(53), uint16(5353))
	f.Fuzz(func(t *testing.T, rule1, rule2 string, opIdx uint8, addr []byte, p1, p2 uint16) {
		// Keep the rules that parse: the fuzzer seldom mutates one rule
		// without breaking the other.
		var rs RuleSet
		for _, s := range []string{rule1, rule2} {
			if r, err := ParseRule(s); err == nil {
				rs = append(rs, r)
			}
		}
		op := Ops[int(opIdx)%len(Ops)]
		if !slices.Contains(rs.PortFreeOps(Ops), op) {
			return
		}
		a, ok := netip.AddrFromSlice(addr)
		if !ok {
			return
		}
		req := Request{Op: op, Addr: a.Unmap(), Names: []string{"api.example.test", "x.svc.test"}, Name: "api.example.test"}
		req.Port = p1
		r1 := rs.First(&req)
		req.Port = p2
		if r2 := rs.First(&req); r1 != r2 {
			t.Fatalf("%q %q: %s from %s matches %v on port %d, %v on port %d", rule1, rule2, op, a, r1, p1, r2, p2)
		}
	})
}

// Index is the position of First's rule, -1 when none matches.
func TestRuleSetIndex(t *testing.T) {
	rs, err := ParseRules([]string{"udp://*:53", "tcp://192.0.2.0/24:443", "tcp://*:443"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  Request
		want int
	}{
		{Request{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("192.0.2.7"), Port: 443}, 1},
		{Request{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("198.51.100.7"), Port: 443}, 2},
		{Request{Op: OpUDPSend, Proto: "udp", Addr: netip.MustParseAddr("192.0.2.7"), Port: 53}, 0},
		{Request{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("192.0.2.7"), Port: 80}, -1},
		{Request{Op: "tcp.nonsense", Port: 443}, -1},
	} {
		got := rs.Index(&c.req)
		if got != c.want {
			t.Errorf("%s %s:%d: index %d, want %d", c.req.Op, c.req.Addr, c.req.Port, got, c.want)
		}
		if f := rs.First(&c.req); (f == nil) != (got < 0) || f != nil && f != &rs[got] {
			t.Errorf("%s %s:%d: First %v, Index %d", c.req.Op, c.req.Addr, c.req.Port, f, got)
		}
	}
}
