package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmgate/wasmgate/internal/interrupt"
)

// Benchmarks compare wasmgate's preview 1 with wazero's built-in one and a
// native build of the same program. Run:
//
//	go test -run '^$' -bench . -benchtime 3x ./host/

const copySize = 256 << 20

// nativeGuest builds testdata/guests/<name>/main.go for the host, dropping
// its wasip1 build constraint.
func nativeGuest(b testing.TB, name string) string {
	b.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(b), "testdata", "guests", name, "main.go"))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	text := strings.Replace(string(src), "//go:build wasip1", "", 1)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\ngo 1.24\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, msg)
	}
	return out
}

// feed returns a pipe whose read end delivers copySize bytes.
func feed(b *testing.B) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{'x'}, 1<<20)
	go func() {
		defer w.Close()
		for i := 0; i < copySize/len(chunk); i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}()
	return r
}

func devNull(b *testing.B) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// benchRuns runs wasm once to warm the caches, then b.N times, timed; each
// run must exit 0.
func benchRuns(b *testing.B, wasm []byte, cfg *Config) {
	b.Helper()
	if _, err := Run(context.Background(), wasm, cfg); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code, err := Run(context.Background(), wasm, cfg); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

// runWazeroWASI runs wasm under wazero's own wasi_snapshot_preview1.
func runWazeroWASI(b *testing.B, wasm []byte, mc wazero.ModuleConfig, interruptible bool) {
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(testCacheDir)
	if err != nil {
		b.Fatal(err)
	}
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache).WithCloseOnContextDone(interruptible))
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	if _, err := r.InstantiateWithConfig(ctx, wasm, mc); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkCopy256MiB(b *testing.B) {
	wasm := hostGoGuest(b, "copy")
	null := devNull(b)
	for _, on := range []bool{true, false} {
		suffix := ""
		if !on {
			suffix = "-noint"
		}
		b.Run("wasmgate"+suffix, func(b *testing.B) {
			cfg := NewConfig().WithStdout(null).WithCloseOnContextDone(on).WithCompilationCacheDir(testCacheDir)
			if _, err := Run(context.Background(), wasm, cfg); err != nil { // warm the cache
				b.Fatal(err)
			}
			b.SetBytes(copySize)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in := feed(b)
				code, err := Run(context.Background(), wasm, cfg.WithStdin(in))
				in.Close()
				if err != nil || code != 0 {
					b.Fatal(code, err)
				}
			}
		})
		b.Run("wazero-wasi"+suffix, func(b *testing.B) {
			runWazeroWASI(b, wasm, wazero.NewModuleConfig(), on) // warm the cache
			b.SetBytes(copySize)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in := feed(b)
				runWazeroWASI(b, wasm, wazero.NewModuleConfig().WithStdin(in).WithStdout(null).WithStderr(io.Discard), on)
				in.Close()
			}
		})
	}
	b.Run("native", func(b *testing.B) {
		bin := nativeGuest(b, "copy")
		b.SetBytes(copySize)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			in := feed(b)
			cmd := exec.Command(bin)
			cmd.Stdin, cmd.Stdout = in, null
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			in.Close()
		}
	})
}

