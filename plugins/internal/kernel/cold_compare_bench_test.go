package kernel

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
)

// BenchmarkColdCompare compares builds of a plugin cold, side by side in
// one process: WASMGATE_COLD_FILES lists wasm files (a builtins bundle as
// FILE:NAME, run as that built-in with two allowlist-style rules), and each
// round calls every one in turn after the 256 MiB page walk of
// BenchmarkColdCall, then once more hot. Alternating call by call is what
// makes builds comparable on a machine whose speed drifts from minute to
// minute. It prints the median cold and hot call of each file, for a
// request without names (a connect to an address literal) and one with.
// How the SDK changes of issue 15 were measured (BENCHMARKS.md, "Decision
// cost in a running guest"):
//
//	WASMGATE_COLD_FILES=old.wasm,new.wasm go test -run XXX -bench ColdCompare -benchtime 1x ./plugins/internal/kernel/
func BenchmarkColdCompare(b *testing.B) {
	files := os.Getenv("WASMGATE_COLD_FILES")
	if files == "" {
		b.Skip("set WASMGATE_COLD_FILES=a.wasm,b.wasm[:BUILTIN],...")
	}
	reqs := []struct {
		name string
		bin  []byte
	}{
		{"no names", toBinary(b, []byte(`{"op":"tcp.connect","proto":"tcp","addr":"127.0.0.1","port":8443,"guest":"app","time_ms":1795780800000}`))},
		{"names", toBinary(b, []byte(`{"op":"tcp.connect","proto":"tcp","addr":"93.184.216.34","port":443,"names":["api.example.test"],"guest":"app","time_ms":1795780800000}`))},
	}
	e := NewEngineWithCache(testbuild.Cache())
	list := strings.Split(files, ",")
	var insts []*Instance
	for _, f := range list {
		path, sel, _ := strings.Cut(f, ":")
		wasm, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		cfg := Config{Name: f, Wasm: wasm, Timeout: time.Second}
		if sel != "" {
			cfg.Config = builtin.Config(sel, `{"rules":["tcp://api.example.test:443","tcp://*.cdn.example.test:443"],"cache_ttl":"0s"}`)
		}
		m, err := e.Compile(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close(context.Background()) })
		inst, err := m.Instantiate(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if inst.FastSize() == 0 {
			b.Fatalf("%s: no fast path", f)
		}
		insts = append(insts, inst)
	}
	junk := make([]byte, 256<<20)
	var sink byte
	for b.Loop() {
		for _, req := range reqs {
			hot := make([][]time.Duration, len(insts))
			cold := make([][]time.Duration, len(insts))
			for range 400 {
				for i, inst := range insts {
					sink += thrash(junk, 4096)
					start := time.Now()
					inst.DecideFast(req.bin)
					cold[i] = append(cold[i], time.Since(start))
					start = time.Now()
					inst.DecideFast(req.bin)
					hot[i] = append(hot[i], time.Since(start))
				}
			}
			for i := range insts {
				slices.Sort(hot[i])
				slices.Sort(cold[i])
				fmt.Printf("%-9s %-44s hot %6d ns  cold %6d ns\n", req.name, list[i],
					hot[i][len(hot[i])/2].Nanoseconds(), cold[i][len(cold[i])/2].Nanoseconds())
			}
		}
	}
	_ = sink
}
