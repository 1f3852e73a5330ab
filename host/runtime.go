package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"

	"github.com/wasmgate/wasmgate/internal/interrupt"
)

// Runtime compiles guests once and runs many instances of them, in the
// style of wazero.Runtime: it owns the compilation settings (the
// compilation cache and whether guests are interruptible), and
// Runtime.Compile turns module bytes into a CompiledGuest whose Run starts
// one instance with its own Config. A Runtime and its CompiledGuests are
// safe for concurrent use.
//
// Run is the one-shot shortcut: it compiles (or loads from the on-disk
// cache), runs one instance and releases everything. An embedder that
// starts the same guest many times keeps a CompiledGuest instead and saves
// the compilation or cache load of every start (docs/embedding.md).
type Runtime struct {
	cache       wazero.CompilationCache // nil: none
	sharedCache bool                    // cache is the caller's (WithCompilationCache): not closed
	rewriteDir  string                  // "" when rewrites are not cached on disk
	closeOnDone bool

	mu       sync.Mutex
	compiled map[[32]byte]*compiledGuest // shared by every handle; removed when the last is closed
	closed   bool
}

// RuntimeOption configures NewRuntime.
type RuntimeOption func(*runtimeOptions)

type runtimeOptions struct {
	cacheDir    string
	cacheMode   int                     // cacheDisk, cacheMemory, cacheNone, cacheShared
	cache       wazero.CompilationCache // cacheShared
	closeOnDone bool
}

const (
	cacheDisk = iota
	cacheMemory
	cacheNone
	cacheShared
)

// WithCacheDir keeps compiled machine code (and the interruption rewrite)
// in dir on disk, so that another process, or a later Runtime, finds a
// guest already compiled. "" means the default,
// os.UserCacheDir()/wasmgate/wazero, which is also what NewRuntime uses
// without options. The directory holds machine code that is executed as
// is: it must be writable only by the user running the host.
func WithCacheDir(dir string) RuntimeOption {
	return func(o *runtimeOptions) { o.cacheMode, o.cacheDir = cacheDisk, dir }
}

// WithInMemoryCache keeps compiled code in memory only, for the Runtime's
// lifetime: nothing is written to disk (read-only containers), and a guest
// compiled again after its CompiledGuest was closed is not recompiled.
func WithInMemoryCache() RuntimeOption {
	return func(o *runtimeOptions) { o.cacheMode, o.cacheDir = cacheMemory, "" }
}

// WithoutCache disables the compilation cache: a guest is compiled each
// time Runtime.Compile is called for it while no CompiledGuest of the same
// bytes is open.
func WithoutCache() RuntimeOption {
	return func(o *runtimeOptions) { o.cacheMode, o.cacheDir = cacheNone, "" }
}

// WithCompilationCache compiles with cache, which stays the caller's: the
// Runtime never closes it (close it after the Runtime). One cache can so
// serve a Runtime and the plugins of a policy (plugins.Options has the
// same field), whether it is in memory (wazero.NewCompilationCache) or on
// disk (wazero.NewCompilationCacheWithDir). The interruption rewrite is
// then not kept on disk; it is redone, in a few milliseconds, by each
// Compile that compiles. A nil cache is WithoutCache.
func WithCompilationCache(cache wazero.CompilationCache) RuntimeOption {
	return func(o *runtimeOptions) {
		o.cacheMode, o.cacheDir, o.cache = cacheShared, "", cache
		if cache == nil {
			o.cacheMode = cacheNone
		}
	}
}

// CompilationCache returns the cache the Runtime compiles with, nil
// under WithoutCache. One the Runtime made (WithCacheDir,
// WithInMemoryCache, the default) is closed by Runtime.Close: whatever
// else compiles with it, such as a policy given it as
// plugins.Options.CompilationCache, must be closed first.
func (r *Runtime) CompilationCache() wazero.CompilationCache { return r.cache }

// WithInterruptible says whether guests compiled by the Runtime are
// stopped in wasm code when the context given to CompiledGuest.Run is done
// (default true); see Config.WithCloseOnContextDone for how and what it
// costs.
func WithInterruptible(on bool) RuntimeOption {
	return func(o *runtimeOptions) { o.closeOnDone = on }
}

