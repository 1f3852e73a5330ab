package denylist

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

func TestDecide(t *testing.T) {
	rules := []string{"tcp://api.example.test:25", "*://10.0.0.0/8:22", "dns://*.exfil.test", "bind *://0.0.0.0", "accept udp://[2001:db8::/32]"}
	d, err := newDenylist(config{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	tests := []struct {
		name string
		req  policy.Request
		want policy.Action
		rule string
	}{
		{"name and port", policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("192.0.2.1"), Port: 25, Names: []string{"api.example.test"}}, policy.ActionDeny, "tcp://api.example.test:25"},
		{"other port", policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("192.0.2.1"), Port: 443, Names: []string{"api.example.test"}}, policy.ActionAbstain, ""},
		{"lookup not denied by connect rule", policy.Request{Op: policy.OpDNSLookup, Name: "api.example.test"}, policy.ActionAbstain, ""},
		{"cidr any proto", policy.Request{Op: policy.OpUDPSend, Proto: "udp", Addr: ip("10.2.3.4"), Port: 22}, policy.ActionDeny, "*://10.0.0.0/8:22"},
		{"mapped address", policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("::ffff:10.2.3.4"), Port: 22}, policy.ActionDeny, "*://10.0.0.0/8:22"},
		{"dns rule lookup", policy.Request{Op: policy.OpDNSLookup, Name: "x.exfil.test"}, policy.ActionDeny, "dns://*.exfil.test"},
		{"dns rule answer", policy.Request{Op: policy.OpDNSAnswer, Name: "a.b.exfil.test", Addr: ip("192.0.2.1")}, policy.ActionDeny, "dns://*.exfil.test"},
		{"dns apex", policy.Request{Op: policy.OpDNSLookup, Name: "exfil.test"}, policy.ActionAbstain, ""},
		{"bind wildcard", policy.Request{Op: policy.OpUDPBind, Proto: "udp", Addr: ip("0.0.0.0"), Port: 53}, policy.ActionDeny, "bind *://0.0.0.0"},
		{"bind loopback", policy.Request{Op: policy.OpTCPBind, Proto: "tcp", Addr: ip("127.0.0.1"), Port: 53}, policy.ActionAbstain, ""},
		{"recv", policy.Request{Op: policy.OpUDPRecv, Proto: "udp", Addr: ip("2001:db8::1"), Port: 53}, policy.ActionDeny, "accept udp://[2001:db8::/32]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := policy.Canonical(tt.req)
			v := d.decide(&req)
			if v.Verdict != tt.want {
				t.Fatalf("verdict %+v, want %s", v, tt.want)
			}
			if tt.rule != "" && !strings.Contains(v.Reason, `"`+tt.rule+`"`) {
				t.Errorf("reason %q does not quote %q", v.Reason, tt.rule)
			}
			if tt.want == policy.ActionDeny && (v.CacheTTLMs == 0) != isDNS(tt.req.Op) {
				t.Errorf("cache_ttl_ms = %d for %s", v.CacheTTLMs, tt.req.Op)
			}
		})
	}
}

func TestOps(t *testing.T) {
	rules := []string{"tcp://*.example.test:25"}
	d, err := newDenylist(config{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.ops(); !slices.Equal(got, []policy.Op{policy.OpTCPConnect}) {
		t.Errorf("ops = %v", got)
	}
}

func TestExports(t *testing.T) {
	Register() // what the plugin's package main does
	policy.SetConfig([]byte(`{"rules":["dns://*", "tcp://bad:port"]}`))
	defer policy.SetConfig(nil)
	var out struct{ Error string }
	if err := json.Unmarshal(policy.ValidateJSON(), &out); err != nil || !strings.Contains(out.Error, `rule "tcp://bad:port": bad port "port"`) {
		t.Errorf("validate: %+v %v", out, err)
	}
	// A bad config fails closed.
	if v := policy.Invoke(policy.Request{Op: policy.OpDNSLookup, Name: "a.test"}); v.Verdict != policy.ActionDeny || !strings.Contains(v.Reason, "bad config") {
		t.Errorf("decide with bad config: %+v", v)
	}
}

func TestReadConfig(t *testing.T) {
	defer policy.SetConfig(nil)
	policy.SetConfig([]byte(`{"rules":"tcp://a.test"}`))
	if _, err := readConfig(); err == nil || !strings.Contains(err.Error(), `"rules" must be a list of strings, not a string`) {
		t.Errorf("string rules: %v", err)
	}
}

func TestDescribeIgnoresPort(t *testing.T) {
	tests := []struct {
		rules []string
		want  []policy.Op
	}{
		{[]string{"accept tcp://192.0.2.0/24"}, []policy.Op{policy.OpTCPAccept}},
		{[]string{"accept tcp://192.0.2.0/24:22"}, nil},
		{[]string{"*://10.0.0.0/8:22", "dns://*.exfil.test"},
			[]policy.Op{policy.OpDNSLookup, policy.OpDNSAnswer}},
	}
	for _, tt := range tests {
		rules := tt.rules
		d, err := newDenylist(config{Rules: &rules})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.describe().IgnoresPort; !slices.Equal(got, tt.want) {
			t.Errorf("%q: ignores_port %v, want %v", tt.rules, got, tt.want)
		}
	}
}

func TestAbstainCacheable(t *testing.T) {
	rules := []string{"accept tcp://192.0.2.0/24", "dns://*.exfil.test"}
	d, err := newDenylist(config{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	if v := d.decide(&policy.Request{Op: policy.OpTCPAccept, Proto: "tcp", Addr: ip("127.0.0.1"), Port: 4000}); v.Verdict != policy.ActionAbstain || v.CacheTTLMs != 60000 {
		t.Errorf("accept from another peer: %+v", v)
	}
	if v := d.decide(&policy.Request{Op: policy.OpDNSLookup, Name: "x.test"}); v.Verdict != policy.ActionAbstain || v.CacheTTLMs != 0 {
		t.Errorf("lookup: %+v", v)
	}
}

// A deny rule for an IPv4 range denies every IPv6 form that embeds it.
func TestDecideEmbeddedIPv4(t *testing.T) {
	rules := []string{"tcp://127.0.0.0/8", "udp://10.0.0.0/8:53"}
	d, err := newDenylist(config{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forms127 {
		req := policy.Canonical(policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr(f), Port: 8080})
		v := d.decide(&req)
		if v.Verdict != policy.ActionDeny || !strings.Contains(v.Reason, `"tcp://127.0.0.0/8"`) || !strings.Contains(v.Reason, "127.0.0.3") {
			t.Errorf("%s: %+v, want denied by tcp://127.0.0.0/8 naming 127.0.0.3", f, v)
		}
		// Another protocol, or a range it does not embed: not denied.
		req.Op, req.Proto = policy.OpUDPSend, "udp"
		if v := d.decide(&req); v.Verdict != policy.ActionAbstain {
			t.Errorf("udp.send %s: %+v, want abstain", f, v)
		}
	}
	// NAT64 of a public address is not denied.
	req := policy.Canonical(policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("64:ff9b::808:808"), Port: 443})
	if v := d.decide(&req); v.Verdict != policy.ActionAbstain {
		t.Errorf("64:ff9b::808:808: %+v", v)
	}
}

var forms127 = []string{"64:ff9b::7f00:3", "64:ff9b:1:7f00:0:300::", "::127.0.0.3", "2002:7f00:3::1",
	"2001:0:4136:e378:8000:63bf:80ff:fffc", "2001:0:7f00:3::1"}
