//go:build examples

// TestRawInputs needs the three plugins built, so it runs from test.sh
// (go test -tags examples), not with the rest of the module's tests.

package examples

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	extism "github.com/extism/go-sdk"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestRawInputs calls each example's decide directly through the Extism Go
// SDK (another host than wasmgate) with requests written in ways wasmgate
// itself never writes them, but that the wire format allows (docs/plugins.md,
// "Request": any member order, whitespace, escapes, unknown members), and
// with broken ones: the three must give the same answers, a failed call
// (which a host counts as a deny) for anything that is not one valid
// request object.
func TestRawInputs(t *testing.T) {
	ctx := context.Background()
	const fail = "call failed"
	cases := []struct{ in, want string }{
		{`{"op":"tcp.connect","proto":"tcp","addr":"192.0.2.10","port":443}`, "allow: example: tcp.connect to port 443"},
		{" {\n\t\"port\" : 80 ,\r\n \"op\" : \"tcp.connect\" } ", "deny: example: tcp.connect only to port 443, not 80"},
		{`{"x":{"op":"dns.lookup","a":[1,{"port":443},"\"}"],"b":null},"op":"tcp.connect","port":25,"y":[true,false,-1.5e3]}`, "deny: example: tcp.connect only to port 443, not 25"},
		{`{"op":"dns.\u006cookup","name":"api.ex\u0061mple.test"}`, "allow: example: dns.lookup under example.test"},
		{`{"name":"API.Example.TEST","op":"dns.answer","addr":"192.0.2.10"}`, "allow: example: dns.answer under example.test"},
		{`{"op":"dns.lookup","name":"example.test"}`, "allow: example: dns.lookup under example.test"},
		{`{"op":"dns.lookup","name":"notexample.test"}`, "deny: example: dns.lookup outside example.test"},
		{`{"op":"dns.lookup","name":"example.test.evil.test"}`, "deny: example: dns.lookup outside example.test"},
		{`{"op":"dns.lookup","name":"\u00e9.example.test"}`, "allow: example: dns.lookup under example.test"},
		{`{"op":"udp.send","proto":"udp","addr":"192.0.2.53","port":53}`, "abstain: "},
		{`{"op":"tcp.connect","op":"dns.lookup","port":443}`, fail},
		{`{"op":"tcp.connect","port":443,"port":80}`, fail},
		{`{"op":"tcp.connect","port":70000}`, fail},
		{`{"op":"tcp.connect","port":"443"}`, fail},
		{`{"op":"tcp.connect","port":443}x`, fail},
		{`{"op":"tcp.connect","port":443`, fail},
		{`{"op":"tcp.connect","port":443,}`, fail},
		{"{\"op\":\"dns.lookup\",\"name\":\"a\x01b.example.test\"}", fail},
		{`{"op":"tcp.connect"}`, "deny: example: tcp.connect only to port 443, not 0"},
		{`{"op":"dns.lookup"}`, "deny: example: dns.lookup outside example.test"},
		{`{"op":"dns.lookup","name":"a\qb"}`, fail},
		{`[{"op":"tcp.connect","port":443}]`, fail},
		{``, fail},
	}
	got := map[string][]string{}
	for _, ex := range []string{"go", "c", "assemblyscript"} {
		wasm, err := os.ReadFile(filepath.Join(ex, "example.wasm"))
		if err != nil {
			t.Fatalf("%v (build the examples first: ./test.sh)", err)
		}
		p, err := extism.NewPlugin(ctx, extism.Manifest{
			Wasm:   []extism.Wasm{extism.WasmData{Data: wasm}},
			Config: map[string]string{"config": `{"domain":"example.test"}`},
		}, extism.PluginConfig{EnableWasi: true}, nil)
		if err != nil {
			t.Fatalf("%s: %v", ex, err)
		}
		for _, c := range cases {
			rc, out, err := p.Call("decide", []byte(c.in))
			res := fail
			if err == nil && rc == 0 {
				v, perr := policy.ParseVerdictJSON(out)
				if perr != nil {
					res = "bad verdict: " + perr.Error()
				} else {
					res = string(v.Verdict) + ": " + v.Reason
				}
			}
			got[c.in] = append(got[c.in], ex+" -> "+res)
			if res != c.want {
				t.Errorf("%s: decide(%q) = %s, want %s", ex, c.in, res, c.want)
			}
		}
		p.Close(ctx)
	}
	if t.Failed() {
		for _, c := range cases {
			t.Logf("%q: %q", c.in, got[c.in])
		}
	}
}
