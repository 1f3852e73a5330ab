package plugins

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/wasmgate/wasmgate/internal/decisionbench"
	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

const benchChain3 = `
[[plugins]]
name = "no-special-ranges"
use = "special-ranges"
[[plugins]]
name = "no-smtp"
use = "denylist"
[plugins.config]
rules = ["tcp://*:25"]
cache_ttl = "0s"
[[plugins]]
name = "egress"
use = "allowlist"
[plugins.config]
rules = ["tcp://api.example.test:443", "tcp://*.cdn.example.test:443"]
cache_ttl = "0s"
`

const benchOne = `
[[plugins]]
name = "egress"
use = "allowlist"
[plugins.config]
rules = ["tcp://api.example.test:443", "tcp://*.cdn.example.test:443"]
cache_ttl = "CACHE"
`

func benchDecide(b *testing.B, p *Policy) {
	req := connect("93.184.216.34", 443)
	ctx := context.Background()
	if d, _ := p.Chain.DecideExplain(ctx, req); !d.Allowed() {
		b.Fatalf("not allowed: %+v", d)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Chain.Decide(ctx, req)
	}
}

func BenchmarkChainOneUncached(b *testing.B) {
	benchDecide(b, loadTOML(b, strings.ReplaceAll(benchOne, "CACHE", "0s"), Options{Builtins: builtin.Lookup, CacheEntries: -1}))
}

func BenchmarkChainOneCached(b *testing.B) {
	benchDecide(b, loadTOML(b, strings.ReplaceAll(benchOne, "CACHE", "1h"), Options{Builtins: builtin.Lookup}))
}

// BenchmarkChainOneCachedMetrics is BenchmarkChainOneCached with
// Options.Metrics: the difference is what recording a decision costs.
func BenchmarkChainOneCachedMetrics(b *testing.B) {
	benchDecide(b, loadTOML(b, strings.ReplaceAll(benchOne, "CACHE", "1h"), Options{Builtins: builtin.Lookup, Metrics: metrics.New()}))
}

func BenchmarkChainThreeUncached(b *testing.B) {
	benchDecide(b, loadTOML(b, benchChain3, Options{Builtins: builtin.Lookup, CacheEntries: -1}))
}

