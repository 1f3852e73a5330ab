package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// withRegistry saves and restores the package's registrations so that tests
// can register their own.
func withRegistry(t *testing.T) {
	h, d, v := handler, description, validator
	t.Cleanup(func() {
		handler, description, validator = h, d, v
		SetConfig(nil)
		SetLogOutput(nil)
	})
}

func TestInvoke(t *testing.T) {
	withRegistry(t)
	handler = nil
	if v := Invoke(Request{Op: OpTCPConnect}); v.Verdict != ActionDeny || !strings.Contains(v.Reason, "no handler") {
		t.Errorf("no handler: %+v", v)
	}

	var seen Request
	Handle(func(r Request) Verdict {
		seen = r
		switch r.Port {
		case 1:
			panic("boom")
		case 2:
			return Verdict{}
		case 3:
			return Verdict{Verdict: "maybe"}
		case 4:
			return Verdict{Verdict: ActionAllow, CacheTTLMs: -5}
		}
		return Allow("ok")
	})
	if v := Invoke(Request{Op: OpTCPConnect, Addr: netip.MustParseAddr("::ffff:1.2.3.4"), Names: []string{"A.Test."}}); v != Allow("ok") {
		t.Errorf("got %+v", v)
	}
	if seen.Addr != netip.MustParseAddr("1.2.3.4") || seen.Names[0] != "a.test" {
		t.Errorf("handler saw a non-canonical request %+v", seen)
	}
	tests := []struct {
		port   uint16
		reason string
	}{
		{1, "plugin panicked: boom"},
		{2, `plugin returned invalid verdict ""`},
		{3, `plugin returned invalid verdict "maybe"`},
	}
	for _, tt := range tests {
		if v := Invoke(Request{Port: tt.port}); v != Deny(tt.reason) {
			t.Errorf("port %d: got %+v", tt.port, v)
		}
	}
	if v := Invoke(Request{Port: 4}); v != Allow("") {
		t.Errorf("negative ttl: got %+v", v)
	}
}

func TestInvokeJSON(t *testing.T) {
	withRegistry(t)
	Handle(func(r Request) Verdict {
		if r.Op == OpTCPConnect && r.Port == 443 {
			return Verdict{Verdict: ActionAllow, Reason: "port " + r.Names[0], CacheTTLMs: 10}
		}
		return Abstain()
	})
	out, err := InvokeJSON([]byte(sampleJSON), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `x{"verdict":"allow","reason":"port api.example.test","cache_ttl_ms":10}` {
		t.Errorf("got %s", out)
	}
	if _, err := InvokeJSON([]byte(`{"op":`), nil); err == nil {
		t.Error("no error for a truncated request")
	}
}

func TestDescribeJSON(t *testing.T) {
	withRegistry(t)
	description = nil
	if got := string(DescribeJSON()); got != `{}` {
		t.Errorf("nothing registered: %s", got)
	}
	Describe(Description{Name: "x", Version: "1.0", Ops: []Op{OpTCPConnect, OpDNSLookup}, Stateful: true})
	got := DescribeJSON()
	if string(got) != `{"name":"x","version":"1.0","ops":["tcp.connect","dns.lookup"],"stateful":true}` {
		t.Errorf("got %s", got)
	}
	DescribeFunc(func() Description { return Description{Ops: []Op{OpUDPSend}} })
	if got := string(DescribeJSON()); got != `{"ops":["udp.send"]}` {
		t.Errorf("got %s", got)
	}
	Describe(Description{Name: "x", Stateful: true, IgnoresPort: []Op{OpTCPAccept, OpUDPRecv}})
	if got := string(DescribeJSON()); got != `{"name":"x","stateful":true,"ignores_port":["tcp.accept","udp.recv"]}` {
		t.Errorf("got %s", got)
	}
	Describe(Description{IgnoresPort: []Op{OpTCPAccept}})
	if got := string(DescribeJSON()); got != `{"ignores_port":["tcp.accept"]}` {
		t.Errorf("got %s", got)
	}
}

func TestValidateJSON(t *testing.T) {
	withRegistry(t)
	validator = nil
	if got := string(ValidateJSON()); got != `{}` {
		t.Errorf("no validator: %s", got)
	}
	Validate(func() error { return nil })
	if got := string(ValidateJSON()); got != `{}` {
		t.Errorf("ok validator: %s", got)
	}
	Validate(func() error { return errors.New(`rule "x": "bad"`) })
	var out struct{ Error string }
	if err := json.Unmarshal(ValidateJSON(), &out); err != nil || out.Error != `rule "x": "bad"` {
		t.Errorf("got %+v %v", out, err)
	}
	Validate(func() error { panic("oops") })
	if err := json.Unmarshal(ValidateJSON(), &out); err != nil || out.Error != "validate panicked: oops" {
		t.Errorf("got %+v %v", out, err)
	}
}

func TestConfig(t *testing.T) {
	withRegistry(t)
	type cfg struct {
		Rules []string `json:"rules"`
	}
	c := cfg{Rules: []string{"default"}}
	SetConfig(nil)
	if err := Config(&c); err != nil || c.Rules[0] != "default" {
		t.Errorf("no config: %v %v", c, err)
	}
	SetConfig([]byte(`{"rules":["tcp://a.test:443"]}`))
	if err := Config(&c); err != nil || len(c.Rules) != 1 || c.Rules[0] != "tcp://a.test:443" {
		t.Errorf("config: %v %v", c, err)
	}
	SetConfig([]byte(`{"rule":["x"]}`))
	if err := Config(&c); err == nil || !strings.Contains(err.Error(), `unknown field "rule"`) {
		t.Errorf("unknown key: %v", err)
	}
	SetConfig([]byte(`{"rules":["x"]} {}`))
	if err := Config(&c); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("trailing: %v", err)
	}
	SetConfig([]byte(`{"rules":"x"}`))
	if err := Config(&c); err == nil {
		t.Error("wrong type accepted")
	}
}

