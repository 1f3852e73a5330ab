package kernel

import (
	"context"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
)

// thrash evicts what a guest's own work between two decisions evicts.
func thrash(junk []byte, stride int) byte {
	var s byte
	for i := 0; i < len(junk); i += stride {
		junk[i]++
		s += junk[i]
	}
	return s
}

// medianCall runs before (untimed) and then call (timed) in b's loop, and
// reports the median call as cold-median-ns/op: a mean would be the few
// calls the scheduler interrupted.
func medianCall(b *testing.B, before, call func()) {
	var ds []time.Duration
	for b.Loop() {
		before()
		start := time.Now()
		call()
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "cold-median-ns/op")
}

// BenchmarkColdCall times single calls, hot and after evicting what a
// guest's own work between two decisions evicts (cold-median-ns/op, the
// median call): "tlb" touches one line in every 4 KiB page of 256 MiB (the
// TLBs and most of L2), "llc" walks 32 MiB line by line (the caches),
// "syscall" makes one system call, "sleep" blocks the thread for 50 µs.
// "nop" is an export that does nothing (the host and wazero call path,
// kernel.Call), "raw" a Go plugin without sdk/policy (testplugins/raw: the
// least a Go plugin does per decision), "sdkallow" sdk/policy's fast path
// with a handler that only allows (the SDK's own per-decision code),
// "allowlist" the built-in's decision; "sdkbare" and "allowbare" the same
// two on a request without names (a connect to an address literal). What it showed (BENCHMARKS.md, "Decision cost in a running
// guest"): cold, the SDK's code costs ~10× its hot time, the host's call
// path ~5×, and a 2 MiB walk (caches only, few pages) changes nothing:
// the cost is in pages of code and data touched, not in cache lines. A
// system call or a sleep alone (the kernel entry, another task on the CPU)
// leaves the call nearly hot: it is the guest's own work between two
// decisions that evicts.
//
//	go test -run XXX -bench ColdCall -benchtime 2000x ./plugins/internal/kernel/
func BenchmarkColdCall(b *testing.B) {
	in := []byte(`{"op":"tcp.connect","proto":"tcp","addr":"93.184.216.34","port":443,"names":["api.example.test"],"guest":"app","time_ms":1795780800000}`)
	bin := toBinary(b, in)
	// What a guest connecting to an IP literal sends: no names.
	bare := toBinary(b, []byte(`{"op":"tcp.connect","proto":"tcp","addr":"127.0.0.1","port":8443,"guest":"app","time_ms":1795780800000}`))
	a := builtinInstance(b, "allowlist", `{"rules":["tcp://api.example.test:443","tcp://*.cdn.example.test:443"],"cache_ttl":"0s"}`)
	e := NewEngineWithCache(testbuild.Cache())
	m, err := e.Compile(context.Background(), Config{Name: "nop", Wasm: testbuild.Bytes(b, "plugins/internal/testplugins/nop"), Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	nop, err := m.Instantiate(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	m2, err := e.Compile(context.Background(), Config{Name: "sdkallow", Wasm: testbuild.Bytes(b, "plugins/internal/testplugins/sdkallow"), Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer m2.Close(context.Background())
	sa, err := m2.Instantiate(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if sa.FastSize() == 0 {
		b.Fatal("sdkallow: no fast path")
	}
	m3, err := e.Compile(context.Background(), Config{Name: "raw", Wasm: testbuild.Bytes(b, "plugins/internal/testplugins/raw"), Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer m3.Close(context.Background())
	raw, err := m3.Instantiate(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	calls := map[string]func(){
		"raw":       func() { raw.DecideFast(bin) },
		"sdkbare":   func() { sa.DecideFast(bare) },
		"allowbare": func() { a.DecideFast(bare) },
		"sdkallow":  func() { sa.DecideFast(bin) },
		"nop":       func() { nop.Call("noop", nil) },
		"allowlist": func() { a.DecideFast(bin) },
	}
	junk := map[string][]byte{"llc": make([]byte, 32<<20), "tlb": make([]byte, 256<<20), "l2": make([]byte, 2<<20), "hot": nil}
	stride := map[string]int{"llc": 64, "tlb": 4096, "l2": 64, "hot": 64}
	for _, cn := range []string{"nop", "raw", "sdkallow", "sdkbare", "allowlist", "allowbare"} {
		for _, tn := range []string{"hot", "tlb", "llc", "syscall", "sleep"} {
			b.Run(cn+"/"+tn, func(b *testing.B) {
				medianCall(b, func() {
					switch tn {
					case "syscall":
						// One system call and nothing else: what a guest
						// does between two decisions at the least.
						syscall.Getppid()
					case "sleep":
						// The thread blocks (as a guest waiting on its
						// network does): the CPU runs something else.
						ts := syscall.Timespec{Nsec: 50_000}
						syscall.Nanosleep(&ts, nil)
					default:
						thrash(junk[tn], stride[tn])
					}
				}, calls[cn])
			})
		}
	}
}

// BenchmarkColdChain measures what one instance serving every chain entry
// of the built-ins' module could save (an idea of issue 15, not built: it
// would merge the entries' memories): three decisions after the page walk
// of BenchmarkColdCall, on three instances of the bundle (special-ranges,
// denylist, allowlist, as a chain of three holds them) against three on
// one allowlist instance (the same code and the same memory each time).
//
//	go test -run XXX -bench ColdChain -benchtime 400x ./plugins/internal/kernel/
func BenchmarkColdChain(b *testing.B) {
	bin := toBinary(b, []byte(`{"op":"tcp.connect","proto":"tcp","addr":"127.0.0.1","port":8443,"guest":"app","time_ms":1795780800000}`))
	rules := `{"rules":["tcp://127.0.0.1:8443"],"cache_ttl":"0s"}`
	three := []*Instance{
		builtinInstance(b, "special-ranges", `{"except":["127.0.0.0/8"],"cache_ttl":"0s"}`),
		builtinInstance(b, "denylist", `{"rules":["tcp://*:25"],"cache_ttl":"0s"}`),
		builtinInstance(b, "allowlist", rules),
	}
	one := builtinInstance(b, "allowlist", rules)
	junk := make([]byte, 256<<20)
	for _, c := range []struct {
		name  string
		insts []*Instance
	}{{"three-instances", three}, {"one-instance", []*Instance{one, one, one}}} {
		b.Run(c.name, func(b *testing.B) {
			var ds []time.Duration
			var sink byte
			for b.Loop() {
				sink += thrash(junk, 4096)
				start := time.Now()
				for _, inst := range c.insts {
					inst.DecideFast(bin)
				}
				ds = append(ds, time.Since(start))
			}
			_ = sink
			slices.Sort(ds)
			b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "cold-median-ns/op")
		})
	}
}

// BenchmarkColdThread measures the issue 15 idea of keeping a plugin's
// instance on one OS thread: the guest's thread hands each decision to a
// goroutine locked to its own thread (runtime.LockOSThread) and waits for
// the verdict, so the plugin's code and data could stay in that thread's
// CPU caches while the guest works. Against the direct call, each after
// the 256 MiB page walk of BenchmarkColdCall (what the guest's own work
// evicts), and hot. Not built: see BENCHMARKS.md, "One OS thread per
// instance".
//
//	go test -run XXX -bench ColdThread -benchtime 2000x ./plugins/internal/kernel/
func BenchmarkColdThread(b *testing.B) {
	bare := toBinary(b, []byte(`{"op":"tcp.connect","proto":"tcp","addr":"127.0.0.1","port":8443,"guest":"app","time_ms":1795780800000}`))
	a := builtinInstance(b, "allowlist", `{"rules":["tcp://127.0.0.1:8443"],"cache_ttl":"0s"}`)
	req, done := make(chan []byte), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		for in := range req {
			a.DecideFast(in)
			done <- struct{}{}
		}
	}()
	defer close(req)
	calls := map[string]func(){
		"direct": func() { a.DecideFast(bare) },
		"thread": func() { req <- bare; <-done },
	}
	junk := make([]byte, 256<<20)
	for _, cn := range []string{"direct", "thread"} {
		for _, tn := range []string{"hot", "tlb"} {
			b.Run(cn+"/"+tn, func(b *testing.B) {
				medianCall(b, func() {
					if tn == "tlb" {
						thrash(junk, 4096)
					}
				}, calls[cn])
			})
		}
	}
}