// BenchmarkGoSDKCall is the same allowlist decision through go-sdk v1.7.1's
// own Plugin.Call (reused instance, manifest timeout set as ours is), for
// comparison with BenchmarkChainOneUncached.
func BenchmarkGoSDKCall(b *testing.B) {
	wasm, _ := builtin.Lookup("allowlist")
	ctx := context.Background()
	p, err := extism.NewPlugin(ctx, extism.Manifest{
		Wasm:    []extism.Wasm{extism.WasmData{Data: wasm}},
		Config:  builtin.Config("allowlist", `{"rules":["tcp://api.example.test:443","tcp://*.cdn.example.test:443"],"cache_ttl":"0s"}`),
		Timeout: 100,
	}, extism.PluginConfig{EnableWasi: true, RuntimeConfig: wazero.NewRuntimeConfig().WithCompilationCache(testbuild.Cache())}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	req := connect("93.184.216.34", 443)
	in := policy.AppendRequestJSON(nil, req)
	b.ReportAllocs()
	for b.Loop() {
		rc, out, err := p.Call("decide", in)
		if err != nil || rc != 0 {
			b.Fatal(rc, err)
		}
		if v, err := policy.ParseVerdictJSON(out); err != nil || !v.Allowed() {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkLoadThree is the start-up cost of a three-plugin manifest with a
// warm compilation cache: parse, compile (cache hit), one instance per
// plugin with _initialize, describe and validate.
func BenchmarkLoadThree(b *testing.B) {
	loadTOML(b, benchChain3, Options{Builtins: builtin.Lookup}) // warm the cache
	b.ReportAllocs()
	for b.Loop() {
		p, err := loadTOMLErr(b, benchChain3, Options{Builtins: builtin.Lookup})
		if err != nil {
			b.Fatal(err)
		}
		p.Close(context.Background())
	}
}

// benchDecideCold is benchDecide with the CPU caches and TLBs evicted
// before every decision, as a guest's own work between two connects evicts
// them: it touches one line in every 4 KiB page of 256 MiB, then times the
// decision alone. cold-median-ns/op is the median decision (ns/op includes
// the eviction). In a running guest a decision costs about this, not what
// BenchmarkChainOneUncached says (BENCHMARKS.md, "Decision cost in a
// running guest").
func benchDecideCold(b *testing.B, p *Policy) {
	req := connect("93.184.216.34", 443)
	ctx := context.Background()
	if d, _ := p.Chain.DecideExplain(ctx, req); !d.Allowed() {
		b.Fatalf("not allowed: %+v", d)
	}
	junk := make([]byte, 256<<20)
	var ds []time.Duration
	var sink byte
	for b.Loop() {
		for i := 0; i < len(junk); i += 4096 {
			junk[i]++
			sink += junk[i]
		}
		start := time.Now()
		p.Chain.Decide(ctx, req)
		ds = append(ds, time.Since(start))
	}
	_ = sink
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "cold-median-ns/op")
}

func BenchmarkChainOneUncachedCold(b *testing.B) {
	benchDecideCold(b, loadTOML(b, strings.ReplaceAll(benchOne, "CACHE", "0s"), Options{Builtins: builtin.Lookup, CacheEntries: -1}))
}

func BenchmarkChainThreeUncachedCold(b *testing.B) {
	benchDecideCold(b, loadTOML(b, benchChain3, Options{Builtins: builtin.Lookup, CacheEntries: -1}))
}

// The same uncached allowlist decision through the chain on each engine
// (docs/plugins.md#8-engines); BenchmarkChainOneUncached is the kernel's.
func benchEngine(b *testing.B, engine string, timeout bool) {
	text := strings.ReplaceAll(benchOne, "CACHE", "0s")
	text = strings.Replace(text, `use = "allowlist"`, `use = "allowlist"`+"\nengine = \""+engine+"\"", 1)
	p := loadTOML(b, text, Options{Builtins: builtin.Lookup, CacheEntries: -1})
	if got := p.Chain.Engines()[0].Engine; got != engine {
		b.Fatalf("engine %s", got)
	}
	if !timeout {
		// go-sdk then derives no context with a deadline per call.
		p.Chain.plugins[0].mod.(*sdkModule).cfg.timeout = 0
	}
	benchDecide(b, p)
}

func BenchmarkEngineKernel(b *testing.B) { benchEngine(b, EngineWasmgate, true) }

func BenchmarkEngineGoSDK(b *testing.B) { benchEngine(b, EngineExtism, true) }

func BenchmarkEngineGoSDKNoTimeout(b *testing.B) { benchEngine(b, EngineExtism, false) }

func BenchmarkEngineNative(b *testing.B) { benchEngine(b, EngineNative, true) }

// nativeThree is benchChain3 with every built-in on the native engine.
var nativeThree = decisionbench.Native(benchChain3)

func BenchmarkChainThreeUncachedNative(b *testing.B) {
	benchDecide(b, loadTOML(b, nativeThree, Options{Builtins: builtin.Lookup, CacheEntries: -1}))
}

func BenchmarkChainOneUncachedColdNative(b *testing.B) {
	text := decisionbench.Native(strings.ReplaceAll(benchOne, "CACHE", "0s"))
	benchDecideCold(b, loadTOML(b, text, Options{Builtins: builtin.Lookup, CacheEntries: -1}))
}

func BenchmarkChainThreeUncachedColdNative(b *testing.B) {
	benchDecideCold(b, loadTOML(b, nativeThree, Options{Builtins: builtin.Lookup, CacheEntries: -1}))
}

// BenchmarkEngineGoSDKNoPool is one decision on a fresh go-sdk instance
// (created, started, called, closed), what the go-sdk engine would cost
// without its pool of reused Plugins.
func BenchmarkEngineGoSDKNoPool(b *testing.B) {
	text := strings.ReplaceAll(benchOne, "CACHE", "0s")
	text = strings.Replace(text, `use = "allowlist"`, `use = "allowlist"`+"\nengine = \"extism\"", 1)
	p := loadTOML(b, text, Options{Builtins: builtin.Lookup, CacheEntries: -1})
	mod := p.Chain.plugins[0].mod
	in := policy.AppendRequestJSON(nil, connect("93.184.216.34", 443))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		inst, err := mod.Instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		out, err := inst.Call("decide", in)
		if v, perr := policy.ParseVerdictJSON(out); err != nil || perr != nil || !v.Allowed() {
			b.Fatal(err, perr)
		}
		inst.Close()
	}
}
