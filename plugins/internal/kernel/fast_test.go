package kernel

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestFastPathSameAsExtism: every built-in gives byte-identical verdicts
// through the wasmgate fast path and through the Extism decide export.
func TestFastPathSameAsExtism(t *testing.T) {
	configs := map[string]string{
		"allowlist":      `{"rules":["tcp://*.example.test:443","udp://10.0.0.0/8:53"]}`,
		"denylist":       `{"rules":["tcp://198.51.100.0/24"]}`,
		"special-ranges": `{}`,
		"ratelimit":      `{"limits":{"tcp.connect":"1000/1s"}}`,
	}
	reqs := []string{
		req,
		`{"op":"tcp.connect","proto":"tcp","addr":"93.184.216.34","port":80,"guest":"app","time_ms":2}`,
		`{"op":"udp.send","proto":"udp","addr":"10.1.2.3","port":53,"names":["dns.example.test"],"time_ms":3}`,
		`{"op":"dns.lookup","name":"API.Example.Test.","time_ms":4}`,
		`{"op":"tcp.accept","proto":"tcp","addr":"127.0.0.1","port":40000,"local":"127.0.0.1:8080","labels":{"team":"a"},"time_ms":5}`,
	}
	for _, name := range builtin.Names() {
		t.Run(name, func(t *testing.T) {
			wasm, _ := builtin.Lookup(name)
			e := NewEngineWithCache(testbuild.Cache())
			m, err := e.Compile(context.Background(), Config{Name: name, Wasm: wasm, Timeout: 10 * time.Second,
				Config: builtin.Config(name, configs[name])})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			fast, err := m.Instantiate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			slow, err := m.Instantiate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if fast.FastSize() == 0 {
				t.Fatal("no fast path")
			}
			for _, r := range reqs {
				a, errA := fast.DecideFast(toBinary(t, []byte(r)))
				b, errB := slow.Call("decide", []byte(r))
				if errA != nil || errB != nil {
					t.Fatalf("%s: fast %v, extism %v", r, errA, errB)
				}
				va, errA := policy.ParseVerdictBinary(a)
				vb, errB := policy.ParseVerdictJSON(b)
				if errA != nil || errB != nil || va != vb {
					t.Errorf("%s:\nfast   %+v %v\nextism %+v %v", r, va, errA, vb, errB)
				}
			}
		})
	}
}

// toBinary re-encodes a JSON request in the fast path's binary encoding.
func toBinary(t testing.TB, js []byte) []byte {
	t.Helper()
	var r policy.Request
	if err := policy.ParseRequestJSON(js, &r); err != nil {
		t.Fatal(err)
	}
	bin, ok := policy.AppendRequestBinary(nil, &r)
	if !ok {
		t.Fatalf("cannot encode %s", js)
	}
	return bin
}

// fastPlugin assembles a plugin whose fast path misbehaves as told:
// BUFFER is wasmgate_buffer's result, RESULT wasmgate_decide's.
func fastPlugin(t *testing.T, buffer, result string) []byte {
	t.Helper()
	src := `(module
  (memory (export "memory") 1)
  (func (export "decide") (result i32) (i32.const 0))
  (func (export "wasmgate_buffer") (result i64) (i64.const BUFFER))
  (func (export "wasmgate_decide") (param i32) (result i64)
    (i32.store (i32.const 1024) (i32.const 0x7b7d7b7d)) ;; "}{}{"
    (i64.const RESULT)))`
	return watModule(t, strings.NewReplacer("BUFFER", buffer, "RESULT", result).Replace(src))
}

func TestFastPathMisbehaving(t *testing.T) {
	const ok = 1024<<32 | 4096 // buffer at 1024, 4096 bytes
	for _, c := range []struct {
		name, buffer, result string
		fast                 bool
		kind                 ErrorKind
		msg                  string
	}{
		{"buffer outside memory", fmt.Sprint(65000<<32 | 4096), "2", false, KindOutput, "no output"},
		{"buffer too small", fmt.Sprint(1024<<32 | 16), "2", false, KindOutput, "no output"},
		{"length beyond buffer", fmt.Sprint(ok), "4097", true, KindOutput, "outside its 4096-byte buffer"},
		{"minimum int64", fmt.Sprint(ok), "-9223372036854775808", true, KindOutput, "outside"},
		{"error message", fmt.Sprint(ok), "-4", true, KindPlugin, "plugin error: }{}{"},
		{"ok", fmt.Sprint(ok), "2", true, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := NewEngineWithCache(nil)
			m, err := e.Compile(context.Background(), Config{Name: "p", Wasm: fastPlugin(t, c.buffer, c.result), Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			inst, err := m.Instantiate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if (inst.FastSize() > 0) != c.fast {
				t.Fatalf("fast path offered = %v, want %v", inst.FastSize() > 0, c.fast)
			}
			if !c.fast {
				return // plugin.decide then uses the Extism export
			}
			out, err := inst.DecideFast([]byte(req))
			if c.kind == 0 {
				if err != nil || string(out) != "}{" {
					t.Fatalf("got %q, %v", out, err)
				}
				return
			}
			ce, isCE := err.(*CallError)
			if !isCE || ce.Kind != c.kind || !strings.Contains(ce.Msg, c.msg) {
				t.Fatalf("got %#v, want kind %d containing %q", err, c.kind, c.msg)
			}
		})
	}
}