// BenchmarkCopy256MiBExternal is BenchmarkCopy256MiB with stdin fed by
// another process (head -c 256M /dev/zero), as in `producer | wasmgate run`:
// the feeder does not compete with the guest for this process's Ps and
// netpoller, which otherwise penalises the two in-process runtimes but not
// the native child.
func BenchmarkCopy256MiBExternal(b *testing.B) {
	if _, err := exec.LookPath("head"); err != nil {
		b.Skip("no head(1)")
	}
	wasm := hostGoGuest(b, "copy")
	null := devNull(b)
	each := func(b *testing.B, run func(stdin *os.File)) {
		b.SetBytes(copySize)
		for i := 0; i < b.N; i++ {
			feeder := exec.Command("head", "-c", fmt.Sprint(copySize), "/dev/zero")
			in, err := feeder.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := feeder.Start(); err != nil {
				b.Fatal(err)
			}
			f, ok := in.(*os.File)
			if !ok {
				b.Fatalf("StdoutPipe gave a %T, want an *os.File", in)
			}
			run(f)
			if err := feeder.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("wasmgate-noint", func(b *testing.B) {
		cfg := NewConfig().WithStdout(null).WithCloseOnContextDone(false).WithCompilationCacheDir(testCacheDir)
		if _, err := Run(context.Background(), wasm, cfg); err != nil { // warm the cache
			b.Fatal(err)
		}
		b.ResetTimer()
		each(b, func(in *os.File) {
			if code, err := Run(context.Background(), wasm, cfg.WithStdin(in)); err != nil || code != 0 {
				b.Fatal(code, err)
			}
		})
	})
	b.Run("wazero-wasi-noint", func(b *testing.B) {
		runWazeroWASI(b, wasm, wazero.NewModuleConfig(), false) // warm the cache
		b.ResetTimer()
		each(b, func(in *os.File) {
			runWazeroWASI(b, wasm, wazero.NewModuleConfig().WithStdin(in).WithStdout(null).WithStderr(io.Discard), false)
		})
	})
	b.Run("native", func(b *testing.B) {
		bin := nativeGuest(b, "copy")
		b.ResetTimer()
		each(b, func(in *os.File) {
			cmd := exec.Command(bin)
			cmd.Stdin, cmd.Stdout = in, null
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkCopyStartup runs the copy guest on empty stdin: the fixed cost
// (start-up and exit) inside every BenchmarkCopy256MiB op. Subtracting it
// gives the copy's own throughput, which start-up otherwise dominates on
// slow machines (a warm wazero start is ~85 ms here, a 256 MiB pipe copy
// ~175 ms natively).
func BenchmarkCopyStartup(b *testing.B) {
	wasm := hostGoGuest(b, "copy")
	null := devNull(b)
	b.Run("wasmgate-noint", func(b *testing.B) {
		cfg := NewConfig().WithStdout(null).WithCloseOnContextDone(false).WithCompilationCacheDir(testCacheDir)
		benchRuns(b, wasm, cfg)
	})
	b.Run("wazero-wasi-noint", func(b *testing.B) {
		mc := wazero.NewModuleConfig().WithStdout(null).WithStderr(io.Discard)
		runWazeroWASI(b, wasm, mc, false) // warm the cache
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			runWazeroWASI(b, wasm, mc, false)
		}
	})
	b.Run("native", func(b *testing.B) {
		bin := nativeGuest(b, "copy")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cmd := exec.Command(bin)
			cmd.Stdout = null
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSmallWrites100k(b *testing.B) {
	wasm := hostGoGuest(b, "smallwrites")
	for _, on := range []bool{true, false} {
		suffix := ""
		if !on {
			suffix = "-noint"
		}
		b.Run("wasmgate"+suffix, func(b *testing.B) {
			dir := b.TempDir()
			cfg := NewConfig().WithArgs("w").WithDir(dir, "/data", ReadWrite).WithCloseOnContextDone(on).WithCompilationCacheDir(testCacheDir)
			warm := cfg.WithArgs("w", "1")
			if _, err := Run(context.Background(), wasm, warm); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				code, err := Run(context.Background(), wasm, cfg)
				if err != nil || code != 0 {
					b.Fatal(code, err)
				}
			}
		})
		b.Run("wazero-wasi"+suffix, func(b *testing.B) {
			dir := b.TempDir()
			mc := wazero.NewModuleConfig().WithFSConfig(wazero.NewFSConfig().WithDirMount(dir, "/data"))
			runWazeroWASI(b, wasm, mc.WithArgs("w", "1"), on)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runWazeroWASI(b, wasm, mc.WithArgs("w"), on)
			}
		})
	}
	b.Run("native", func(b *testing.B) {
		bin := nativeGuest(b, "smallwrites")
		dir := b.TempDir()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if out, err := exec.Command(bin, "100000", dir).CombinedOutput(); err != nil {
				b.Fatalf("%v %s", err, out)
			}
		}
	})
}

func BenchmarkHelloWarmStart(b *testing.B) {
	wasm := hostGoGuest(b, "hello")
	for _, on := range []bool{true, false} {
		name := "interruptible"
		if !on {
			name = "not-interruptible"
		}
		b.Run(name, func(b *testing.B) {
			cfg := NewConfig().WithArgs("hello").WithCloseOnContextDone(on).WithCompilationCacheDir(testCacheDir)
			b.ReportAllocs()
			benchRuns(b, wasm, cfg)
		})
		// The same guest, cache and runtime configuration under wazero's
		// own wasi_snapshot_preview1: the in-process baseline.
		b.Run("wazero-wasi-"+name, func(b *testing.B) {
			mc := wazero.NewModuleConfig().WithArgs("hello")
			runWazeroWASI(b, wasm, mc, on) // warm the cache
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runWazeroWASI(b, wasm, mc, on)
			}
		})
	}
	// What a user sees: `wasmgate run hello.wasm` against
	// `wazero run -cachedir D hello.wasm` as processes, both with a warm
	// cache (neither interruptible: wazero's CLI enables it only with
	// -timeout, wasmgate's always does).
	b.Run("cli-wazero", func(b *testing.B) {
		bins := cliBinaries(b)
		cache := filepath.Join(bins.dir, "wazero-cache")
		benchProcess(b, exec.Command(bins.wazero, "run", "-cachedir", cache, bins.hello, "x"))
	})
	b.Run("cli-wasmgate", func(b *testing.B) {
		bins := cliBinaries(b)
		cmd := exec.Command(bins.wasmgate, "run", bins.hello, "x")
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(bins.dir, "xdg"))
		benchProcess(b, cmd)
	})
}

// cliBins are the CLIs and guest file used by the process benchmarks.
type cliBins struct {
	dir, wazero, wasmgate, hello string
}

var (
	cliOnce  sync.Once
	cliBuilt cliBins
	cliErr   error
)

// cliBinaries builds wazero's CLI (from the module cache, the version in
// go.mod) and wasmgate's once per test binary, and writes the hello guest.
func cliBinaries(b *testing.B) cliBins {
	wasm := hostGoGuest(b, "hello")
	cliOnce.Do(func() {
		d := filepath.Join(guestDir, "cli")
		if cliErr = os.MkdirAll(d, 0o755); cliErr != nil {
			return
		}
		c := cliBins{dir: d, wazero: filepath.Join(d, "wazero"), wasmgate: filepath.Join(d, "wasmgate"), hello: filepath.Join(d, "hello.wasm")}
		for _, bin := range [][2]string{{c.wazero, "github.com/tetratelabs/wazero/cmd/wazero"}, {c.wasmgate, "./cmd/wasmgate"}} {
			cmd := exec.Command("go", "build", "-o", bin[0], bin[1])
			cmd.Dir = repoRoot(b)
			if msg, err := cmd.CombinedOutput(); err != nil {
				cliErr = fmt.Errorf("build %s: %v\n%s", bin[1], err, msg)
				return
			}
		}
		cliErr = os.WriteFile(c.hello, wasm, 0o644)
		cliBuilt = c
	})
	if cliErr != nil {
		b.Fatal(cliErr)
	}
	return cliBuilt
}

// benchProcess runs a copy of cmd once to warm caches, then b.N times.
func benchProcess(b *testing.B, cmd *exec.Cmd) {
	run := func() {
		c := exec.Command(cmd.Path, cmd.Args[1:]...)
		c.Env = cmd.Env
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", c.Args, err, out)
		}
	}
	run()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
}

// BenchmarkRewriteCache compares rewriting the hello guest for
// interruption on every start with reading the rewrite back from the
// on-disk cache (startup.go): what cachedRewrite saves per warm start.
func BenchmarkRewriteCache(b *testing.B) {
	wasm := hostGoGuest(b, "hello")
	b.Run("instrument", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := interrupt.Instrument(wasm); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached-hit", func(b *testing.B) {
		dir := b.TempDir()
		if _, err := cachedRewrite(dir, "interrupt", wasm, interrupt.Instrument); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := cachedRewrite(dir, "interrupt", wasm, func([]byte) ([]byte, error) {
				return nil, errors.New("cache miss")
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLoop measures what WithCloseOnContextDone(true) (the default:
// a guest in a tight loop can be stopped) costs CPU-bound guest code.
func BenchmarkLoop(b *testing.B) {
	wasm := hostGoGuest(b, "loop")
	for _, on := range []bool{true, false} {
		name := "interruptible"
		if !on {
			name = "not-interruptible"
		}
		b.Run(name, func(b *testing.B) {
			cfg := NewConfig().WithArgs("loop", "50000000").WithCloseOnContextDone(on).WithCompilationCacheDir(testCacheDir)
			benchRuns(b, wasm, cfg)
		})
	}
}

// BenchmarkHostCall measures the host side of single calls (no guest
// code): fd_write of 64 bytes to a discarded stdout, clock_time_get, and a
// non-blocking poll_oneoff with one clock subscription of timeout 0.
func BenchmarkHostCall(b *testing.B) {
	h := newHarness(b, nil)
	iov := []byte{0, 16, 0, 0, 64, 0, 0, 0} // buf 4096, len 64
	h.put(100, iov)
	putSub(h, 0, 1, 0, 1, 0, 0) // clock, monotonic, timeout 0
	for _, c := range []struct {
		name string
		fn   string
		args []uint64
	}{
		{"fd_write", "fd_write", []uint64{1, 100, 1, 200}},
		{"clock_time_get", "clock_time_get", []uint64{1, 0, 200}},
		{"poll_oneoff_0", "poll_oneoff", []uint64{0, 4096, 1, 8000}},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := h.fns[c.fn]
			st := make([]uint64, len(c.args))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				copy(st, c.args)
				if e := f.fn(h.ctx, h.m, st); e != 0 {
					b.Fatal(e)
				}
			}
		})
	}
}

// BenchmarkInstanceStart: a warm start of the hello guest through the
// embedding API (Runtime.Compile once, then CompiledGuest.Run per
// instance) against a bare wazero InstantiateModule of one compiled module
// under wazero's own wasi_snapshot_preview1. Both run the guest's _start
// (the Go runtime's initialisation dominates) with stdout discarded.
func BenchmarkInstanceStart(b *testing.B) {
	wasm := hostGoGuest(b, "hello")
	ctx := context.Background()
	for _, on := range []bool{true, false} {
		name := "wasmgate-compiled"
		if !on {
			name += "-not-interruptible"
		}
		b.Run(name, func(b *testing.B) {
			benchCompiledRuns(b, wasm, on)
		})
	}
	b.Run("wazero-compiled", func(b *testing.B) {
		r := wazero.NewRuntime(ctx)
		defer r.Close(ctx)
		wasi_snapshot_preview1.MustInstantiate(ctx, r)
		compiled, err := r.CompileModule(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		mc := wazero.NewModuleConfig().WithArgs("hello").WithName("")
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			m, err := r.InstantiateModule(ctx, compiled, mc)
			if err != nil {
				b.Fatal(err)
			}
			m.Close(ctx)
		}
	})
	// The one-shot path: host.Run with the on-disk cache warm.
	b.Run("wasmgate-Run", func(b *testing.B) {
		benchRuns(b, wasm, NewConfig().WithArgs("hello").WithCompilationCacheDir(testCacheDir))
	})
}

// benchCompiledRuns times CompiledGuest.Run of the hello guest.
func benchCompiledRuns(b *testing.B, wasm []byte, interruptible bool) {
	ctx := context.Background()
	rt := NewRuntime(ctx, WithInMemoryCache(), WithInterruptible(interruptible))
	defer rt.Close(ctx)
	g, err := rt.Compile(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close(ctx)
	cfg := NewConfig().WithArgs("hello")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if code, err := g.Run(ctx, cfg); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

// BenchmarkHostStateLookup: what every host call pays to find its
// instance's state (the host module is shared by a compiled guest's
// instances): a context lookup, under the cancel context Run's caller
// typically adds.
func BenchmarkHostStateLookup(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &state{}
	ctx = withHostState(ctx, s)
	b.ReportAllocs()
	for b.Loop() {
		if hostState(ctx) != s {
			b.Fatal("wrong state")
		}
	}
}
