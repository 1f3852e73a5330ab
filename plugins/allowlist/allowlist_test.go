package allowlist

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

func mustAllowlist(t *testing.T, rules ...string) *allowlist {
	t.Helper()
	a, err := newAllowlist(config{Rules: &rules})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDecide(t *testing.T) {
	a := mustAllowlist(t,
		"tcp://api.example.test:443",
		"*://*.svc.test:8000-8999",
		"udp://[2001:db8::/32]:53",
		"bind tcp://127.0.0.1:8080",
		"accept tcp://10.0.0.0/8",
		"dns://*.internal.test",
	)
	ip := netip.MustParseAddr
	tests := []struct {
		name string
		req  policy.Request
		want policy.Action
		rule string
	}{
		{"name binding", policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("198.51.100.10"), Port: 443, Names: []string{"api.example.test"}}, policy.ActionAllow, "tcp://api.example.test:443"},
		{"no binding", policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("198.51.100.10"), Port: 443}, policy.ActionAbstain, ""},
		{"wrong port", policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("198.51.100.10"), Port: 80, Names: []string{"api.example.test"}}, policy.ActionAbstain, ""},
		{"wildcard udp send", policy.Request{Op: policy.OpUDPSend, Proto: "udp", Addr: ip("192.0.2.7"), Port: 8053, Names: []string{"a.b.svc.test"}}, policy.ActionAllow, "*://*.svc.test:8000-8999"},
		{"wildcard not apex", policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: ip("192.0.2.7"), Port: 8053, Names: []string{"svc.test"}}, policy.ActionAbstain, ""},
		{"ipv6 cidr", policy.Request{Op: policy.OpUDPConnect, Proto: "udp", Addr: ip("2001:db8::53"), Port: 53}, policy.ActionAllow, "udp://[2001:db8::/32]:53"},
		{"bind", policy.Request{Op: policy.OpTCPBind, Proto: "tcp", Addr: ip("127.0.0.1"), Port: 8080}, policy.ActionAllow, "bind tcp://127.0.0.1:8080"},
		{"listen", policy.Request{Op: policy.OpTCPListen, Proto: "tcp", Addr: ip("127.0.0.1"), Port: 8080}, policy.ActionAllow, "bind tcp://127.0.0.1:8080"},
		{"bind other addr", policy.Request{Op: policy.OpTCPBind, Proto: "tcp", Addr: ip("0.0.0.0"), Port: 8080}, policy.ActionAbstain, ""},
		{"accept", policy.Request{Op: policy.OpTCPAccept, Proto: "tcp", Addr: ip("10.1.1.1"), Port: 40000, Local: netip.MustParseAddrPort("127.0.0.1:8080")}, policy.ActionAllow, "accept tcp://10.0.0.0/8"},
		{"recv not tcp", policy.Request{Op: policy.OpUDPRecv, Proto: "udp", Addr: ip("10.1.1.1"), Port: 53}, policy.ActionAbstain, ""},
		{"lookup via connect rule", policy.Request{Op: policy.OpDNSLookup, Name: "api.example.test"}, policy.ActionAllow, "tcp://api.example.test:443"},
		{"answer via wildcard", policy.Request{Op: policy.OpDNSAnswer, Name: "x.svc.test", Addr: ip("192.0.2.1")}, policy.ActionAllow, "*://*.svc.test:8000-8999"},
		{"lookup via dns rule", policy.Request{Op: policy.OpDNSLookup, Name: "db.internal.test"}, policy.ActionAllow, "dns://*.internal.test"},
		{"lookup unknown", policy.Request{Op: policy.OpDNSLookup, Name: "evil.test"}, policy.ActionAbstain, ""},
		{"unknown op", policy.Request{Op: "tcp.teleport", Addr: ip("10.0.0.1")}, policy.ActionAbstain, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := policy.Canonical(tt.req)
			v := a.decide(&req)
			if v.Verdict != tt.want {
				t.Fatalf("verdict %+v, want %s", v, tt.want)
			}
			if tt.rule != "" && !strings.Contains(v.Reason, `"`+tt.rule+`"`) {
				t.Errorf("reason %q does not quote %q", v.Reason, tt.rule)
			}
			dns := tt.req.Op == policy.OpDNSLookup || tt.req.Op == policy.OpDNSAnswer
			if tt.want == policy.ActionAllow && (v.CacheTTLMs == 0) != dns {
				t.Errorf("cache_ttl_ms = %d for %s", v.CacheTTLMs, tt.req.Op)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := newAllowlist(config{}); err == nil || !strings.Contains(err.Error(), "no rules") {
		t.Errorf("missing rules: %v", err)
	}
	rules := []string{"tcp://ok.test:443", "tcp://*bad.test", "bind tcp://name.test"}
	_, err := newAllowlist(config{Rules: &rules})
	if err == nil || !strings.Contains(err.Error(), `rule "tcp://*bad.test"`) || !strings.Contains(err.Error(), `rule "bind tcp://name.test"`) {
		t.Errorf("bad rules: %v", err)
	}
	ok := []string{}
	if _, err := newAllowlist(config{Rules: &ok, CacheTTL: "soon"}); err == nil || !strings.Contains(err.Error(), `cache_ttl "soon"`) {
		t.Errorf("bad ttl: %v", err)
	}
	a, err := newAllowlist(config{Rules: &[]string{"tcp://x.test"}, CacheTTL: "0s"})
	if err != nil || a.ttlMs != 0 {
		t.Errorf("ttl 0s: %v %v", a, err)
	}
}

// TestExports runs the plugin through the same entry points as its wasm
// exports, with the config as the host hands it over.
func TestExports(t *testing.T) {
	Register() // what the plugin's package main does
	policy.SetConfig([]byte(`{"rules":["tcp://*.example.test:443"]}`))
	defer policy.SetConfig(nil)

	if got := string(policy.ValidateJSON()); got != `{}` {
		t.Errorf("validate: %s", got)
	}
	var d struct {
		Name        string
		Ops         []policy.Op
		IgnoresPort []policy.Op `json:"ignores_port"`
	}
	if err := json.Unmarshal(policy.DescribeJSON(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Name != "allowlist" || !slices.Equal(d.Ops, []policy.Op{policy.OpDNSLookup, policy.OpDNSAnswer, policy.OpTCPConnect}) ||
		!slices.Equal(d.IgnoresPort, []policy.Op{policy.OpDNSLookup, policy.OpDNSAnswer}) {
		t.Errorf("describe: %+v", d)
	}
	out, err := policy.InvokeJSON([]byte(`{"op":"tcp.connect","proto":"tcp","addr":"192.0.2.1","port":443,"names":["API.Example.Test"]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"verdict":"allow","reason":"allowed by rule \"tcp://*.example.test:443\"","cache_ttl_ms":60000}` {
		t.Errorf("decide: %s", out)
	}
}

func TestReadConfig(t *testing.T) {
	defer policy.SetConfig(nil)
	policy.SetConfig([]byte(`{"rules":["tcp://a.test:443"],"cache_ttl":"5s"}`))
	c, err := readConfig()
	if err != nil || c.Rules == nil || len(*c.Rules) != 1 || c.CacheTTL != "5s" {
		t.Errorf("readConfig = %+v, %v", c, err)
	}
	policy.SetConfig([]byte(`{"rule":["tcp://a.test:443"],"cache_ttl":5}`))
	_, err = readConfig()
	if err == nil || !strings.Contains(err.Error(), `unknown key "rule"`) || !strings.Contains(err.Error(), `"cache_ttl" must be a string, not a number`) {
		t.Errorf("readConfig with typos: %v", err)
	}
	policy.SetConfig(nil)
	if c, err := readConfig(); err != nil || c.Rules != nil {
		t.Errorf("no config: %+v %v", c, err)
	}
}

// The allowlist declares it ignores the port exactly for the ops no rule
// reads the port of: an accept rule without ports lets the host cache one
// verdict per peer address, an accept rule with ports does not.
func TestDescribeIgnoresPort(t *testing.T) {
	tests := []struct {
		rules []string
		want  []policy.Op
	}{
		{[]string{"bind tcp://127.0.0.1:8080", "accept tcp://127.0.0.1"},
			[]policy.Op{policy.OpTCPAccept}},
		{[]string{"bind tcp://127.0.0.1:8080", "accept tcp://127.0.0.1:1000-2000"}, nil},
		{[]string{"accept tcp://127.0.0.1", "accept tcp://10.0.0.0/8:22"}, nil},
		{[]string{"accept *://127.0.0.1", "udp://192.0.2.1:53"},
			[]policy.Op{policy.OpTCPAccept, policy.OpUDPRecv}},
		{[]string{"udp://192.0.2.1"},
			[]policy.Op{policy.OpUDPConnect, policy.OpUDPSend}},
	}
	for _, tt := range tests {
		a := mustAllowlist(t, tt.rules...)
		if got := a.describe().IgnoresPort; !slices.Equal(got, tt.want) {
			t.Errorf("%q: ignores_port %v, want %v", tt.rules, got, tt.want)
		}
	}
}

// An abstain depends only on the request as much as an allow does, so it
// is cacheable too (except on dns ops, whose verdicts are never cached).
func TestAbstainCacheable(t *testing.T) {
	a := mustAllowlist(t, "accept tcp://127.0.0.1")
	ip := netip.MustParseAddr
	if v := a.decide(&policy.Request{Op: policy.OpTCPAccept, Proto: "tcp", Addr: ip("127.0.0.2"), Port: 4000}); v.Verdict != policy.ActionAbstain || v.CacheTTLMs != 60000 {
		t.Errorf("accept from another peer: %+v", v)
	}
	if v := a.decide(&policy.Request{Op: policy.OpDNSLookup, Name: "x.test"}); v.Verdict != policy.ActionAbstain || v.CacheTTLMs != 0 {
		t.Errorf("lookup: %+v", v)
	}
}

// An allow rule for an IPv4 range does not allow the IPv6 forms that embed
// it (issue 18, item 3); a rule naming the IPv6 form does.
func TestDecideEmbeddedIPv4(t *testing.T) {
	a := mustAllowlist(t, "tcp://127.0.0.0/8", "tcp://[64:ff9b::/96]:8443")
	for _, f := range []string{"64:ff9b::7f00:3", "64:ff9b:1:7f00:0:300::", "::127.0.0.3", "2002:7f00:3::1",
		"2001:0:4136:e378:8000:63bf:80ff:fffc", "2001:0:7f00:3::1"} {
		req := policy.Canonical(policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr(f), Port: 8080})
		if v := a.decide(&req); v.Verdict != policy.ActionAbstain {
			t.Errorf("%s: %+v, want abstain", f, v)
		}
	}
	req := policy.Canonical(policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("64:ff9b::7f00:3"), Port: 8443})
	if v := a.decide(&req); v.Verdict != policy.ActionAllow {
		t.Errorf("explicit IPv6 rule: %+v", v)
	}
	req = policy.Canonical(policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.3"), Port: 8080})
	if v := a.decide(&req); v.Verdict != policy.ActionAllow {
		t.Errorf("127.0.0.3: %+v", v)
	}
}
