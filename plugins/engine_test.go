package plugins

import (
	"context"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/plugins/builtin"
)

// TestEngineChoice: auto puts a module on go-sdk only for the imports the
// kernel cannot serve, and says so; an explicit engine is taken as written.
func TestEngineChoice(t *testing.T) {
	wasm, _ := builtin.Lookup("allowlist")
	for _, tc := range []struct {
		engine   string
		wasm     []byte
		eng, why string
	}{
		{EngineAuto, wasm, EngineWasmgate, "every import is one the kernel serves"},
		{EngineAuto, tinyModule(), EngineExtism, "imports extism:host/env.http_request"},
		{EngineWasmgate, tinyModule(), EngineWasmgate, `engine = "wasmgate" in the manifest`},
		{EngineExtism, wasm, EngineExtism, `engine = "extism" in the manifest`},
		{EngineAuto, []byte("not wasm"), EngineWasmgate, "default (the module's imports could not be read)"},
	} {
		eng, why := chooseEngine(&PluginSpec{Wasm: tc.wasm, EngineSpec: EngineSpec{Engine: tc.engine}})
		if eng != tc.eng || why != tc.why {
			t.Errorf("%s: %s (%s), want %s (%s)", tc.engine, eng, why, tc.eng, tc.why)
		}
	}
}

// TestEngineExtismRefuses: what the go-sdk engine will not load.
func TestEngineExtismRefuses(t *testing.T) {
	load := func(wasm []byte) error {
		m := &Manifest{Plugins: []PluginSpec{{Name: "p", Wasm: wasm, Memory: DefaultMemory, Config: []byte("{}"),
			EngineSpec: EngineSpec{Engine: EngineExtism}}}}
		p, err := LoadManifest(context.Background(), m, Options{CacheDir: "-"})
		if err == nil {
			p.Close(context.Background())
		}
		return err
	}
	// tinyModule imports a memory: neither engine provides one.
	if err := load(tinyModule()); err == nil || !strings.Contains(err.Error(), "imports a non-function env.memory, which wasmgate does not provide") {
		t.Errorf("memory import: %v", err)
	}
	// go-sdk would write the plugin's output on our stdout.
	t.Setenv(wasiOutputEnv, "1")
	wasm, _ := builtin.Lookup("allowlist")
	if err := load(wasm); err == nil || !strings.Contains(err.Error(), wasiOutputEnv+" is set") {
		t.Errorf("with %s: %v", wasiOutputEnv, err)
	}
}
