// Package kernel runs Extism plugins on wazero without go-sdk: the host
// implements the `extism:host/env` kernel imports itself in Go over a
// per-instance buffer, caches every function handle, and makes exactly one
// top-level wasm call per plugin call (docs/kernel.md). A plugin binary
// that works here is an ordinary Extism plugin and runs unchanged in any
// Extism host.
//
// Every call runs under a deadline: a watchdog raises the instance's
// internal/interrupt flag, so the plugin traps at its next function entry or
// loop header (wazero's close-on-context-done for the interpreter and for
// modules the rewriter refuses); an instance whose call failed in any way other than a clean error_set is
// dead and must be replaced (Instance.Dead).
package kernel

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmgate/wasmgate/internal/interrupt"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout     = 100 * time.Millisecond
	DefaultMemoryPages = 1024 // 64 MiB
	DefaultMaxInput    = 64 << 10
	DefaultMaxOutput   = 64 << 10
	DefaultInitTimeout = 5 * time.Second
	maxVarBytes        = 64 << 10
	maxErrorBytes      = 1 << 10
)

// Config describes one plugin module.
type Config struct {
	Name        string            // for errors and logs
	Wasm        []byte            // the module bytes
	MemoryPages uint32            // cap on every linear memory of the plugin; 0 = DefaultMemoryPages
	Timeout     time.Duration     // per call; 0 = DefaultTimeout
	InitTimeout time.Duration     // for _initialize; 0 = DefaultInitTimeout
	MaxInput    int               // bytes; 0 = DefaultMaxInput
	MaxOutput   int               // bytes; 0 = DefaultMaxOutput
	Config      map[string]string // Extism config (config_get)
	Logger      *slog.Logger      // plugin log_* and WASI stdout/stderr; nil = discard
}

// Engine holds what plugins share: the compilation cache, and one wazero
// runtime per distinct module (bytes and memory cap) among the plugins it
// compiled. Plugins of the same module, such as the built-ins (one module
// for all four), then share its compiled code: it is validated and loaded
// once instead of once per plugin, mapped once, and a chain that runs them
// in turn runs the same machine code.
type Engine struct {
	cache wazero.CompilationCache
	owned bool
	// Interpreter runs plugins in wazero's interpreter: no compile cost,
	// slower calls. For tests under the race detector (where compiling a
	// Go plugin takes minutes) and platforms without wazero's compiler.
	Interpreter bool

	mu       sync.Mutex
	compiled map[compiledKey]*compiledModule
}

type compiledKey struct {
	sum   [sha256.Size]byte
	pages uint32
}

// compiledModule is a module compiled in its own runtime (the memory cap is
// per runtime in wazero), shared by the Modules of an Engine that have the
// same bytes and cap.
type compiledModule struct {
	ready    chan struct{} // closed when the fields below are set
	err      error
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	exports  map[string]bool
	fast     bool // exports the wasmgate fast path
	seq      atomic.Uint64
	refs     int // Modules using it; guarded by Engine.mu
}

// NewEngine returns an Engine whose compiled code is cached in dir (created if
// needed), or in memory only when dir is empty.
func NewEngine(dir string) (*Engine, error) {
	if dir == "" {
		return &Engine{cache: wazero.NewCompilationCache(), owned: true}, nil
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("compilation cache %s: %w", dir, err)
	}
	return &Engine{cache: c, owned: true}, nil
}

// NewEngineWithCache returns an Engine over an existing cache, which the
// caller keeps ownership of.
func NewEngineWithCache(c wazero.CompilationCache) *Engine { return &Engine{cache: c} }

// Cache is the compilation cache the Engine compiles with, for other
// wazero runtimes of the same process (the go-sdk engine's).
func (e *Engine) Cache() wazero.CompilationCache { return e.cache }

// Close releases the cache if the Engine created it.
func (e *Engine) Close(ctx context.Context) error {
	if e.owned {
		return e.cache.Close(ctx)
	}
	return nil
}

