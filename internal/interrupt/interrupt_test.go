package interrupt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// tool returns the path of a wabt tool; it skips when the tool is missing,
// unless WASMGATE_REQUIRE_TOOLCHAINS is set (CI), where it fails.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Missing(t, name, err)
	}
	return p
}

func wat(t testing.TB, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(tool(t, "wat2wasm"), "--enable-all", "--no-check", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	goGuestOnce sync.Once
	goGuest     []byte
	goGuestErr  error
)

// spinGuest is a Go wasip1 command (testdata/guests/spin) that prints
// "spinning" and loops forever; built once per test binary.
func spinGuest(t testing.TB) []byte {
	t.Helper()
	goGuestOnce.Do(func() {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("wasmgate-interrupt-spin-%d.wasm", os.Getpid()))
		defer os.Remove(out)
		cmd := exec.Command("go", "build", "-o", out, "./testdata/guests/spin")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			goGuestErr = fmt.Errorf("%v\n%s", err, msg)
			return
		}
		goGuest, goGuestErr = os.ReadFile(out)
	})
	if goGuestErr != nil {
		t.Fatal(goGuestErr)
	}
	return goGuest
}

// verify disassembles out with wabt's wasm-objdump, an independent
// decoder, and checks that every function but the added last one starts
// with the check, that every loop is followed by it, and that the added
// function refills the budget, tests the flag and returns to Go.
func verify(t *testing.T, out []byte) (funcs, loops int) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "out.wasm")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command(tool(t, "wasm-objdump"), "-d", p).Output()
	if err != nil {
		t.Fatalf("wasm-objdump: %v", err)
	}
	type fn struct {
		idx string
		ins []string
	}
	var all []*fn
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, " func["); i >= 0 && strings.HasSuffix(line, ":") {
			idx, _, _ := strings.Cut(line[i+len(" func["):], "]")
			all = append(all, &fn{idx: idx})
			continue
		}
		_, in, ok := strings.Cut(line, "| ")
		in = strings.TrimSpace(in)
		if len(all) == 0 || !ok || in == "" || strings.HasPrefix(in, "local[") {
			continue
		}
		f := all[len(all)-1]
		f.ins = append(f.ins, in)
	}
	if len(all) < 2 {
		t.Fatalf("disassembly has %d functions", len(all))
	}
	slow := all[len(all)-1]
	ops := func(ins []string) string {
		var o []string
		for _, in := range ins {
			o = append(o, strings.Fields(in)[0])
		}
		return strings.Join(o, " ")
	}
	if got, want := ops(slow.ins), "i32.const global.set global.get if unreachable end i32.const memory.grow drop end"; got != want {
		t.Fatalf("added function: %q, want %q", got, want)
	}
	if !strings.Contains(slow.ins[2], ExportName) || slow.ins[0] != "i32.const 4096" {
		t.Fatalf("added function does not test the exported flag: %q", slow.ins)
	}
	want := "global.get i32.const i32.sub global.set global.get i32.eqz if call end"
	n := len(strings.Fields(want))
	at := func(ins []string, i int) bool {
		return i+n <= len(ins) && ops(ins[i:i+n]) == want &&
			strings.HasPrefix(ins[i+7]+" ", "call "+slow.idx+" ")
	}
	for _, f := range all[:len(all)-1] {
		funcs++
		if !at(f.ins, 0) {
			t.Errorf("func[%s] does not start with the check: %q", f.idx, f.ins[:min(9, len(f.ins))])
		}
		for i, in := range f.ins {
			if strings.Fields(in)[0] == "loop" {
				loops++
				if !at(f.ins, i+1) {
					t.Errorf("func[%s]: loop at instruction %d without the check: %q", f.idx, i, f.ins[i:min(i+10, len(f.ins))])
				}
			}
		}
	}
	return funcs, loops
}

var (
	cacheOnce sync.Once
	cache     wazero.CompilationCache
)

// newRuntime returns a runtime sharing one on-disk compilation cache, so
// that the Go guest compiles once per machine (child processes included),
// not once per test: under -race that compile takes tens of seconds.
func newRuntime(ctx context.Context) wazero.Runtime {
	cacheOnce.Do(func() {
		dir := testenv.CacheDir("interrupt")
		c, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			c = wazero.NewCompilationCache()
		}
		cache = c
	})
	return wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
}

func compile(t testing.TB, wasm []byte) error {
	ctx := context.Background()
	r := newRuntime(ctx)
	defer r.Close(ctx)
	_, err := r.CompileModule(ctx, wasm)
	return err
}

func TestGoGuestEveryLoopChecked(t *testing.T) {
	in := spinGuest(t)
	out, err := Instrument(in)
	if err != nil {
		t.Fatal(err)
	}
	funcs, loops := verify(t, out)
	if funcs < 1000 || loops < 1000 {
		t.Fatalf("only %d functions and %d loops seen: disassembly not parsed?", funcs, loops)
	}
	again, err := Instrument(in)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatal("output is not deterministic (the compilation cache would miss)")
	}
}

