package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// setConfig gives the plugin a config as the host would and forgets the
// one decoded before.
func setConfig(t *testing.T, json string) {
	t.Helper()
	policy.SetConfig([]byte(json))
	config = sync.OnceValues(loadConfig)
	t.Cleanup(func() { policy.SetConfig(nil); config = sync.OnceValues(loadConfig) })
}

func TestDecide(t *testing.T) {
	setConfig(t, `{"domain":"example.test"}`)
	if got := string(policy.ValidateJSON()); got != `{}` {
		t.Fatalf("validate: %s", got)
	}
	addr := netip.MustParseAddr("192.0.2.10")
	cases := []struct {
		req    policy.Request
		want   policy.Action
		reason string
	}{
		{policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: addr, Port: 443}, policy.ActionAllow, "example: tcp.connect to port 443"},
		{policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: addr, Port: 80}, policy.ActionDeny, "example: tcp.connect only to port 443, not 80"},
		{policy.Request{Op: policy.OpDNSLookup, Name: "example.test"}, policy.ActionAllow, "example: dns.lookup under example.test"},
		{policy.Request{Op: policy.OpDNSLookup, Name: "API.example.test."}, policy.ActionAllow, "example: dns.lookup under example.test"},
		{policy.Request{Op: policy.OpDNSAnswer, Name: "a.b.example.test", Addr: addr}, policy.ActionAllow, "example: dns.answer under example.test"},
		{policy.Request{Op: policy.OpDNSLookup, Name: "notexample.test"}, policy.ActionDeny, "example: dns.lookup outside example.test"},
		{policy.Request{Op: policy.OpDNSLookup, Name: "example.test.evil.test"}, policy.ActionDeny, "example: dns.lookup outside example.test"},
		{policy.Request{Op: policy.OpDNSLookup, Name: "test"}, policy.ActionDeny, "example: dns.lookup outside example.test"},
		{policy.Request{Op: policy.OpUDPSend, Proto: "udp", Addr: addr, Port: 53}, policy.ActionAbstain, ""},
	}
	for _, c := range cases {
		v := policy.Invoke(c.req)
		if v.Verdict != c.want || v.Reason != c.reason {
			t.Errorf("%+v: got %+v, want %s %q", c.req, v, c.want, c.reason)
		}
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []struct{ config, err string }{
		{`{}`, `"domain" is missing`},
		{`{"domian":"example.test"}`, `domian`},
		{`{"domain":7}`, `string`},
		{`{"domain":"Example.test"}`, `lower-case DNS name`},
		{`{"domain":".example.test"}`, `lower-case DNS name`},
		{`{"domain":"example..test"}`, `lower-case DNS name`},
		{`{"domain":"example.test."}`, `lower-case DNS name`},
		{`{"domain":"a\"b"}`, `lower-case DNS name`},
		{`{"domain":"` + strings.Repeat("a", 64) + `.test"}`, `lower-case DNS name`},
	} {
		setConfig(t, c.config)
		var got struct{ Error string }
		if err := json.Unmarshal(policy.ValidateJSON(), &got); err != nil || !strings.Contains(got.Error, c.err) {
			t.Errorf("config %s: validate says %q (%v), want an error containing %q", c.config, got.Error, err, c.err)
		}
		// decide fails closed.
		v := policy.Invoke(policy.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("192.0.2.1"), Port: 443})
		if v.Verdict != policy.ActionDeny || v.Reason != "example: bad config" {
			t.Errorf("config %s: decide gave %+v, want a deny", c.config, v)
		}
	}
}