// Module is one plugin: a compiled module (shared with the Engine's other
// plugins of the same bytes and memory cap) and the plugin's own config,
// limits and logger. Instantiate is safe for concurrent use.
type Module struct {
	cfg      Config
	e        *Engine
	key      compiledKey
	c        *compiledModule
	logger   *slog.Logger
	logLevel int32
	closed   atomic.Bool
}

// Compile compiles cfg.Wasm (or reuses the Engine's runtime for the same
// bytes and memory cap), checks its imports against what the host
// provides, and prepares the host modules.
func (e *Engine) Compile(ctx context.Context, cfg Config) (*Module, error) {
	if cfg.MemoryPages == 0 {
		cfg.MemoryPages = DefaultMemoryPages
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = DefaultInitTimeout
	}
	if cfg.MaxInput <= 0 {
		cfg.MaxInput = DefaultMaxInput
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = DefaultMaxOutput
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	key := compiledKey{sha256.Sum256(cfg.Wasm), cfg.MemoryPages}
	e.mu.Lock()
	if e.compiled == nil {
		e.compiled = map[compiledKey]*compiledModule{}
	}
	c := e.compiled[key]
	first := c == nil
	if first {
		c = &compiledModule{ready: make(chan struct{})}
		e.compiled[key] = c
	}
	c.refs++
	e.mu.Unlock()
	if first {
		c.err = e.compile(ctx, cfg.Wasm, cfg.MemoryPages, c)
		close(c.ready)
	} else {
		<-c.ready
	}
	m := &Module{cfg: cfg, e: e, key: key, c: c, logger: logger, logLevel: levelFor(ctx, logger)}
	if c.err != nil {
		m.release(ctx)
		return nil, c.err
	}
	return m, nil
}

// compile fills c: a new runtime with the module compiled and the host
// modules instantiated.
func (e *Engine) compile(ctx context.Context, wasm []byte, pages uint32, c *compiledModule) error {
	// Timeouts: compiled plugins get internal/interrupt's flag checks
	// (~2 ns per loop iteration, no goroutine per call); wazero's
	// close-on-context-done (~100 ns per iteration plus a watchdog
	// goroutine per call) backs up the interpreter, whose Go code must not
	// read a global that another goroutine writes, and modules the
	// rewriter refuses.
	wazeroStops := true
	if !e.Interpreter {
		if inst, err := interrupt.Memo(wasm); err == nil {
			wasm, wazeroStops = inst, false
		}
	}
	newRuntime := func(cache wazero.CompilationCache) wazero.Runtime {
		rc := wazero.NewRuntimeConfig()
		if e.Interpreter {
			rc = wazero.NewRuntimeConfigInterpreter()
		}
		rc = rc.WithCloseOnContextDone(wazeroStops).
			WithMemoryLimitPages(pages)
		if cache != nil {
			rc = rc.WithCompilationCache(cache)
		}
		return wazero.NewRuntimeWithConfig(ctx, rc)
	}
	rt := newRuntime(e.cache)
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		// A broken or concurrently modified on-disk cache must not stop a
		// valid plugin: compile once more without it.
		_ = rt.Close(ctx)
		rt = newRuntime(nil)
		compiled, err = rt.CompileModule(ctx, wasm)
	}
	fail := func(err error) error {
		_ = rt.Close(ctx)
		return err
	}
	if err != nil {
		return fail(fmt.Errorf("not a valid wasm module: %w", err))
	}
	if err := checkImports(compiled); err != nil {
		return fail(err)
	}
	c.exports = map[string]bool{}
	defs := compiled.ExportedFunctions()
	if b, d := defs[FastBufferExport], defs[FastDecideExport]; b != nil && d != nil &&
		sameTypes(b.ParamTypes(), nil) && sameTypes(b.ResultTypes(), []api.ValueType{api.ValueTypeI64}) &&
		sameTypes(d.ParamTypes(), []api.ValueType{api.ValueTypeI32}) && sameTypes(d.ResultTypes(), []api.ValueType{api.ValueTypeI64}) {
		c.fast = true
	}
	for name, def := range defs {
		if len(def.ParamTypes()) == 0 && len(def.ResultTypes()) <= 1 &&
			(len(def.ResultTypes()) == 0 || def.ResultTypes()[0] == api.ValueTypeI32) {
			c.exports[name] = true
		}
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(err)
	}
	if err := instantiateEnv(ctx, rt); err != nil {
		return fail(err)
	}
	c.rt, c.compiled = rt, compiled
	return nil
}