func TestLog(t *testing.T) {
	withRegistry(t)
	var got []string
	SetLogOutput(func(l LogLevel, m string) { got = append(got, m) })
	Log(LogInfo, "hello")
	SetLogOutput(nil)
	Log(LogInfo, "dropped")
	if len(got) != 1 || got[0] != "hello" {
		t.Errorf("got %q", got)
	}
}

func ExampleHandle() {
	// In a plugin's package main:
	//
	//	func init() { policy.Handle(decide) }
	//	func main() {}
	Handle(func(r Request) Verdict {
		if r.Op == OpTCPConnect && r.Port == 443 {
			return Allow("https")
		}
		return Abstain()
	})
	v := Invoke(Request{Op: OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("192.0.2.1"), Port: 443})
	fmt.Println(string(AppendVerdictJSON(nil, v)))
	// Output: {"verdict":"allow","reason":"https"}
}

func TestInvokeJSONAllocs(t *testing.T) {
	withRegistry(t)
	Handle(func(r Request) Verdict {
		if r.Port == 443 {
			return Allow("https")
		}
		return Abstain()
	})
	in := newInterner()
	data := []byte(sampleJSON)
	out := make([]byte, 0, 256)
	if _, err := invokeJSON(data, out, in); err != nil {
		t.Fatal(err)
	}
	// The wasm decide path allocates nothing per request in the steady
	// state: each allocation costs microseconds inside a plugin.
	if n := testing.AllocsPerRun(100, func() { invokeJSON(data, out[:0], in) }); n != 0 {
		t.Errorf("decide path allocates %v times per request", n)
	}
}

func TestHasUpper(t *testing.T) {
	for pos := 0; pos < 16; pos++ {
		for c := 0; c < 256; c++ {
			b := []byte("abcdefghijklmnop")[:pos+1]
			b[pos] = byte(c)
			want := c >= 'A' && c <= 'Z'
			if got := hasUpper(string(b)); got != want {
				t.Fatalf("hasUpper(%q) = %v", b, got)
			}
		}
	}
	if CanonicalName("API.Example.TEST.") != "api.example.test" || CanonicalName("a.b") != "a.b" || CanonicalName(".") != "" {
		t.Error("CanonicalName")
	}
}

// TestInvokeJSONCanonicalNames checks that names reach the handler
// canonical on the interning decide path, on a first and a repeated request,
// and when the fast path gives up after reading the names.
func TestInvokeJSONCanonicalNames(t *testing.T) {
	withRegistry(t)
	var got []string
	Handle(func(r Request) Verdict {
		got = append([]string(nil), r.Names...)
		return Abstain()
	})
	in := newInterner()
	for _, data := range []string{
		`{"op":"tcp.connect","names":["API.Example.TEST.","b.test"]}`,
		`{"op":"tcp.connect","names":["API.Example.TEST.","b.test"]}`,
		// Valid JSON off the fast path (a space) after the same names.
		`{"op":"tcp.connect","names":["API.Example.TEST.","b.test"] ,"guest":"g"}`,
		`{"op":"tcp.connect","names":["X.TEST"],"port":01}`,
	} {
		got = nil
		out, err := invokeJSON([]byte(data), nil, in)
		if strings.Contains(data, `"port":01`) {
			if err == nil {
				t.Errorf("%s: accepted", data)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if !slices.Equal(got, []string{"api.example.test", "b.test"}) {
			t.Errorf("%s: handler saw %q (out %s)", data, got, out)
		}
	}
}
