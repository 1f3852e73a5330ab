//go:build examples

// TestRawInputs needs the three plugins built, so it runs from test.sh
// (go test -tags examples), not with the rest of the module's tests.

package examples

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
		p := loadExample(t, ex)
		for _, c := range cases {
			res := call(p, []byte(c.in))
			got[c.in] = append(got[c.in], ex+" -> "+res)
			if res != c.want {
				t.Errorf("%s: decide(%q) = %s, want %s", ex, c.in, res, c.want)
			}
		}
		p.Close(context.Background())
	}
	if t.Failed() {
		for _, c := range cases {
			t.Logf("%q: %q", c.in, got[c.in])
		}
	}
}

const fail = "call failed"

func loadExample(t testing.TB, ex string) *extism.Plugin {
	t.Helper()
	wasm, err := os.ReadFile(filepath.Join(ex, "example.wasm"))
	if err != nil {
		t.Fatalf("%v (build the examples first: ./test.sh)", err)
	}
	p, err := extism.NewPlugin(context.Background(), extism.Manifest{
		Wasm:   []extism.Wasm{extism.WasmData{Data: wasm}},
		Config: map[string]string{"config": `{"domain":"example.test"}`},
	}, extism.PluginConfig{EnableWasi: true}, nil)
	if err != nil {
		t.Fatalf("%s: %v", ex, err)
	}
	return p
}

// call runs decide on in: "VERDICT: REASON", or fail.
func call(p *extism.Plugin, in []byte) string {
	rc, out, err := p.Call("decide", in)
	if err != nil || rc != 0 {
		return fail
	}
	v, err := policy.ParseVerdictJSON(out)
	if err != nil {
		return "bad verdict: " + err.Error()
	}
	return string(v.Verdict) + ": " + v.Reason
}

// FuzzCAndAssemblyScript checks that the C and AssemblyScript examples,
// whose JSON scanners are the same design, answer any input alike and
// always with a valid verdict or a failed call. (The Go one is not compared:
// sdk/policy also refuses requests whose other members are invalid, such as
// a bad "addr", which the two others never read.)
func FuzzCAndAssemblyScript(f *testing.F) {
	for _, s := range []string{
		`{"op":"tcp.connect","proto":"tcp","addr":"192.0.2.10","port":443}`,
		`{"op":"dns.lookup","name":"api.example.test","guest":"app","labels":{"a":"b"},"time_ms":1}`,
		`{"x":{"op":"dns.lookup","a":[1,{"port":443},"\"}"]},"op":"tcp.connect","port":25}`,
		`{"op":"dns.\u006cookup","name":"API.ex\u0061mple.test."}`,
	} {
		f.Add([]byte(s))
	}
	c, as := loadExample(f, "c"), loadExample(f, "assemblyscript")
	f.Fuzz(func(t *testing.T, in []byte) {
		rc, ra := call(c, in), call(as, in)
		if rc != ra {
			t.Fatalf("decide(%q): c %s, assemblyscript %s", in, rc, ra)
		}
		if strings.HasPrefix(rc, "bad verdict") {
			t.Fatalf("decide(%q): %s", in, rc)
		}
	})
}