// release drops m's reference to its compiled module; the last one closes
// the runtime, and with it every instance still open.
func (m *Module) release(ctx context.Context) error {
	m.e.mu.Lock()
	m.c.refs--
	last := m.c.refs == 0
	if last && m.e.compiled[m.key] == m.c {
		delete(m.e.compiled, m.key)
	}
	m.e.mu.Unlock()
	if last && m.c.rt != nil {
		return m.c.rt.Close(ctx)
	}
	return nil
}

// InitTimeout is the deadline of _initialize and of load-time calls.
func (m *Module) InitTimeout() time.Duration { return m.cfg.InitTimeout }

// HasExport reports whether the plugin exports a callable function name
// (no parameters, no result or one i32).
func (m *Module) HasExport(name string) bool { return m.c.exports[name] }

// Close releases the runtime and every instance.
func (m *Module) Close(ctx context.Context) error {
	if m.closed.Swap(true) {
		return nil
	}
	return m.release(ctx)
}

// levelFor maps the logger's threshold to Extism's get_log_level values
// (0 trace ... 4 error, MaxInt32 off) so plugins skip building messages
// nobody reads.
func levelFor(ctx context.Context, l *slog.Logger) int32 {
	switch {
	case l.Enabled(ctx, slog.LevelDebug):
		return 1
	case l.Enabled(ctx, slog.LevelInfo):
		return 2
	case l.Enabled(ctx, slog.LevelWarn):
		return 3
	case l.Enabled(ctx, slog.LevelError):
		return 4
	}
	return math.MaxInt32
}