func TestBuiltinPluginsEveryLoopChecked(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "plugins", "builtin", "*.wasm"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no built-in plugins: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Instrument(in)
			if err != nil {
				t.Fatal(err)
			}
			// Compiling and running them rewritten is the plugin kernel's
			// tests' job (plugins/internal/kernel).
			verify(t, out)
		})
	}
}

// run instantiates wasm with wazero's WASI, raises the flag after delay and
// returns how long _start ran after the raise, and its error.
func run(t *testing.T, wasm []byte, delay time.Duration, stdout *bytes.Buffer) (time.Duration, error) {
	t.Helper()
	ctx := context.Background()
	r := newRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	mc := wazero.NewModuleConfig().WithStartFunctions()
	if stdout != nil {
		mc = mc.WithStdout(stdout)
	}
	mod, err := r.InstantiateModule(ctx, cm, mc)
	if err != nil {
		t.Fatal(err)
	}
	flag := Find(mod)
	if flag == nil {
		t.Fatal("no flag exported")
	}
	var raised time.Time
	var mu sync.Mutex
	tm := time.AfterFunc(delay, func() {
		mu.Lock()
		raised = time.Now()
		mu.Unlock()
		flag.Raise()
	})
	defer tm.Stop()
	f := mod.ExportedFunction("_start")
	if f == nil {
		f = mod.ExportedFunction("run")
	}
	_, err = f.Call(ctx)
	mu.Lock()
	defer mu.Unlock()
	if raised.IsZero() {
		return 0, err
	}
	return time.Since(raised), err
}

// TestGCWhileSpinning: JIT code cannot be preempted, so a guest that never
// returned to Go would freeze the whole process at the next stop-the-world
// (and with it the timer that should raise the flag). The budget's call
// out through memory.grow must let runtime.GC complete while the guest
// spins. Run in a child process so that a freeze fails the test instead of
// hanging it.
func TestGCWhileSpinning(t *testing.T) {
	if os.Getenv("WASMGATE_INTERRUPT_CHILD") == "gc" {
		out, err := Instrument(spinGuest(t))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 20; i++ {
				time.Sleep(20 * time.Millisecond)
				runtime.GC()
			}
		}()
		_, err = run(t, out, 1500*time.Millisecond, nil)
		<-done
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("err = %v, want an unreachable trap", err)
		}
		return
	}
	spinGuest(t) // build in the parent, so the child's clock starts late
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestGCWhileSpinning$", "-test.v")
	cmd.Env = append(os.Environ(), "WASMGATE_INTERRUPT_CHILD=gc")
	msg, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the process froze while the guest spun (GC could not stop it)\n%s", msg)
	}
	if err != nil || !strings.Contains(string(msg), "--- PASS: TestGCWhileSpinning") {
		t.Fatalf("child: %v\n%s", err, msg)
	}
}

func TestRaiseStopsSpinningGoGuest(t *testing.T) {
	out, err := Instrument(spinGuest(t))
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	after, err := run(t, out, 200*time.Millisecond, &stdout)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v, want an unreachable trap", err)
	}
	if after > 2*time.Second {
		t.Errorf("stopped %v after the raise", after)
	}
	if stdout.String() != "spinning\n" {
		t.Errorf("stdout %q: the guest did not run normally before the raise", stdout.String())
	}
}

