package kernel

import (
	"context"
	"encoding/binary"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// watModule assembles a module written in the text format.
func watModule(t testing.TB, src string) []byte {
	t.Helper()
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		testenv.Missing(t, "wat2wasm", err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(wat2wasm, "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorder is a slog.Handler that keeps every record at or above its level.
type recorder struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// lines returns "LEVEL msg plugin=... key=value" for each record.
func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		s := rec.Level.String() + " " + rec.Message
		rec.Attrs(func(a slog.Attr) bool {
			s += " " + a.Key + "=" + a.Value.String()
			return true
		})
		out = append(out, s)
	}
	return out
}

// logPlugin logs one line at each Extism level (trace ... error), the last
// one with a byte that is not UTF-8, writes "hello" to WASI stdout, and
// outputs get_log_level as 8 little-endian bytes.
const logPlugin = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "get_log_level" (func $level (result i32)))
  (import "extism:host/env" "log_trace" (func $trace (param i64)))
  (import "extism:host/env" "log_debug" (func $debug (param i64)))
  (import "extism:host/env" "log_info" (func $info (param i64)))
  (import "extism:host/env" "log_warn" (func $warn (param i64)))
  (import "extism:host/env" "log_error" (func $error (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  ;; a two-byte kernel block "m" + c
  (func $msg (param $c i32) (result i64) (local $p i64)
    (local.set $p (call $alloc (i64.const 2)))
    (call $store_u8 (local.get $p) (i32.const 109))
    (call $store_u8 (i64.add (local.get $p) (i64.const 1)) (local.get $c))
    (local.get $p))
  (func (export "decide") (result i32) (local $p i64)
    (call $trace (call $msg (i32.const 116)))
    (call $debug (call $msg (i32.const 100)))
    (call $info (call $msg (i32.const 105)))
    (call $warn (call $msg (i32.const 119)))
    (call $error (call $msg (i32.const 0xff)))
    ;; iovec {16, 6} at 0; bytes written at 8
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $p (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $p) (i64.extend_i32_u (call $level)))
    (call $output_set (local.get $p) (i64.const 8))
    (i32.const 0)))`

// TestPluginLogs: a plugin's log lines reach the host's logger at the
// matching slog level with the plugin's name, only when the logger's level
// lets them through, and get_log_level tells the plugin that threshold
// (docs/plugins.md: 0 trace ... 4 error); WASI stdout is a debug line.
func TestPluginLogs(t *testing.T) {
	wasm := watModule(t, logPlugin)
	all := []string{
		"DEBUG plugin log plugin=logger msg=md",
		"INFO plugin log plugin=logger msg=mi",
		"WARN plugin log plugin=logger msg=mw",
		"ERROR plugin log plugin=logger msg=m?",
	}
	for _, c := range []struct {
		threshold slog.Level
		level     int32
		want      []string
	}{
		// A plugin's stdout is an info line.
		{slog.LevelDebug, 1, append(slices.Clone(all), "INFO plugin output plugin=logger text=hello")},
		{slog.LevelInfo, 2, append(slices.Clone(all[1:]), "INFO plugin output plugin=logger text=hello")},
		{slog.LevelWarn, 3, all[2:]},
		{slog.LevelError, 4, all[3:]},
		{slog.LevelError + 1, math.MaxInt32, nil},
	} {
		t.Run(c.threshold.String(), func(t *testing.T) {
			rec := &recorder{level: c.threshold}
			e := NewEngineWithCache(nil)
			m, err := e.Compile(context.Background(), Config{Name: "logger", Wasm: wasm, Logger: slog.New(rec)})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			inst, err := m.Instantiate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close()
			out, err := inst.Call("decide", nil)
			if err != nil || len(out) != 8 {
				t.Fatalf("decide: %q %v", out, err)
			}
			if got := int32(binary.LittleEndian.Uint64(out)); got != c.level {
				t.Errorf("get_log_level = %d, want %d", got, c.level)
			}
			if got := rec.lines(); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// kernelMemPlugin exercises alloc/free/length as the Extism kernel defines
// them and outputs what it saw as four little-endian u64:
// [0] 1 if freeing the newest block gave its offset to the next alloc,
// [1] length of a freed block in the middle (must be 0),
// [2] length of the live block after it (must be 4, untouched by the frees
// of the middle block, of NULL and of an offset that is no block),
// [3] 1 if a later alloc did not reuse the freed middle block.
const kernelMemPlugin = `(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (func (export "decide") (result i32) (local $a i64) (local $b i64) (local $c i64) (local $d i64) (local $e i64) (local $o i64)
    (local.set $a (call $alloc (i64.const 5)))
    (call $free (local.get $a))
    (local.set $b (call $alloc (i64.const 5)))
    (local.set $c (call $alloc (i64.const 3)))
    (local.set $d (call $alloc (i64.const 4)))
    (call $free (local.get $c))
    (call $free (i64.const 0))
    (call $free (i64.add (local.get $d) (i64.const 1)))
    (call $free (i64.const 1000000))
    (local.set $e (call $alloc (i64.const 2)))
    (local.set $o (call $alloc (i64.const 32)))
    (call $store_u64 (local.get $o) (i64.extend_i32_u (i64.eq (local.get $a) (local.get $b))))
    (call $store_u64 (i64.add (local.get $o) (i64.const 8)) (call $length (local.get $c)))
    (call $store_u64 (i64.add (local.get $o) (i64.const 16)) (call $length (local.get $d)))
    (call $store_u64 (i64.add (local.get $o) (i64.const 24)) (i64.extend_i32_u (i64.gt_u (local.get $e) (local.get $d))))
    (call $output_set (local.get $o) (i64.const 32))
    (i32.const 0)))`

// TestKernelFree: free gives the newest block's space back, a freed block
// has length 0 while its neighbours keep theirs, and freeing NULL or a
// pointer that is not the start of a block changes nothing.
func TestKernelFree(t *testing.T) {
	e := NewEngineWithCache(nil)
	m, err := e.Compile(context.Background(), Config{Name: "mem", Wasm: watModule(t, kernelMemPlugin)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	for range 2 { // the second call starts from a reset kernel memory
		out, err := inst.Call("decide", nil)
		if err != nil || len(out) != 32 {
			t.Fatalf("decide: %q %v", out, err)
		}
		var got [4]uint64
		for k := range got {
			got[k] = binary.LittleEndian.Uint64(out[8*k:])
		}
		if got != [4]uint64{1, 0, 4, 1} {
			t.Fatalf("got %v, want [1 0 4 1] (newest reused, freed length 0, neighbour intact, no reuse of a middle block)", got)
		}
	}
}

// TestInitTimeout: an _initialize that never returns is stopped after
// InitTimeout and the instance is refused; the default applies when the
// config leaves it zero.
func TestInitTimeout(t *testing.T) {
	wasm := watModule(t, `(module
  (func (export "_initialize") (loop $l (br $l)))
  (func (export "decide") (result i32) (i32.const 0)))`)
	e := NewEngineWithCache(nil)
	m, err := e.Compile(context.Background(), Config{Name: "spin", Wasm: wasm, InitTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if m.InitTimeout() != 50*time.Millisecond {
		t.Fatalf("InitTimeout() = %v", m.InitTimeout())
	}
	done := make(chan error, 1)
	go func() {
		inst, err := m.Instantiate(context.Background())
		if err == nil {
			inst.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "_initialize: timeout after 50ms") {
			t.Fatalf("got %v, want an _initialize timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a looping _initialize was not stopped")
	}
	d, err := e.Compile(context.Background(), Config{Name: "spin", Wasm: wasm})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	if d.InitTimeout() != DefaultInitTimeout {
		t.Fatalf("default InitTimeout() = %v, want %v", d.InitTimeout(), DefaultInitTimeout)
	}
}

// TestHasExport: only functions the host can call as plugin exports (no
// parameters, no result or one i32) count.
func TestHasExport(t *testing.T) {
	wasm := watModule(t, `(module
  (func (export "decide") (result i32) (i32.const 0))
  (func (export "plain"))
  (func (export "takes") (param i32))
  (func (export "wide") (result i64) (i64.const 0))
  (memory (export "memory") 1))`)
	e := NewEngineWithCache(nil)
	m, err := e.Compile(context.Background(), Config{Name: "x", Wasm: wasm})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	for name, want := range map[string]bool{"decide": true, "plain": true, "takes": false, "wide": false, "memory": false, "absent": false} {
		if got := m.HasExport(name); got != want {
			t.Errorf("HasExport(%q) = %v, want %v", name, got, want)
		}
	}
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	_, err = inst.Call("takes", nil)
	if ce, ok := err.(*CallError); !ok || ce.Kind != KindTrap || ce.Error() != `no export "takes"` {
		t.Fatalf("calling an export with parameters: %v", err)
	}
}

// TestOutOfRangeTraps: a kernel access outside kernel memory traps with a
// message naming the function, and the instance is dead afterwards.
func TestOutOfRangeTraps(t *testing.T) {
	wasm := watModule(t, `(module
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (func (export "decide") (result i32) (call $load_u8 (i64.const 123456))))`)
	e := NewEngineWithCache(nil)
	m, err := e.Compile(context.Background(), Config{Name: "oob", Wasm: wasm})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	_, err = inst.Call("decide", nil)
	ce, ok := err.(*CallError)
	if !ok || ce.Kind != KindTrap || !strings.Contains(ce.Error(), "load_u8: offset out of range") {
		t.Fatalf("got %v", err)
	}
	if !inst.Dead() {
		t.Fatal("instance alive after a trap")
	}
	if _, err := inst.Call("decide", nil); err == nil || err.Error() != "instance is closed" {
		t.Fatalf("call on a dead instance: %v", err)
	}
}

// TestEngineDiskCache: NewEngine(dir) keeps compiled code in dir, and a
// later Engine on the same dir reuses it instead of writing it again.
func TestEngineDiskCache(t *testing.T) {
	wasm := watModule(t, `(module
  (func (export "decide") (result i32) (local $i i32)
    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    (i32.const 0)))`)
	dir := filepath.Join(t.TempDir(), "cache")
	snapshot := func() map[string]time.Time {
		files := map[string]time.Time{}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					files[p] = fi.ModTime()
				}
			}
			return nil
		})
		return files
	}
	use := func() {
		e, err := NewEngine(dir)
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.Compile(context.Background(), Config{Name: "c", Wasm: wasm})
		if err != nil {
			t.Fatal(err)
		}
		inst, err := m.Instantiate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inst.Call("decide", nil); err != nil {
			t.Fatal(err)
		}
		inst.Close()
		if err := m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	use()
	first := snapshot()
	if len(first) == 0 {
		t.Fatal("NewEngine(dir) wrote nothing to its cache directory")
	}
	time.Sleep(10 * time.Millisecond) // a rewrite would get a later mtime
	use()
	second := snapshot()
	if len(second) != len(first) {
		t.Fatalf("second engine added cache files: %d, then %d", len(first), len(second))
	}
	for p, mt := range first {
		if !second[p].Equal(mt) {
			t.Fatalf("second engine rewrote %s instead of reusing it", p)
		}
	}

	// In memory only, and a directory that cannot be created.
	if e, err := NewEngine(""); err != nil {
		t.Fatal(err)
	} else if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(filepath.Join(file, "sub")); err == nil || !strings.Contains(err.Error(), "compilation cache") {
		t.Fatalf("NewEngine under a regular file: %v", err)
	}
}

// TestEngineWithCacheKeepsCache: closing an Engine over a caller's cache
// leaves that cache usable.
func TestEngineWithCacheKeepsCache(t *testing.T) {
	owner, err := NewEngine("")
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(context.Background())
	wasm := watModule(t, `(module (func (export "decide") (result i32) (i32.const 0)))`)
	for range 2 {
		e := NewEngineWithCache(owner.cache)
		m, err := e.Compile(context.Background(), Config{Name: "k", Wasm: wasm})
		if err != nil {
			t.Fatal(err)
		}
		m.Close(context.Background())
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// kernelImports declares every kernel function the ABI tests below use.
const kernelImports = `
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_set" (func $input_set (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "output_length" (func $output_length (result i64)))
  (import "extism:host/env" "output_offset" (func $output_offset (result i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "error_get" (func $error_get (result i64)))
  (import "extism:host/env" "memory_bytes" (func $memory_bytes (result i64)))
  (import "extism:host/env" "reset" (func $reset))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "http_status_code" (func $http_status_code (result i32)))
  (import "extism:host/env" "http_headers" (func $http_headers (result i64)))
  (import "extism:host/env" "log_warn" (func $log_warn (param i64)))
  ;; $byte: a one-byte kernel block holding c
  (func $byte (param $c i32) (result i64) (local $p i64)
    (local.set $p (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $p) (local.get $c))
    (local.get $p))
  ;; $out64: output one little-endian u64
  (func $out64 (param $v i64) (local $p i64)
    (local.set $p (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $p) (local.get $v))
    (call $output_set (local.get $p) (i64.const 8)))
`

// abiPlugin is a module with the kernel imports and the given exports.
func abiPlugin(t *testing.T, body string) *Module {
	t.Helper()
	e := NewEngineWithCache(nil)
	m, err := e.Compile(context.Background(), Config{Name: "abi", Wasm: watModule(t, "(module "+kernelImports+body+")"),
		MaxInput: 1000, MaxOutput: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func instantiate(t testing.TB, m *Module) *Instance {
	t.Helper()
	inst, err := m.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Close)
	return inst
}

func u64(t *testing.T, inst *Instance, fn string, in []byte) uint64 {
	t.Helper()
	out, err := inst.Call(fn, in)
	if err != nil || len(out) != 8 {
		t.Fatalf("got %q, %v; want 8 bytes", out, err)
	}
	return binary.LittleEndian.Uint64(out)
}

// TestKernelVars: Extism variables outlive the call that set them (kernel
// memory does not), var_set with NULL deletes, and their total size is
// capped (docs/plugins.md).
func TestKernelVars(t *testing.T) {
	m := abiPlugin(t, `
  (func (export "get") (result i32) (local $p i64)
    (local.set $p (call $var_get (call $byte (i32.const 107))))
    (if (i64.ne (local.get $p) (i64.const 0))
      (then (call $output_set (local.get $p) (call $length (local.get $p)))))
    (i32.const 0))
  (func (export "set") (result i32)
    (call $var_set (call $byte (i32.const 107)) (call $byte (i32.const 97)))
    (i32.const 0))
  (func (export "forget") (result i32)
    (call $var_set (call $byte (i32.const 107)) (i64.const 0))
    (i32.const 0))
  (func (export "big") (result i32)
    (call $var_set (call $byte (i32.const 98)) (call $alloc (i64.const 40000)))
    (i32.const 0))
  (func (export "hog") (result i32)
    (call $var_set (call $byte (i32.const 104)) (call $alloc (i64.const 70000)))
    (i32.const 0))`)
	inst := instantiate(t, m)
	call := func(fn, want string) {
		t.Helper()
		out, err := inst.Call(fn, nil)
		if err != nil || string(out) != want {
			t.Fatalf("%s: %q %v, want %q", fn, out, err, want)
		}
	}
	call("get", "")
	call("set", "")
	call("get", "a")
	call("get", "a")
	call("forget", "")
	call("get", "")
	call("set", "")
	call("set", "") // replacing a value does not count it twice
	call("get", "a")
	call("big", "")
	call("big", "") // 40000 bytes replaced by 40000: within the 64 KiB cap
	_, err := inst.Call("hog", nil)
	if ce, ok := err.(*CallError); !ok || ce.Kind != KindTrap || !strings.Contains(ce.Msg, "plugin variables exceed 65536 bytes") {
		t.Fatalf("hog: %v", err)
	}
}

// TestKernelState: what the kernel reports about the call in progress.
func TestKernelState(t *testing.T) {
	m := abiPlugin(t, `
  (func (export "membytes") (result i32) (call $out64 (call $memory_bytes)) (i32.const 0))
  ;; the input block is where input_offset says, with input_length bytes
  (func (export "inputblock") (result i32)
    (call $out64 (i64.extend_i32_u (i64.eq (call $length (call $input_offset)) (call $input_length))))
    (i32.const 0))
  ;; output_length/offset describe the block just set
  (func (export "outputblock") (result i32) (local $p i64)
    (local.set $p (call $byte (i32.const 120)))
    (call $output_set (local.get $p) (i64.const 1))
    (call $out64 (i64.add (i64.mul (call $output_length) (i64.const 1000))
      (i64.extend_i32_u (i64.eq (call $output_offset) (local.get $p)))))
    (i32.const 0))
  ;; input_set replaces what input_load_* read; out of memory it is ignored
  (func (export "inputset") (result i32) (local $p i64)
    (local.set $p (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $p) (i64.const 0x0807060504030201))
    (call $input_set (local.get $p) (i64.const 8))
    (call $input_set (i64.const 999999) (i64.const 8))
    (call $out64 (i64.add (call $input_load_u64 (i64.const 0)) (i64.extend_i32_u (call $input_load_u8 (i64.const 7)))))
    (i32.const 0))
  ;; reset forgets the input and every block
  (func (export "reset") (result i32)
    (call $reset)
    (call $out64 (i64.add (call $input_length) (call $length (call $input_offset))))
    (i32.const 0))
  ;; error_get returns what error_set set; the call is a plugin error
  (func (export "errorget") (result i32) (local $p i64)
    (local.set $p (call $byte (i32.const 69)))
    (call $error_set (local.get $p))
    (if (i64.ne (call $error_get) (local.get $p))
      (then (call $error_set (call $byte (i32.const 88)))))
    (i32.const 1))
  (func (export "errorbad") (result i32) (call $error_set (i64.const 424242)) (i32.const 1))
  (func (export "errorzero") (result i32) (call $error_set (i64.const 0)) (i32.const 0))
  (func (export "http") (result i32)
    (call $out64 (i64.add (i64.extend_i32_u (call $http_status_code)) (call $http_headers)))
    (i32.const 0))
  (func (export "loadback") (result i32) (local $p i64)
    (local.set $p (call $alloc (i64.const 9)))
    (call $store_u64 (local.get $p) (i64.const 0x1122334455667788))
    (call $store_u8 (i64.add (local.get $p) (i64.const 8)) (i32.const 0x99))
    (call $out64 (i64.add (call $load_u64 (local.get $p)) (i64.extend_i32_u (call $load_u8 (i64.add (local.get $p) (i64.const 8))))))
    (i32.const 0))`)
	inst := instantiate(t, m)
	if got := u64(t, inst, "membytes", nil); got != 1000+1000+1<<20 {
		t.Errorf("memory_bytes = %d, want MaxInput+MaxOutput+1 MiB", got)
	}
	if got := u64(t, inst, "inputblock", []byte("hello")); got != 1 {
		t.Errorf("input_offset does not point at an input_length block")
	}
	if got := u64(t, inst, "outputblock", nil); got != 1001 {
		t.Errorf("output_length*1000 + (output_offset is the block) = %d, want 1001", got)
	}
	if got := u64(t, inst, "inputset", []byte("xy")); got != 0x0807060504030201+8 {
		t.Errorf("after input_set: %#x", got)
	}
	if got := u64(t, inst, "reset", []byte("some input")); got != 0 {
		t.Errorf("after reset input_length + length(input_offset) = %d", got)
	}
	if got := u64(t, inst, "http", nil); got != 0 {
		t.Errorf("http_status_code + http_headers = %d, want 0 (no HTTP)", got)
	}
	if got := u64(t, inst, "loadback", nil); got != 0x1122334455667788+0x99 {
		t.Errorf("load after store: %#x", got)
	}
	if _, err := inst.Call("errorget", nil); err == nil || err.Error() != "plugin error: E" {
		t.Errorf("errorget: %v", err)
	}
	if _, err := inst.Call("errorbad", nil); err == nil || err.Error() != "plugin error: invalid error_set pointer" {
		t.Errorf("error_set to no block: %v", err)
	}
	if out, err := inst.Call("errorzero", nil); err != nil || out != nil {
		t.Errorf("error_set(0) then 0: %q %v", out, err)
	}
	if inst.Dead() {
		t.Error("plugin errors (error_set) killed the instance")
	}
}

// TestKernelRefusals: accesses outside kernel memory or the input trap and
// name the kernel function; a bad output is an output error. Each kills the
// instance.
func TestKernelRefusals(t *testing.T) {
	for _, c := range []struct {
		body string
		kind ErrorKind
		msg  string
	}{
		{`(drop (call $input_load_u8 (i64.const 2)))`, KindTrap, "input_load_u8: offset out of range"},
		{`(drop (call $input_load_u64 (i64.const 0)))`, KindTrap, "input_load_u64: offset out of range"},
		{`(drop (call $load_u64 (i64.const 4)))`, KindTrap, "load_u64: offset out of range"},
		{`(call $store_u8 (i64.const 99999) (i32.const 1))`, KindTrap, "store_u8: offset out of range"},
		{`(call $store_u64 (i64.sub (call $alloc (i64.const 4)) (i64.const 0)) (i64.const 1))`, KindTrap, "store_u64: offset out of range"},
		{`(call $output_set (i64.const 8) (i64.const 1001))`, KindOutput, "output of 1001 bytes exceeds the 1000-byte limit"},
		{`(call $output_set (i64.const 99999) (i64.const 10))`, KindOutput, "output_set outside kernel memory"},
	} {
		t.Run(c.msg, func(t *testing.T) {
			m := abiPlugin(t, `(func (export "decide") (result i32) `+c.body+` (i32.const 0))`)
			inst := instantiate(t, m)
			_, err := inst.Call("decide", []byte("ab"))
			ce, ok := err.(*CallError)
			if !ok || ce.Kind != c.kind || !strings.Contains(ce.Msg, c.msg) {
				t.Fatalf("got %v, want kind %d with %q", err, c.kind, c.msg)
			}
			if !inst.Dead() {
				t.Fatal("instance survived")
			}
		})
	}
}

// TestCompileRefusals: what Compile refuses, with the message a plugin
// author sees.
func TestCompileRefusals(t *testing.T) {
	for _, c := range []struct{ wasm, msg string }{
		{"", "not a valid wasm module"},
		{`(module (import "extism:host/env" "alloc" (func (param i32) (result i64))))`, "imports extism:host/env.alloc with the wrong signature"},
		{`(module (import "extism:host/env" "alloc" (func (param i64))))`, "imports extism:host/env.alloc with the wrong signature"},
		{`(module (import "env" "memory" (memory 1)))`, "imports memory env.memory"},
	} {
		wasm := []byte("not wasm")
		if c.wasm != "" {
			wasm = watModule(t, c.wasm)
		}
		e := NewEngineWithCache(nil)
		_, err := e.Compile(context.Background(), Config{Name: "bad", Wasm: wasm})
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want %q", c.wasm, err, c.msg)
		}
	}
}

// TestInstantiateRefusals: an _initialize that traps, a module that cannot
// be instantiated and a fast-path buffer export that traps are refused with
// their cause.
func TestInstantiateRefusals(t *testing.T) {
	for _, c := range []struct{ wat, msg string }{
		{`(module (func (export "_initialize") unreachable))`, "_initialize: "},
		{`(module (memory 1) (data (i32.const 70000) "x"))`, "instantiate: "},
		{`(module (memory (export "memory") 1)
  (func (export "wasmgate_buffer") (result i64) unreachable)
  (func (export "wasmgate_decide") (param i32) (result i64) (i64.const 0)))`, "wasmgate_buffer: "},
	} {
		e := NewEngineWithCache(nil)
		m, err := e.Compile(context.Background(), Config{Name: "bad", Wasm: watModule(t, c.wat)})
		if err != nil {
			t.Fatal(err)
		}
		inst, err := m.Instantiate(context.Background())
		if err == nil {
			inst.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want %q...", c.wat, err, c.msg)
		}
		m.Close(context.Background())
	}
}

// TestBrokenDiskCache: a corrupted on-disk cache does not stop a valid
// plugin (it is compiled again without the cache).
func TestBrokenDiskCache(t *testing.T) {
	wasm := watModule(t, `(module (func (export "decide") (result i32) (i32.const 0)))`)
	dir := t.TempDir()
	for round := range 2 {
		e, err := NewEngine(dir)
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.Compile(context.Background(), Config{Name: "c", Wasm: wasm})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		inst := instantiate(t, m)
		if _, err := inst.Call("decide", nil); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		inst.Close()
		m.Close(context.Background())
		e.Close(context.Background())
		n := 0
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
				os.WriteFile(p, []byte("garbage"), 0o644)
			}
			return nil
		})
		if n == 0 {
			t.Fatal("nothing cached")
		}
	}
}

// TestPluginLogLineCap: a plugin's log line is cut at 4 KiB
// (docs/plugins.md) so a plugin cannot flood the host's log.
func TestPluginLogLineCap(t *testing.T) {
	m := abiPlugin(t, `
  (func (export "decide") (result i32) (local $p i64) (local $i i64)
    (local.set $p (call $alloc (i64.const 5000)))
    (loop $l
      (call $store_u8 (i64.add (local.get $p) (local.get $i)) (i32.const 120))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const 5000))))
    (call $log_warn (local.get $p))
    (i32.const 0))`)
	rec := &recorder{level: slog.LevelDebug}
	m.logger, m.logLevel = slog.New(rec), levelFor(context.Background(), slog.New(rec))
	inst := instantiate(t, m)
	if _, err := inst.Call("decide", nil); err != nil {
		t.Fatal(err)
	}
	want := "WARN plugin log plugin=abi msg=" + strings.Repeat("x", 4096)
	if got := rec.lines(); len(got) != 1 || got[0] != want {
		t.Fatalf("logged %d lines, first %.80q...", len(got), got)
	}
}
