package builtin_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestTestdataPluginsOnBothEngines: every built-in and every test plugin of
// testdata/plugins gives the same outcomes, reasons included, through
// wasmgate's chain on the kernel and on the go-sdk engine, and every
// built-in on the native engine too (docs/plugins.md#8-engines). plugins/reference_test.go also holds both to
// go-sdk's own Plugin.Call.
func TestTestdataPluginsOnBothEngines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and compiles wasm")
	}
	misbehaving := []string{"trap", "loop", "alloc", "garbage", "huge", "emptyobj", "rcnoerror"}
	var pkgs []string
	for _, n := range append([]string{"jsononly", "example"}, misbehaving...) {
		pkgs = append(pkgs, "testdata/plugins/"+n)
	}
	testbuild.Plugins(t, pkgs...)
	type entry struct {
		name, use, config string
		wasm              []byte
		requests          int
	}
	reqs := []*network.Request{
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("93.184.216.34"), Port: 443, Names: []string{"api.example.test"}, Guest: "app"},
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("93.184.216.34"), Port: 25, Guest: "app"},
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Names: []string{"www.example.test"}, Guest: "app"},
		{Op: policy.OpDNSLookup, Name: "api.example.test", Guest: "app"},
		{Op: policy.OpUDPSend, Proto: "udp", Addr: netip.MustParseAddr("8.8.8.8"), Port: 53, Guest: "app"},
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.1"), Port: 443, Guest: "app"},
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("93.184.216.34"), Port: 443, Names: []string{"api.example.test"}, Guest: "app"},
	}
	list := []entry{
		{"allowlist", "allowlist", `{"rules":["tcp://api.example.test:443","dns://*.example.test","udp://8.8.8.8:53"]}`, nil, len(reqs)},
		{"denylist", "denylist", `{"rules":["tcp://*:25","tcp://127.0.0.0/8"]}`, nil, len(reqs)},
		{"special-ranges", "special-ranges", `{}`, nil, len(reqs)},
		{"ratelimit", "ratelimit", `{"limits":{"tcp.connect":"2/1m"}}`, nil, len(reqs)},
		{"jsononly", "", `{}`, testbuild.Bytes(t, pkgs[0]), len(reqs)},
		{"example", "", `{"hosts":["*.example.test"]}`, testbuild.Bytes(t, pkgs[1]), len(reqs)},
	}
	for i, n := range misbehaving {
		list = append(list, entry{n, "", `{}`, testbuild.Bytes(t, pkgs[2+i]), 2})
	}
	outcomes := func(t *testing.T, e entry, engine string) []string {
		// Only loop is meant to time out; the others get time even under
		// -race on a busy machine.
		timeout := 20 * time.Second
		if e.name == "loop" {
			timeout = time.Second
		}
		spec := plugins.PluginSpec{Name: e.name, Use: e.use, Wasm: e.wasm, Timeout: timeout, Init: 20 * time.Second,
			Memory: 16 << 20, Config: []byte(e.config), EngineSpec: plugins.EngineSpec{Engine: engine}}
		if e.use != "" {
			spec.Wasm, _ = builtin.Lookup(e.use)
		}
		p, err := plugins.LoadManifest(context.Background(), &plugins.Manifest{Default: policy.ActionDeny, Plugins: []plugins.PluginSpec{spec}},
			plugins.Options{CompilationCache: testbuild.Cache(), CacheEntries: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		want := engine
		if want == plugins.EngineAuto {
			want = plugins.EngineWasmgate
		}
		if got := p.Chain.Engines()[0].Engine; got != want {
			t.Fatalf("engine %s, want %s", got, want)
		}
		var out []string
		for i, r := range reqs[:e.requests] {
			cp := *r
			cp.TimeMs = 1795780800000 + int64(i)
			o := p.Chain.DecideOutcome(context.Background(), &cp)
			out = append(out, fmt.Sprintf("%s %q %q", o.Audit, o.Plugin, o.Reason))
		}
		return out
	}
	for _, e := range list {
		t.Run(e.name, func(t *testing.T) {
			// None of them imports what only go-sdk serves: auto keeps
			// them on the kernel.
			auto := outcomes(t, e, plugins.EngineAuto)
			kernel := outcomes(t, e, plugins.EngineWasmgate)
			if fmt.Sprint(auto) != fmt.Sprint(kernel) {
				t.Errorf("auto %v, kernel %v", auto, kernel)
			}
			sdk := outcomes(t, e, plugins.EngineExtism)
			for i := range kernel {
				if kernel[i] != sdk[i] {
					t.Errorf("request %d: kernel %s, go-sdk engine %s", i, kernel[i], sdk[i])
				}
			}
			if e.use == "" || e.use == "ratelimit" {
				return // the native engine runs the stateless built-ins
			}
			// The same Go code compiled into wasmgate.
			native := outcomes(t, e, plugins.EngineNative)
			for i := range kernel {
				if kernel[i] != native[i] {
					t.Errorf("request %d: kernel %s, native engine %s", i, kernel[i], native[i])
				}
			}
		})
	}
}