// NewRuntime returns a Runtime. Without options it uses the on-disk
// compilation cache in its default directory and makes guests
// interruptible. An on-disk cache that cannot be created is not an error:
// guests are then compiled without one.
func NewRuntime(ctx context.Context, opts ...RuntimeOption) *Runtime {
	o := runtimeOptions{closeOnDone: true}
	for _, opt := range opts {
		opt(&o)
	}
	wazeroInit.Do(initWazero)
	r := &Runtime{closeOnDone: o.closeOnDone, compiled: map[[32]byte]*compiledGuest{}}
	switch o.cacheMode {
	case cacheDisk:
		c := &Config{cacheDir: o.cacheDir}
		r.cache = c.compilationCache()
		if r.cache != nil {
			r.rewriteDir = c.rewriteCacheDir()
		}
	case cacheMemory:
		r.cache = wazero.NewCompilationCache()
	case cacheShared:
		r.cache, r.sharedCache = o.cache, true
	}
	return r
}

// runtimeFor is the Runtime that Run uses for cfg's compilation settings:
// one per process and settings, never closed, so that Runs of the same
// bytes at the same time share one compilation too. It holds compiled code
// only while a Run of it is going on (compiledGuest.refs).
func runtimeFor(ctx context.Context, cfg *Config) *Runtime {
	// The directory is resolved now: the default one follows the
	// environment ($XDG_CACHE_HOME), which may change between Runs.
	key := runtimeKey{cacheDir: cfg.cacheRoot(), noCache: cfg.cacheDisabled, interruptible: cfg.closeOnDone}
	sharedRuntimes.mu.Lock()
	defer sharedRuntimes.mu.Unlock()
	if r, ok := sharedRuntimes.m[key]; ok {
		return r
	}
	opts := []RuntimeOption{WithInterruptible(cfg.closeOnDone)}
	if cfg.cacheDisabled {
		opts = append(opts, WithoutCache())
	} else {
		opts = append(opts, WithCacheDir(key.cacheDir))
	}
	r := NewRuntime(context.WithoutCancel(ctx), opts...)
	if sharedRuntimes.m == nil {
		sharedRuntimes.m = map[runtimeKey]*Runtime{}
	}
	sharedRuntimes.m[key] = r
	return r
}

// runtimeKey is what makes Run's Runtimes differ.
type runtimeKey struct {
	cacheDir      string
	noCache       bool
	interruptible bool
}

// sharedRuntimes are Run's Runtimes.
var sharedRuntimes struct {
	mu sync.Mutex
	m  map[runtimeKey]*Runtime
}

// CompiledGuest is a guest compiled by Runtime.Compile, ready to run any
// number of instances, one after the other or at once. Close it when done;
// closing it while instances run stops them.
type CompiledGuest struct {
	r      *Runtime
	c      *compiledGuest
	closed atomic.Bool
}

// compiledGuest is what every CompiledGuest of the same bytes shares: a
// wazero runtime holding the compiled module and the host module, which
// dispatches each call to the calling instance's state (see hostState).
type compiledGuest struct {
	key     [32]byte
	refs    int // open handles; guarded by Runtime.mu
	ready   chan struct{}
	err     error // set before ready is closed
	rt      wazero.Runtime
	mod     wazero.CompiledModule
	imports map[string]int // guest's wasi_snapshot_preview1 imports -> parameter count
	minMem  uint64         // the guest's initial memory in bytes (0: none)
	names   atomic.Uint64  // instances started, for unique module names
}

// Compile prepares wasm to run: the interruption rewrite (when the Runtime
// makes guests interruptible), validation and compilation to machine code,
// or their results from the cache. Calls with the same bytes while a
// CompiledGuest of them is open, including concurrent ones, share one
// compilation.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (*CompiledGuest, error) {
	key := sha256.Sum256(wasm)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("wasmgate: runtime closed")
	}
	c, ok := r.compiled[key]
	if !ok {
		c = &compiledGuest{key: key, ready: make(chan struct{})}
		r.compiled[key] = c
	}
	c.refs++
	r.mu.Unlock()
	if !ok {
		c.err = r.compile(context.WithoutCancel(ctx), c, wasm)
		close(c.ready)
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		r.release(c)
		return nil, fmt.Errorf("wasmgate: compile: %w", ctx.Err())
	}
	if c.err != nil {
		r.release(c)
		return nil, c.err
	}
	return &CompiledGuest{r: r, c: c}, nil
}

