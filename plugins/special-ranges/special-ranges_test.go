package specialranges

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

func TestDecide(t *testing.T) {
	s, err := newSpecialRanges(config{Except: []string{"198.51.100.0/24", "[fd00:1234::/32]", "10.9.9.9"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		op     policy.Op
		addr   string
		want   policy.Action
		reason string
	}{
		{policy.OpTCPConnect, "8.8.8.8", policy.ActionAbstain, ""},
		{policy.OpTCPConnect, "2606:4700::1111", policy.ActionAbstain, ""},
		{policy.OpTCPConnect, "127.0.0.1", policy.ActionDeny, "127.0.0.1 is loopback"},
		{policy.OpTCPConnect, "::ffff:127.0.0.1", policy.ActionDeny, "127.0.0.1 is loopback"}, // unmapped by Canonical
		{policy.OpTCPConnect, "::1", policy.ActionDeny, "loopback"},
		{policy.OpUDPSend, "10.0.0.1", policy.ActionDeny, "private"},
		{policy.OpUDPConnect, "169.254.169.254", policy.ActionDeny, "metadata"},
		{policy.OpTCPConnect, "fd00:ec2::254", policy.ActionDeny, "metadata"},
		{policy.OpTCPConnect, "100.64.0.1", policy.ActionDeny, "cgnat"},
		{policy.OpTCPConnect, "0.0.0.0", policy.ActionDeny, "unspecified"},
		{policy.OpUDPSend, "224.0.0.251", policy.ActionDeny, "multicast"},
		{policy.OpUDPSend, "255.255.255.255", policy.ActionDeny, "broadcast"},
		{policy.OpTCPConnect, "192.0.2.1", policy.ActionDeny, "documentation"},
		{policy.OpTCPConnect, "240.0.0.1", policy.ActionDeny, "reserved"},
		{policy.OpTCPConnect, "fe80::1", policy.ActionDeny, "link-local"},
		{policy.OpTCPConnect, "4000::1", policy.ActionDeny, "not-global-unicast-v6"},
		{policy.OpDNSAnswer, "10.1.2.3", policy.ActionDeny, "private"},
		// Embedded IPv4.
		{policy.OpTCPConnect, "64:ff9b::7f00:1", policy.ActionDeny, "embeds 127.0.0.1"},
		{policy.OpTCPConnect, "64:ff9b::a9fe:a9fe", policy.ActionDeny, "embeds 169.254.169.254"},
		{policy.OpTCPConnect, "64:ff9b::808:808", policy.ActionAbstain, ""}, // NAT64 to 8.8.8.8
		{policy.OpTCPConnect, "2002:0a00:0001::1", policy.ActionDeny, "embeds 10.0.0.1"},
		{policy.OpTCPConnect, "2002:0808:0808::1", policy.ActionAbstain, ""},
		{policy.OpTCPConnect, "2001:0:4136:e378:8000:63bf:80ff:fffe", policy.ActionDeny, "embeds 127.0.0.1"}, // Teredo, inverted
		{policy.OpTCPConnect, "2001:0:7f00:1:8000:63bf:f7f7:f7f7", policy.ActionDeny, "embeds 127.0.0.1"},    // Teredo server 127.0.0.1, client 8.8.8.8
		{policy.OpTCPConnect, "2001:0:808:808:8000:63bf:f7f7:f7f7", policy.ActionAbstain, ""},                // Teredo, both public
		{policy.OpTCPConnect, "64:ff9b:1:7f00:0:100::", policy.ActionDeny, "embeds 127.0.0.1"},               // local-use NAT64, /48 layout
		{policy.OpTCPConnect, "64:ff9b:1:808:8:800::", policy.ActionAbstain, ""},                             // local-use NAT64 to 8.8.8.8
		// Exceptions.
		{policy.OpTCPConnect, "198.51.100.10", policy.ActionAbstain, ""},
		{policy.OpTCPConnect, "fd00:1234::1", policy.ActionAbstain, ""},
		{policy.OpTCPConnect, "64:ff9b::a09:909", policy.ActionAbstain, ""}, // embeds the excepted 10.9.9.9
		{policy.OpTCPConnect, "10.9.9.8", policy.ActionDeny, "private"},
		// Not its business.
		{policy.OpTCPBind, "127.0.0.1", policy.ActionAbstain, ""},
		{policy.OpTCPListen, "0.0.0.0", policy.ActionAbstain, ""},
		{policy.OpTCPAccept, "10.0.0.1", policy.ActionAbstain, ""},
		{policy.OpUDPRecv, "10.0.0.1", policy.ActionAbstain, ""},
		{policy.OpUDPBind, "0.0.0.0", policy.ActionAbstain, ""},
	}
	for _, tt := range tests {
		req := policy.Canonical(policy.Request{Op: tt.op, Addr: netip.MustParseAddr(tt.addr), Port: 443})
		v := s.decide(&req)
		if v.Verdict != tt.want || !strings.Contains(v.Reason, tt.reason) {
			t.Errorf("%s %s: %+v, want %s %q", tt.op, tt.addr, v, tt.want, tt.reason)
		}
	}
	if v := s.decide(&policy.Request{Op: policy.OpTCPConnect}); v.Verdict != policy.ActionDeny {
		t.Errorf("no address: %+v", v)
	}
	if v := s.decide(&policy.Request{Op: policy.OpDNSLookup, Name: "localhost"}); v.Verdict != policy.ActionAbstain {
		t.Errorf("lookup: %+v", v)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := newSpecialRanges(config{Except: []string{"10.0.0.1/8", "example.test", "10.0.0.0/8"}, CacheTTL: "x"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`except "10.0.0.1/8": CIDR has bits set`, `except "example.test": want an IP address or CIDR`, `cache_ttl "x"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestIPv4Compatible(t *testing.T) {
	s, _ := newSpecialRanges(config{})
	// ::8.8.8.8 is a deprecated IPv4-compatible address, not a translator
	// address: denied as reserved, whatever it embeds.
	if v := s.decide(&policy.Request{Op: policy.OpTCPConnect, Addr: netip.MustParseAddr("::808:808")}); v.Verdict != policy.ActionDeny {
		t.Errorf("got %+v", v)
	}
}

func TestReadConfig(t *testing.T) {
	defer policy.SetConfig(nil)
	policy.SetConfig([]byte(`{"except":["10.0.0.0/8"],"excpet":[]}`))
	if _, err := readConfig(); err == nil || !strings.Contains(err.Error(), `unknown key "excpet"`) {
		t.Errorf("typo: %v", err)
	}
}

// TestScopedExceptions: allowlist-style except entries open only their
// protocol and ports: an exception for a UDP/53 resolver does not open
// TCP/443 (or TCP/53) to it.
func TestScopedExceptions(t *testing.T) {
	s, err := newSpecialRanges(config{Except: []string{
		"udp://192.0.2.53:53", "tcp://198.51.100.0/24", "*://[fd00:1234::/32]:8000-8080", "connect tcp://10.1.1.1:443,8443",
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		op   policy.Op
		addr string
		port uint16
		want policy.Action
	}{
		{policy.OpUDPSend, "192.0.2.53", 53, policy.ActionAbstain},
		{policy.OpUDPConnect, "192.0.2.53", 53, policy.ActionAbstain},
		{policy.OpTCPConnect, "192.0.2.53", 443, policy.ActionDeny},
		{policy.OpTCPConnect, "192.0.2.53", 53, policy.ActionDeny},
		{policy.OpUDPSend, "192.0.2.53", 443, policy.ActionDeny},
		{policy.OpUDPSend, "192.0.2.54", 53, policy.ActionDeny},
		{policy.OpTCPConnect, "198.51.100.7", 22, policy.ActionAbstain},
		{policy.OpUDPSend, "198.51.100.7", 53, policy.ActionDeny},
		{policy.OpTCPConnect, "fd00:1234::5", 8080, policy.ActionAbstain},
		{policy.OpUDPSend, "fd00:1234::5", 8000, policy.ActionAbstain},
		{policy.OpTCPConnect, "fd00:1234::5", 8081, policy.ActionDeny},
		{policy.OpTCPConnect, "10.1.1.1", 8443, policy.ActionAbstain},
		{policy.OpTCPConnect, "10.1.1.1", 80, policy.ActionDeny},
		// Embedded IPv4 is scoped the same way.
		{policy.OpUDPSend, "64:ff9b::c000:235", 53, policy.ActionAbstain},
		{policy.OpTCPConnect, "64:ff9b::c000:235", 443, policy.ActionDeny},
		// A DNS answer only binds a name to the address; the connect
		// that follows is scoped.
		{policy.OpDNSAnswer, "192.0.2.53", 0, policy.ActionAbstain},
		{policy.OpDNSAnswer, "10.1.1.1", 0, policy.ActionAbstain},
		{policy.OpDNSAnswer, "10.1.1.2", 0, policy.ActionDeny},
	}
	for _, tt := range tests {
		req := policy.Canonical(policy.Request{Op: tt.op, Addr: netip.MustParseAddr(tt.addr), Port: tt.port})
		if v := s.decide(&req); v.Verdict != tt.want {
			t.Errorf("%s %s port %d: %+v, want %s", tt.op, tt.addr, tt.port, v, tt.want)
		}
	}
}

func TestScopedExceptionErrors(t *testing.T) {
	_, err := newSpecialRanges(config{Except: []string{
		"tcp://db.internal:5432", "udp://*:53", "dns://example.test", "bind tcp://10.0.0.1:80", "tcp://10.0.0.1:99999", "ftp://10.0.0.1",
	}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`except "tcp://db.internal:5432": want an IP address or CIDR as host`,
		`except "udp://*:53": want an IP address or CIDR as host`,
		`except "dns://example.test": dns rules are not exceptions`,
		`except "bind tcp://10.0.0.1:80": only connect rules`,
		`except "tcp://10.0.0.1:99999": `,
		`except "ftp://10.0.0.1": unknown protocol "ftp"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 6 {
		t.Errorf("%d problems, want 6:\n%v", n, err)
	}
}

// TestDescribeIgnoresPort: the plugin declares ignores_port for connects
// only while no exception names ports.
func TestDescribeIgnoresPort(t *testing.T) {
	orig := load
	defer func() { load = orig; policy.SetConfig(nil) }()
	for _, tc := range []struct {
		config string
		want   int
	}{
		{`{"except":["10.0.0.0/8","tcp://198.51.100.0/24"]}`, len(ops)},
		{`{"except":["udp://192.0.2.53:53"]}`, 1},
	} {
		policy.SetConfig([]byte(tc.config))
		load = sync.OnceValues(func() (*specialRanges, error) {
			c, err := readConfig()
			if err != nil {
				return nil, err
			}
			return newSpecialRanges(c)
		})
		if d := Describe(); len(d.IgnoresPort) != tc.want {
			t.Errorf("%s: ignores_port %v", tc.config, d.IgnoresPort)
		}
	}
}