func checkImports(c wazero.CompiledModule) error {
	var problems []string
	for _, def := range c.ImportedFunctions() {
		mod, name, _ := def.Import()
		switch mod {
		case "wasi_snapshot_preview1":
			// Resolved against wazero's WASI at instantiation; the sandbox
			// gives no preopens, env, args or sockets.
		case envModule:
			sig, ok := envSigs[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("imports %s.%s, which wasmgate does not provide", mod, name))
				continue
			}
			if !sameTypes(sig.params, def.ParamTypes()) || !sameTypes(sig.results, def.ResultTypes()) {
				problems = append(problems, fmt.Sprintf("imports %s.%s with the wrong signature", mod, name))
			}
		default:
			problems = append(problems, fmt.Sprintf("imports %s.%s, which wasmgate does not provide (plugins get only the Extism kernel and WASI; no host functions)", mod, name))
		}
	}
	for _, def := range c.ImportedMemories() {
		mod, name, _ := def.Import()
		problems = append(problems, fmt.Sprintf("imports memory %s.%s, which wasmgate does not provide", mod, name))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ErrorKind classifies a failed call.
type ErrorKind int

// Kinds of call failure.
const (
	KindPlugin  ErrorKind = iota + 1 // the plugin reported an error (error_set); the instance survives
	KindRC                           // non-zero return without error_set
	KindTimeout                      // the deadline fired; the instance was closed
	KindTrap                         // trap, panic, OOM, exit, host-function refusal
	KindInput                        // the input exceeds the host's cap; nothing was called
	KindOutput                       // the output exceeds the host's cap or was never set validly
	KindClosed                       // the instance is dead
)

// CallError is a failed call.
type CallError struct {
	Kind ErrorKind
	Msg  string
}

func (e *CallError) Error() string { return e.Msg }

// Instance is one instantiated plugin. It is not safe for concurrent use.
type Instance struct {
	m      *Module
	mod    api.Module
	ctx    *instCtx
	cancel context.CancelFunc
	// deadline is the running call's deadline (ns since epoch), 0 between calls,
	// deadlineFired once the watchdog fired it.
	deadline atomic.Int64
	armedAt  atomic.Int64                   // when the last call was armed; read by the watchdog
	flag     atomic.Pointer[interrupt.Flag] // set once after instantiation; read by the watchdog
	mem      kmem
	input    struct{ off, n uint64 }
	output   struct{ off, n uint64 }
	outBad   string // why the output is unusable, if it is
	errOff   uint64
	vars     map[string][]byte
	varSize  int
	fns      map[string]api.Function
	stack    [1]uint64
	dead     bool
	// The fast path, when the plugin has one (see Decide).
	fastFn            api.Function
	fastPtr, fastSize uint32
}

// instCtx is the per-instance context: cancelling it closes the module, and
// host functions find their Instance through it without a map lookup.
type instCtx struct {
	context.Context
	inst *Instance
}

type instKey struct{}

func (c *instCtx) Value(k any) any {
	if k == (instKey{}) {
		return c.inst
	}
	return c.Context.Value(k)
}

func instFrom(ctx context.Context) *Instance {
	if c, ok := ctx.(*instCtx); ok {
		return c.inst
	}
	if i, ok := ctx.Value(instKey{}).(*Instance); ok {
		return i
	}
	panic(errors.New("wasmgate: kernel call outside a plugin call"))
}

// Instantiate creates an instance and runs the module's _initialize (WASI
// reactor start-up) once, under InitTimeout.
func (m *Module) Instantiate(ctx context.Context) (*Instance, error) {
	inst := &Instance{m: m, fns: map[string]api.Function{}}
	inst.mem.limit = m.cfg.MaxInput + m.cfg.MaxOutput + 1<<20
	inst.mem.reset()
	// Not derived from ctx: an instance outlives the call that created it,
	// and wazero looks up a context value on every call, which walks the
	// whole chain of parents.
	cctx, cancel := context.WithCancel(context.Background())
	inst.ctx = &instCtx{Context: cctx, inst: inst}
	inst.cancel = cancel
	mc := wazero.NewModuleConfig().
		WithName(fmt.Sprintf("%s#%d", m.cfg.Name, m.c.seq.Add(1))).
		WithStartFunctions().
		WithStdout(&logWriter{l: m.logger, plugin: m.cfg.Name, level: slog.LevelInfo}).
		WithStderr(&logWriter{l: m.logger, plugin: m.cfg.Name, level: slog.LevelWarn})
	mod, err := m.c.rt.InstantiateModule(inst.ctx, m.c.compiled, mc)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	inst.mod = mod
	inst.flag.Store(interrupt.Find(mod))
	dog.add(inst)
	for name := range m.c.exports {
		inst.fns[name] = mod.ExportedFunction(name)
	}
	if f := mod.ExportedFunction("_initialize"); f != nil {
		inst.arm(m.cfg.InitTimeout)
		err := f.CallWithStack(inst.ctx, inst.stack[:])
		stopped := inst.disarm()
		if err != nil || !stopped {
			inst.kill()
			if !stopped {
				return nil, fmt.Errorf("_initialize: timeout after %v", m.cfg.InitTimeout)
			}
			return nil, fmt.Errorf("_initialize: %w", err)
		}
	}
	if m.c.fast {
		if err := inst.setupFast(); err != nil {
			inst.kill()
			return nil, err
		}
	}
	return inst, nil
}

// The wasmgate fast path, which sdk/policy plugins export next to the
// Extism decide: wasmgate_buffer() -> i64 returns (address << 32 | size) of
// a buffer in the plugin's own memory; wasmgate_decide(n i32) -> i64 decides
// the binary request the host wrote into the buffer's first n bytes, writes
// the binary verdict into the buffer and returns its length, or minus the
// length of an error message. No kernel host call and no JSON per decision.
const (
	FastBufferExport = "wasmgate_buffer"
	FastDecideExport = "wasmgate_decide"
)

// Buffers outside these bounds are refused (the plugin keeps the Extism
// path).
const (
	minFastBuffer = 1 << 10
	maxFastBuffer = 1 << 20
)

// setupFast asks the plugin for its buffer once per instance and checks
// that it lies inside memory; a buffer out of bounds leaves the Extism path
// in use, a failing call fails the instance.
func (i *Instance) setupFast() error {
	f := i.mod.ExportedFunction(FastBufferExport)
	mem := i.mod.Memory()
	if f == nil || mem == nil {
		return nil
	}
	i.arm(i.m.cfg.InitTimeout)
	err := f.CallWithStack(i.ctx, i.stack[:])
	if !i.disarm() {
		return fmt.Errorf("%s: timeout after %v", FastBufferExport, i.m.cfg.InitTimeout)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", FastBufferExport, err)
	}
	ptr, size := uint32(i.stack[0]>>32), uint32(i.stack[0])
	if size < minFastBuffer || size > maxFastBuffer || uint64(ptr)+uint64(size) > uint64(mem.Size()) {
		return nil
	}
	i.fastFn = i.mod.ExportedFunction(FastDecideExport)
	i.fastPtr, i.fastSize = ptr, size
	return nil
}

// FastSize is the size of the plugin's fast-path buffer, 0 when it has no
// fast path: requests up to this size can go through DecideFast.
func (i *Instance) FastSize() int {
	if i.fastFn == nil {
		return 0
	}
	return min(int(i.fastSize), i.m.cfg.MaxInput)
}

// DecideFast runs wasmgate_decide on a request in the binary encoding
// (sdk/policy's AppendRequestBinary) and returns the binary verdict, which
// stays valid until the next call. Errors are as for Call.
func (i *Instance) DecideFast(input []byte) ([]byte, error) {
	if i.dead {
		return nil, &CallError{KindClosed, "instance is closed"}
	}
	if len(input) > i.FastSize() {
		return nil, &CallError{KindInput, fmt.Sprintf("input of %d bytes exceeds the %d-byte fast-path buffer", len(input), i.FastSize())}
	}
	mem := i.mod.Memory()
	if !mem.Write(i.fastPtr, input) {
		i.kill()
		return nil, &CallError{KindTrap, "fast-path buffer outside memory"}
	}
	// Kernel state as for Call: handlers may still log or read config.
	i.mem.reset()
	i.output.off, i.output.n, i.outBad, i.errOff = 0, 0, "", 0
	i.input.off, i.input.n = 0, 0
	i.stack[0] = uint64(len(input))
	if err := i.run(i.fastFn, i.m.cfg.Timeout); err != nil {
		return nil, err
	}
	n := int64(i.stack[0])
	msgErr := n < 0
	if msgErr {
		n = -n
	}
	if n < 0 || n > int64(i.fastSize) || n > int64(i.m.cfg.MaxOutput) {
		i.kill()
		return nil, &CallError{KindOutput, fmt.Sprintf("fast path returned length %d outside its %d-byte buffer", int64(i.stack[0]), i.fastSize)}
	}
	out, ok := mem.Read(i.fastPtr, uint32(n))
	if !ok {
		i.kill()
		return nil, &CallError{KindTrap, "fast-path buffer outside memory"}
	}
	if msgErr || i.errOff != 0 {
		msg := out
		if i.errOff != 0 {
			msg = i.mem.bytes(i.errOff)
		}
		if len(msg) > maxErrorBytes {
			msg = msg[:maxErrorBytes]
		}
		return nil, &CallError{KindPlugin, "plugin error: " + strings.ToValidUTF8(string(msg), "?")}
	}
	return out, nil
}

// Dead reports whether the instance must be discarded.
func (i *Instance) Dead() bool { return i.dead }

// Close releases the instance.
func (i *Instance) Close() { i.kill() }

func (i *Instance) kill() {
	i.dead = true
	dog.remove(i)
	i.cancel()
	if i.mod != nil {
		_ = i.mod.Close(context.Background())
	}
}

// Call runs export fn with input and returns its output, which stays valid
// until the next Call. Failure is a *CallError; unless its Kind is
// KindPlugin or KindInput the instance is dead afterwards.
func (i *Instance) Call(fn string, input []byte) ([]byte, error) {
	return i.CallTimeout(fn, input, i.m.cfg.Timeout)
}

// CallTimeout is Call with another deadline: load-time exports (describe,
// validate) run once per plugin and may do one-off work such as parsing
// the config, so they get InitTimeout rather than the per-decision one.
func (i *Instance) CallTimeout(fn string, input []byte, timeout time.Duration) ([]byte, error) {
	if i.dead {
		return nil, &CallError{KindClosed, "instance is closed"}
	}
	f := i.fns[fn]
	if f == nil {
		return nil, &CallError{KindTrap, fmt.Sprintf("no export %q", fn)}
	}
	if len(input) > i.m.cfg.MaxInput {
		return nil, &CallError{KindInput, fmt.Sprintf("input of %d bytes exceeds the %d-byte limit", len(input), i.m.cfg.MaxInput)}
	}
	i.mem.reset()
	i.output.off, i.output.n, i.outBad, i.errOff = 0, 0, "", 0
	i.input.off, i.input.n = 0, 0
	if len(input) > 0 {
		off := i.mem.alloc(uint64(len(input)))
		if off == 0 {
			return nil, &CallError{KindInput, "input does not fit kernel memory"}
		}
		copy(i.mem.buf[off:], input)
		i.input.off, i.input.n = off, uint64(len(input))
	}
	i.stack[0] = 0
	if err := i.run(f, timeout); err != nil {
		return nil, err
	}
	rc := uint32(i.stack[0])
	if i.errOff != 0 {
		msg := i.mem.bytes(i.errOff)
		if len(msg) > maxErrorBytes {
			msg = msg[:maxErrorBytes]
		}
		if rc == 0 {
			// A plugin that reports an error but returns 0 is confused;
			// still a failure, never a verdict.
			rc = 1
		}
		return nil, &CallError{KindPlugin, "plugin error: " + strings.ToValidUTF8(string(msg), "?")}
	}
	if rc != 0 {
		i.kill()
		return nil, &CallError{KindRC, fmt.Sprintf("returned %d without an error", rc)}
	}
	if i.outBad != "" {
		i.kill()
		return nil, &CallError{KindOutput, i.outBad}
	}
	if i.output.n == 0 {
		return nil, nil
	}
	return i.mem.buf[i.output.off : i.output.off+i.output.n], nil
}

// run calls f with i.stack under timeout. A timeout, trap or exit kills the
// instance and comes back as a *CallError.
func (i *Instance) run(f api.Function, timeout time.Duration) error {
	i.arm(timeout)
	err := f.CallWithStack(i.ctx, i.stack[:])
	if !i.disarm() {
		// The watchdog fired (or is firing): the flag is raised, or the
		// module closed, whatever the call returned.
		i.kill()
		return &CallError{KindTimeout, fmt.Sprintf("timeout after %v", timeout)}
	}
	if err != nil {
		i.kill()
		var exit *sys.ExitError
		if errors.As(err, &exit) {
			return &CallError{KindTrap, fmt.Sprintf("plugin exited with code %d", exit.ExitCode())}
		}
		return &CallError{KindTrap, "trap: " + firstLine(err.Error())}
	}
	return nil
}

func firstLine(s string) string {
	if j := strings.IndexByte(s, '\n'); j >= 0 {
		s = s[:j]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// LogWriter returns the writer that routes a plugin's WASI stdout (level
// info) or stderr (warn) to l, one record per write, as the kernel does
// (docs/plugins.md, "Logs"); other engines use it too.
func LogWriter(l *slog.Logger, plugin string, level slog.Level) io.Writer {
	return &logWriter{l: l, plugin: plugin, level: level}
}

// logWriter is LogWriter's writer.
type logWriter struct {
	l      *slog.Logger
	plugin string
	level  slog.Level
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.l.Enabled(context.Background(), w.level) {
		s := string(p)
		if len(s) > 4096 {
			s = s[:4096]
		}
		w.l.Log(context.Background(), w.level, "plugin output", "plugin", w.plugin, "text", strings.ToValidUTF8(strings.TrimRight(s, "\n"), "?"))
	}
	return len(p), nil
}