// A recursion that never loops is stopped at a function entry; a loop with
// parameters and results (multi-value) keeps its semantics.
func TestRaiseStopsRecursionAndKeepsSemantics(t *testing.T) {
	src := `(module
  (func $fib (param i64) (result i64)
    (if (result i64) (i64.lt_u (local.get 0) (i64.const 2))
      (then (local.get 0))
      (else (i64.add (call $fib (i64.sub (local.get 0) (i64.const 1)))
                     (call $fib (i64.sub (local.get 0) (i64.const 2)))))))
  (func (export "run") (drop (call $fib (i64.const 90))))
  (func (export "sum") (param $n i32) (result i32) (local $acc i32)
    (i32.const 0) (local.get $n)
    (loop $l (param i32 i32) (result i32)
      (local.set $n) (local.set $acc)
      (i32.add (local.get $acc) (local.get $n))
      (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n))
      (drop)))
  (func (export "grow") (result i32)
    (memory.fill (i32.const 0) (i32.const 7) (i32.const 100))
    (i32.load8_u (i32.const 99)))
  (memory 1)
  (global $g (mut i32) (i32.const 5))
  (func (export "g") (result i32) (global.set $g (i32.add (global.get $g) (i32.const 1))) (global.get $g))
  (table 2 funcref) (elem (i32.const 0) $fib)
  (func (export "simd") (result i32) (i32x4.extract_lane 2 (i32x4.add (v128.const i32x4 1 2 3 4) (v128.const i32x4 10 20 30 40))))
  (func (export "sel") (result i32) (select (result i32) (i32.const 3) (i32.const 4) (ref.is_null (ref.null func))))
)`
	in := wat(t, src)
	out, err := Instrument(in)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, out)
	ctx := context.Background()
	for _, m := range [][]byte{in, out} {
		r := newRuntime(ctx)
		mod, err := r.Instantiate(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			fn   string
			args []uint64
			want uint64
		}{{"sum", []uint64{10}, 55}, {"grow", nil, 7}, {"g", nil, 6}, {"g", nil, 7}, {"simd", nil, 33}, {"sel", nil, 3}} {
			res, err := mod.ExportedFunction(c.fn).Call(ctx, c.args...)
			if err != nil || res[0] != c.want {
				t.Errorf("%s%v = %v, %v; want %d", c.fn, c.args, res, err, c.want)
			}
		}
		r.Close(ctx)
	}
	after, err := run(t, out, 100*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v, want an unreachable trap", err)
	}
	if after > 2*time.Second {
		t.Errorf("stopped %v after the raise", after)
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"start function", `(module (func $s) (start $s))`, "start function"},
		{"export name taken", `(module (global (export "wasmgate.interrupt") i32 (i32.const 0)))`, "already exports"},
		{"writes the flag's index", `(module (global $g (mut i32) (i32.const 0)) (func (global.set 1 (i32.const 0))))`, "global 1 does not exist"},
		{"reads the flag's index", `(module (func (drop (global.get 0))))`, "global 0 does not exist"},
		{"threads", `(module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))`, "opcode 0xfe"},
		{"tail call", `(module (func $f (return_call $f)))`, "opcode 0x12"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := func() (b []byte) {
				defer func() {
					if r := recover(); r != nil {
						t.Fatal(r)
					}
				}()
				return wat(t, c.src)
			}()
			_, err := Instrument(in)
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrUnsupported mentioning %q", err, c.want)
			}
		})
	}
}

func TestNoGlobalsNoExportsAndDebugDropped(t *testing.T) {
	in := wat(t, `(module (func (loop (br 0))))`)
	// Append a custom .debug_info section.
	name := ".debug_info"
	in = append(in, 0, byte(1+len(name)+3), byte(len(name)))
	in = append(in, name...)
	in = append(in, 1, 2, 3)
	out, err := Instrument(in)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(name)) {
		t.Error("DWARF section kept with stale offsets")
	}
	if err := compile(t, out); err != nil {
		t.Fatal(err)
	}
	verify(t, out)
	ctx := context.Background()
	r := newRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if Find(mod) == nil {
		t.Fatal("flag not exported")
	}
}

// FuzzInstrument: no input makes Instrument panic, and a module wazero
// accepts is never turned into one it rejects.
func FuzzInstrument(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	for _, src := range []string{
		`(module (func (loop (br 0))))`,
		`(module (memory 1) (global (mut i32) (i32.const 1)) (func (export "f") (param i32) (result i32) (block (loop (br_table 0 1 (local.get 0)))) (i32.load offset=300 (global.get 0))))`,
		`(module (func (result i32) (i32x4.extract_lane 1 (v128.const i64x2 1 2)) (memory.size) (drop)) (memory 1))`,
	} {
		// Without wat2wasm the seeds are dropped, except under CI, where
		// wat fails the target.
		if _, err := exec.LookPath("wat2wasm"); err == nil || testenv.CI() {
			f.Add(wat(f, src))
		}
	}
	ctx := context.Background()
	r := newRuntime(ctx)
	f.Cleanup(func() { r.Close(ctx) })
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Instrument(in)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v does not match ErrUnsupported", err)
			}
			return
		}
		if _, err := r.CompileModule(ctx, in); err != nil {
			return
		}
		if _, err := r.CompileModule(ctx, out); err != nil {
			t.Fatalf("valid module rewritten into an invalid one: %v", err)
		}
	})
}

func TestMemo(t *testing.T) {
	in := wat(t, `(module (func (loop (br 0))))`)
	a, err := Memo(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Memo(append([]byte(nil), in...))
	if err != nil || &a[0] != &b[0] {
		t.Fatalf("second Memo of the same bytes did not reuse the result (%v)", err)
	}
	want, _ := Instrument(in)
	if !bytes.Equal(a, want) {
		t.Fatal("Memo differs from Instrument")
	}
	if _, err := Memo(in[:len(in)-1]); err == nil {
		t.Fatal("truncated module accepted")
	}
	for i := 0; i < memoSize+1; i++ { // evicts the first
		Memo(wat(t, fmt.Sprintf(`(module (func (drop (i32.const %d))))`, i)))
	}
	if memo.m[sha256.Sum256(in)] != nil || len(memo.m) != memoSize {
		t.Fatalf("memo holds %d entries, first not evicted", len(memo.m))
	}
}

// BenchmarkInstrument rewrites a 2.6 MB Go guest (what a start-up without
// the host's on-disk rewrite cache pays).
func BenchmarkInstrument(b *testing.B) {
	in := spinGuest(b)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Instrument(in); err != nil {
			b.Fatal(err)
		}
	}
}
