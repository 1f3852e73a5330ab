package ratelimit

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

func mustRatelimit(t *testing.T, limits map[string]string) *ratelimit {
	t.Helper()
	r, err := newRatelimit(config{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const t0 = 1795780800000

func TestSlidingWindow(t *testing.T) {
	r := mustRatelimit(t, map[string]string{"tcp.connect": "3/1s"})
	steps := []struct {
		at   int64 // ms after t0
		want policy.Action
	}{
		{0, policy.ActionAbstain},
		{100, policy.ActionAbstain},
		{900, policy.ActionAbstain},
		{950, policy.ActionDeny},     // 4th within [0,1000)
		{999, policy.ActionDeny},     // still
		{1000, policy.ActionAbstain}, // the op at 0 left the window
		{1050, policy.ActionDeny},    // window holds 100, 900, 1000
		{1100, policy.ActionAbstain}, // 100 left
		{1899, policy.ActionDeny},
		{1900, policy.ActionAbstain},
		{500, policy.ActionDeny}, // the clock stepping back counts as 1900
	}
	for _, s := range steps {
		v := r.decide(&policy.Request{Op: policy.OpTCPConnect, Guest: "app", TimeMs: t0 + s.at})
		if v.Verdict != s.want {
			t.Fatalf("at +%dms: %+v, want %s", s.at, v, s.want)
		}
		if v.Verdict == policy.ActionDeny && (v.Reason != `ratelimit: guest "app" exceeded tcp.connect limit 3/1s` || v.CacheTTLMs != 0) {
			t.Errorf("deny verdict %+v", v)
		}
	}
}

func TestPerGuestAndOp(t *testing.T) {
	r := mustRatelimit(t, map[string]string{"tcp.connect": "1/1m", "dns.lookup": "2/m"})
	req := func(op policy.Op, guest string) policy.Action {
		return r.decide(&policy.Request{Op: op, Guest: guest, TimeMs: t0}).Verdict
	}
	first, second := req(policy.OpTCPConnect, "a"), req(policy.OpTCPConnect, "a")
	if first != policy.ActionAbstain || second != policy.ActionDeny {
		t.Errorf("guest a: connects %s, %s", first, second)
	}
	if req(policy.OpTCPConnect, "b") != policy.ActionAbstain {
		t.Error("guest b shares guest a's budget")
	}
	var lookups []policy.Action
	for range 3 {
		lookups = append(lookups, req(policy.OpDNSLookup, "a"))
	}
	if !slices.Equal(lookups, []policy.Action{policy.ActionAbstain, policy.ActionAbstain, policy.ActionDeny}) {
		t.Errorf("dns.lookup limit 2/m: %v", lookups)
	}
	if req(policy.OpUDPSend, "a") != policy.ActionAbstain {
		t.Error("unlimited op denied")
	}
	if !slices.Equal(r.ops, []policy.Op{policy.OpDNSLookup, policy.OpTCPConnect}) {
		t.Errorf("ops = %v", r.ops)
	}
}

func TestAllOps(t *testing.T) {
	r := mustRatelimit(t, map[string]string{"*": "3/1s", "udp.send": "1/1s"})
	got := []policy.Action{}
	for _, op := range []policy.Op{policy.OpUDPSend, policy.OpUDPSend, policy.OpDNSLookup, policy.OpTCPConnect, policy.OpTCPConnect} {
		got = append(got, r.decide(&policy.Request{Op: op, TimeMs: t0}).Verdict)
	}
	// The denied second udp.send does not use up the shared budget.
	want := []policy.Action{policy.ActionAbstain, policy.ActionDeny, policy.ActionAbstain, policy.ActionAbstain, policy.ActionDeny}
	if !slices.Equal(got, want) {
		t.Errorf("got %v want %v", got, want)
	}
	if r.ops != nil {
		t.Errorf(`"*" should describe all ops, got %v`, r.ops)
	}
}

func TestNoTime(t *testing.T) {
	r := mustRatelimit(t, map[string]string{"tcp.connect": "10/1s"})
	if v := r.decide(&policy.Request{Op: policy.OpTCPConnect}); v.Verdict != policy.ActionDeny || !strings.Contains(v.Reason, "no time_ms") {
		t.Errorf("got %+v", v)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := newRatelimit(config{}); err == nil || !strings.Contains(err.Error(), "no limits") {
		t.Errorf("empty: %v", err)
	}
	_, err := newRatelimit(config{Limits: map[string]string{
		"tcp.teleport": "1/s", "tcp.connect": "ten/s", "udp.send": "1/fortnight", "dns.lookup": "5", "udp.recv": "0/s", "tcp.bind": "1/0s",
	}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`limits."tcp.teleport" = "1/s": unknown op`,
		`limits."tcp.connect" = "ten/s": N must be`,
		`limits."udp.send" = "1/fortnight": INTERVAL must be`,
		`limits."dns.lookup" = "5": want N/INTERVAL`,
		`limits."udp.recv" = "0/s": N must be`,
		`limits."tcp.bind" = "1/0s": INTERVAL must be`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestExports(t *testing.T) {
	Register() // what the plugin's package main does
	policy.SetConfig([]byte(`{"limits":{"tcp.connect":"1/1s"}}`))
	defer policy.SetConfig(nil)
	var d struct {
		Ops      []policy.Op
		Stateful bool
	}
	if err := json.Unmarshal(policy.DescribeJSON(), &d); err != nil {
		t.Fatal(err)
	}
	if !d.Stateful || !slices.Equal(d.Ops, []policy.Op{policy.OpTCPConnect}) {
		t.Errorf("describe: %+v", d)
	}
	in := []byte(`{"op":"tcp.connect","proto":"tcp","addr":"192.0.2.1","port":80,"guest":"g","time_ms":1795780800000}`)
	first, _ := policy.InvokeJSON(in, nil)
	second, _ := policy.InvokeJSON(in, nil)
	if string(first) != `{"verdict":"abstain"}` || !strings.HasPrefix(string(second), `{"verdict":"deny"`) {
		t.Errorf("decide: %s then %s", first, second)
	}
}

func TestReadConfig(t *testing.T) {
	defer policy.SetConfig(nil)
	policy.SetConfig([]byte(`{"limits":{"tcp.connect":"1/s"}}`))
	if c, err := readConfig(); err != nil || c.Limits["tcp.connect"] != "1/s" {
		t.Errorf("readConfig = %+v, %v", c, err)
	}
	policy.SetConfig([]byte(`{"limits":{"tcp.connect":1}}`))
	if _, err := readConfig(); err == nil || !strings.Contains(err.Error(), `"limits" must be a table of strings`) {
		t.Errorf("numeric limit: %v", err)
	}
}
