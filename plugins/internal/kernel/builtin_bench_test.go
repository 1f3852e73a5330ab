package kernel

import (
	"context"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

func builtinInstance(b testing.TB, name, config string) *Instance {
	wasm, ok := builtin.Lookup(name)
	if !ok {
		b.Fatal("no builtin", name)
	}
	e := NewEngineWithCache(testbuild.Cache())
	m, err := e.Compile(context.Background(), Config{Name: name, Wasm: wasm, Timeout: time.Second,
		Config: builtin.Config(name, config)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close(context.Background()) })
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return inst
}

// BenchmarkBuiltinDecide is one decision of each built-in on the kernel
// call path, the floor of one uncached plugin decision: through the wasmgate
// fast path (binary, DecideFast) and through the Extism decide export
// (JSON), in the same run. The configs are the ones of the chain benchmarks.
func BenchmarkBuiltinDecide(b *testing.B) {
	in := []byte(`{"op":"tcp.connect","proto":"tcp","addr":"93.184.216.34","port":443,"names":["api.example.test"],"guest":"app","time_ms":1795780800000}`)
	for _, c := range []struct{ name, config string }{
		{"allowlist", `{"rules":["tcp://api.example.test:443","tcp://*.cdn.example.test:443"],"cache_ttl":"0s"}`},
		{"denylist", `{"rules":["tcp://*:25"],"cache_ttl":"0s"}`},
		{"special-ranges", `{}`},
		{"ratelimit", `{"limits":{"tcp.connect":"1000000/1s"}}`},
	} {
		inst := builtinInstance(b, c.name, c.config)
		if inst.FastSize() == 0 {
			b.Fatal("the built-in has no fast path")
		}
		bin := toBinary(b, in)
		fast, err := inst.DecideFast(bin)
		if err != nil {
			b.Fatal(err)
		}
		fv, err := policy.ParseVerdictBinary(fast)
		if err != nil {
			b.Fatal(err)
		}
		slow, err := inst.Call("decide", in)
		if err != nil {
			b.Fatal(err)
		}
		if sv, err := policy.ParseVerdictJSON(slow); err != nil || sv != fv {
			b.Fatalf("%s: fast path %+v, Extism path %+v, %v", c.name, fv, sv, err)
		}
		for _, path := range []struct {
			name string
			call func() ([]byte, error)
		}{
			{"fast", func() ([]byte, error) { return inst.DecideFast(bin) }},
			{"extism", func() ([]byte, error) { return inst.Call("decide", in) }},
		} {
			b.Run(c.name+"/"+path.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := path.call(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBuiltinDescribe is a call that does almost nothing in the plugin.
func BenchmarkBuiltinDescribe(b *testing.B) {
	inst := builtinInstance(b, "allowlist", `{"rules":["tcp://api.example.test:443"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inst.Call("describe", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNop is the floor: a Go plugin whose decide does 5 host calls.
func BenchmarkNop(b *testing.B) {
	e := NewEngineWithCache(testbuild.Cache())
	m, err := e.Compile(context.Background(), Config{Name: "nop", Wasm: testbuild.Bytes(b, "plugins/internal/testplugins/nop"), Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, fn := range []string{"decide", "noop"} {
		b.Run(fn, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := inst.Call(fn, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSDKAllow is sdk/policy's decide with a handler that only allows.
func BenchmarkSDKAllow(b *testing.B) {
	e := NewEngineWithCache(testbuild.Cache())
	m, err := e.Compile(context.Background(), Config{Name: "sdkallow", Wasm: testbuild.Bytes(b, "plugins/internal/testplugins/sdkallow"), Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	in := []byte(`{"op":"tcp.connect","proto":"tcp","addr":"93.184.216.34","port":443,"names":["api.example.test"],"guest":"app","time_ms":1795780800000}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inst.Call("decide", in); err != nil {
			b.Fatal(err)
		}
	}
}