// compile fills c. It runs once per shared compilation, without the
// caller's cancellation: other callers may be waiting for it.
func (r *Runtime) compile(ctx context.Context, c *compiledGuest, wasm []byte) error {
	if testHookCompile != nil {
		testHookCompile()
	}
	// Interruption (see Config.WithCloseOnContextDone): the guest's code is
	// rewritten to check a flag that ctx's cancellation raises, which costs
	// ~2 ns per loop iteration; wazero's own close-on-context-done, ~100 ns
	// per iteration, only backs up modules the rewriter refuses.
	wazeroStops := false
	if r.closeOnDone {
		// The rewrite is cached on disk next to wazero's compilation cache
		// (startup.go): ~4 ms per start instead of ~10 for a Go guest.
		if inst, err := cachedRewrite(r.rewriteDir, "interrupt", wasm, interrupt.Instrument); err == nil {
			wasm = inst
		} else {
			wazeroStops = true
		}
	}
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(wazeroStops)
	if r.cache != nil {
		rc = rc.WithCompilationCache(r.cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		_ = rt.Close(ctx)
		return fmt.Errorf("wasmgate: compile: %w", err)
	}
	imports := map[string]int{}
	for _, f := range compiled.ImportedFunctions() {
		if mod, name, ok := f.Import(); ok && mod == moduleName {
			imports[name] = len(f.ParamTypes())
		}
	}
	// One host module per compiled guest; its functions find the calling
	// instance's state in the context (hostState), so that instances
	// started at once each see only their own fds and network.
	b := rt.NewHostModuleBuilder(moduleName)
	exportHostFunctions(b, imports)
	if _, err := b.Instantiate(ctx); err != nil {
		_ = rt.Close(ctx)
		return fmt.Errorf("wasmgate: host module: %w", err)
	}
	for _, m := range compiled.ExportedMemories() {
		c.minMem = uint64(m.Min()) * wasmPageSize
	}
	for _, m := range compiled.ImportedMemories() {
		c.minMem = uint64(m.Min()) * wasmPageSize
	}
	c.rt, c.mod, c.imports = rt, compiled, imports
	return nil
}

// testHookCompile, when set by a test, is called at every compilation.
var testHookCompile func()

// release drops one reference to c, and closes it after the last.
func (r *Runtime) release(c *compiledGuest) {
	r.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last && r.compiled[c.key] == c {
		delete(r.compiled, c.key)
	}
	r.mu.Unlock()
	if last {
		<-c.ready
		if c.rt != nil {
			_ = c.rt.Close(context.Background())
		}
	}
}

// Close closes every CompiledGuest of the Runtime (stopping their running
// instances) and the compilation cache, unless it came from
// WithCompilationCache. Compile fails after it.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	all := r.compiled
	r.compiled = map[[32]byte]*compiledGuest{}
	r.mu.Unlock()
	for _, c := range all {
		<-c.ready
		if c.rt != nil {
			_ = c.rt.Close(ctx)
		}
	}
	if r.cache != nil && !r.sharedCache {
		return r.cache.Close(ctx)
	}
	return nil
}

// Close releases the CompiledGuest; instances still running are stopped
// when it was the last handle on the same compiled bytes. Closing twice
// is harmless.
func (g *CompiledGuest) Close(ctx context.Context) error {
	if g.closed.Swap(true) {
		return nil
	}
	g.r.release(g.c)
	return nil
}

// Run runs one instance of the guest with cfg, exactly as the package
// function Run does, and returns its exit code. Any number of Runs may go
// on at once, each with its own Config: own arguments, environment,
// directories, stdio, network and limits. The compilation settings of cfg
// (WithCompilationCacheDir, WithoutCompilationCache,
// WithCloseOnContextDone) are ignored: they are the Runtime's.
func (g *CompiledGuest) Run(ctx context.Context, cfg *Config) (exitCode int, err error) {
	if g.closed.Load() {
		return 1, errors.New("wasmgate: compiled guest closed")
	}
	if cfg == nil {
		cfg = NewConfig()
	}
	if err := cfg.validate(); err != nil {
		return 1, fmt.Errorf("wasmgate: invalid configuration: %w", err)
	}
	return g.c.run(ctx, cfg)
}
