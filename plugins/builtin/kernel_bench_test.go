package builtin

import (
	"context"
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmgate/wasmgate/internal/interrupt"
)

// fakeKernel implements the Extism kernel imports (extism:host/env) in Go
// over one byte slice, the way a host that speaks the kernel ABI itself
// does. It isolates the plugin's own cost per decision from go-sdk's
// per-call overhead.
type fakeKernel struct {
	mem      []byte
	top      uint64
	lens     map[uint64]uint64
	in       uint64 // offset of the input
	inLen    uint64
	out      []byte
	config   map[string]string
	hasError bool
}

func (k *fakeKernel) reset(input []byte) {
	k.top = 8
	clear(k.lens)
	k.in = k.alloc(uint64(len(input)))
	k.inLen = uint64(len(input))
	copy(k.mem[k.in:], input)
	k.out, k.hasError = nil, false
}

func (k *fakeKernel) alloc(n uint64) uint64 {
	if n == 0 || k.top+n > uint64(len(k.mem)) {
		return 0
	}
	p := k.top
	k.top += (n + 7) &^ 7
	k.lens[p] = n
	return p
}

func (k *fakeKernel) module(r wazero.Runtime) wazero.HostModuleBuilder {
	b := r.NewHostModuleBuilder("extism:host/env")
	fn := func(name string, f func(ctx context.Context, m api.Module, stack []uint64), params, results []api.ValueType) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(f), params, results).Export(name)
	}
	i64, i32 := api.ValueTypeI64, api.ValueTypeI32
	fn("input_length", func(_ context.Context, _ api.Module, s []uint64) { s[0] = k.inLen }, nil, []api.ValueType{i64})
	fn("input_load_u64", func(_ context.Context, _ api.Module, s []uint64) {
		s[0] = binary.LittleEndian.Uint64(k.mem[k.in+s[0]:])
	}, []api.ValueType{i64}, []api.ValueType{i64})
	fn("input_load_u8", func(_ context.Context, _ api.Module, s []uint64) { s[0] = uint64(k.mem[k.in+s[0]]) }, []api.ValueType{i64}, []api.ValueType{i32})
	fn("alloc", func(_ context.Context, _ api.Module, s []uint64) { s[0] = k.alloc(s[0]) }, []api.ValueType{i64}, []api.ValueType{i64})
	fn("length", func(_ context.Context, _ api.Module, s []uint64) { s[0] = k.lens[s[0]] }, []api.ValueType{i64}, []api.ValueType{i64})
	fn("load_u64", func(_ context.Context, _ api.Module, s []uint64) { s[0] = binary.LittleEndian.Uint64(k.mem[s[0]:]) }, []api.ValueType{i64}, []api.ValueType{i64})
	fn("load_u8", func(_ context.Context, _ api.Module, s []uint64) { s[0] = uint64(k.mem[s[0]]) }, []api.ValueType{i64}, []api.ValueType{i32})
	fn("store_u64", func(_ context.Context, _ api.Module, s []uint64) { binary.LittleEndian.PutUint64(k.mem[s[0]:], s[1]) }, []api.ValueType{i64, i64}, nil)
	fn("store_u8", func(_ context.Context, _ api.Module, s []uint64) { k.mem[s[0]] = byte(s[1]) }, []api.ValueType{i64, i32}, nil)
	fn("output_set", func(_ context.Context, _ api.Module, s []uint64) { k.out = k.mem[s[0] : s[0]+s[1]] }, []api.ValueType{i64, i64}, nil)
	fn("error_set", func(_ context.Context, _ api.Module, s []uint64) { k.hasError = true }, []api.ValueType{i64}, nil)
	fn("config_get", func(_ context.Context, _ api.Module, s []uint64) {
		v, ok := k.config[string(k.mem[s[0]:s[0]+k.lens[s[0]]])]
		if !ok {
			s[0] = 0
			return
		}
		p := k.alloc(uint64(len(v)))
		copy(k.mem[p:], v)
		s[0] = p
	}, []api.ValueType{i64}, []api.ValueType{i64})
	fn("get_log_level", func(_ context.Context, _ api.Module, s []uint64) { s[0] = 1 << 31 }, nil, []api.ValueType{i32})
	for _, l := range []string{"log_trace", "log_debug", "log_info", "log_warn", "log_error"} {
		fn(l, func(context.Context, api.Module, []uint64) {}, []api.ValueType{i64}, nil)
	}
	return b
}

// BenchmarkDecideKernel measures one decide of each built-in with the
// kernel ABI served directly (cached function handle, one top-level wasm
// call per decision) on a runtime with close-on-context-done, as under a
// manifest timeout. What remains is the plugin: input copy, parse, rule
// match, output. The request is a 135-byte tcp.connect.
func BenchmarkDecideKernel(b *testing.B) { benchDecideKernel(b, true) }

// BenchmarkDecideKernelNoTimeout is BenchmarkDecideKernel without
// close-on-context-done, to show what the termination checks cost. wasmgate
// never runs plugins like this (a runaway plugin would hang the host).
func BenchmarkDecideKernelNoTimeout(b *testing.B) { benchDecideKernel(b, false) }

// BenchmarkDecideKernelInterrupt is BenchmarkDecideKernel with the
// mechanism wasmgate uses: the plugin rewritten by internal/interrupt,
// wazero's close-on-context-done off.
func BenchmarkDecideKernelInterrupt(b *testing.B) { benchDecideKernelWith(b, false, true) }

func benchDecideKernel(b *testing.B, closeOnDone bool) { benchDecideKernelWith(b, closeOnDone, false) }

func benchDecideKernelWith(b *testing.B, closeOnDone, instrument bool) {
	req := []byte(`{"op":"tcp.connect","proto":"tcp","addr":"198.51.100.10","port":443,"names":["api.example.test"],"guest":"app","time_ms":1795780800000}`)
	configs := map[string]string{
		"allowlist":      `{"rules":["tcp://*.example.test:443"]}`,
		"denylist":       `{"rules":["tcp://10.0.0.0/8"]}`,
		"special-ranges": `{}`,
		"ratelimit":      `{"limits":{"tcp.connect":"100000/1ms"}}`,
	}
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone))
			defer r.Close(ctx)
			wasi_snapshot_preview1.MustInstantiate(ctx, r)
			k := &fakeKernel{mem: make([]byte, 1<<20), lens: map[uint64]uint64{}, config: Config(name, configs[name])}
			if _, err := k.module(r).Instantiate(ctx); err != nil {
				b.Fatal(err)
			}
			wasm, _ := Lookup(name)
			if instrument {
				var err error
				if wasm, err = interrupt.Instrument(wasm); err != nil {
					b.Fatal(err)
				}
			}
			mod, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
			if err != nil {
				b.Fatal(err)
			}
			decide := mod.ExportedFunction("decide")
			stack := make([]uint64, 1)
			call := func() {
				k.reset(req)
				if err := decide.CallWithStack(ctx, stack); err != nil || stack[0] != 0 || k.hasError || len(k.out) == 0 {
					b.Fatalf("decide: %v rc=%d err=%v out=%q", err, stack[0], k.hasError, k.out)
				}
			}
			call()
			b.Logf("%s: %s", name, k.out)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				call()
			}
			// CPU time per op is steadier than wall time on a shared machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime returns the process's user+system CPU time in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
