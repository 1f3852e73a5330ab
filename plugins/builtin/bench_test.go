package builtin

import (
	"context"
	"os"
	"testing"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
)

var benchTimeout uint64 = 1000

// BenchmarkDecideGoSDK measures one decide of each built-in through go-sdk's
// Call on a reused instance, compiled (not interpreted) with a manifest
// timeout, i.e. close-on-context-done as wasmgate runs plugins. This is the
// reference host's cost; the plugins package benchmarks wasmgate's own path.
func BenchmarkDecideGoSDK(b *testing.B) {
	req := []byte(`{"op":"tcp.connect","proto":"tcp","addr":"198.51.100.10","port":443,"names":["api.example.test"],"guest":"app","time_ms":1795780800000}`)
	configs := map[string]string{
		"allowlist":      `{"rules":["tcp://*.example.test:443"]}`,
		"denylist":       `{"rules":["tcp://10.0.0.0/8"]}`,
		"special-ranges": `{}`,
		"ratelimit":      `{"limits":{"tcp.connect":"100000/1ms"}}`,
	}
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			wasm, _ := Lookup(name)
			ctx := context.Background()
			p, err := extism.NewPlugin(ctx, extism.Manifest{
				Wasm:    []extism.Wasm{extism.WasmData{Data: wasm}},
				Config:  Config(name, configs[name]),
				Timeout: benchTimeout,
			}, extism.PluginConfig{EnableWasi: true, RuntimeConfig: wazero.NewRuntimeConfig()}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			if rc, _, err := p.Call("decide", req); rc != 0 || err != nil {
				b.Fatal(rc, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if rc, _, err := p.Call("decide", req); rc != 0 || err != nil {
					b.Fatal(rc, err)
				}
			}
		})
	}
}

func BenchmarkDecideGoSDKNoTimeout(b *testing.B) {
	benchTimeout = 0
	defer func() { benchTimeout = 1000 }()
	BenchmarkDecideGoSDK(b)
}

// BenchmarkDecideGoSDKJSONOnly is the same call for testdata/plugins/jsononly
// (encoding/json inside the plugin), for comparison.
func BenchmarkDecideGoSDKJSONOnly(b *testing.B) {
	t := &testing.T{}
	wasmPath := buildTestPlugin(t, "jsononly")
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		b.Fatal(err)
	}
	req := []byte(`{"op":"tcp.connect","proto":"tcp","addr":"198.51.100.10","port":443,"names":["api.example.test"],"guest":"app","time_ms":1795780800000}`)
	ctx := context.Background()
	p, err := extism.NewPlugin(ctx, extism.Manifest{
		Wasm: []extism.Wasm{extism.WasmData{Data: wasm}}, Timeout: benchTimeout,
	}, extism.PluginConfig{EnableWasi: true, RuntimeConfig: wazero.NewRuntimeConfig()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	b.ReportAllocs()
	for b.Loop() {
		if rc, _, err := p.Call("decide", req); rc != 0 || err != nil {
			b.Fatal(rc, err)
		}
	}
}
