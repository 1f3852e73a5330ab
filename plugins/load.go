package plugins

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/wasmgate/wasmgate/metrics"
)

// Options configure Load and Compile. The zero value is usable.
//
// The compilation cache settings match host.NewRuntime's (docs/embedding.md,
// "Compilation cache"): CacheDir is host.WithCacheDir, InMemoryCache is
// host.WithInMemoryCache, and CompilationCache shares one cache, e.g. a
// host.Runtime's (Runtime.CompilationCache), between guests and plugins.
// Plugins always compile through a cache: what host.WithoutCache would
// be is InMemoryCache, which keeps nothing past the policy.
type Options struct {
	// CacheDir is where compiled plugin code is cached on disk across
	// runs. Empty means os.UserCacheDir()/wasmgate. A directory that
	// cannot be used only costs compile time.
	//
	// Deprecated spelling: "-" is InMemoryCache.
	CacheDir string
	// InMemoryCache keeps compiled plugin code in memory only, for the
	// life of the policy (the CompiledPolicy): nothing is written to disk.
	// CacheDir is then ignored.
	InMemoryCache bool
	// CompilationCache, when set, is used instead of CacheDir and
	// InMemoryCache and stays the caller's to close (after the policy):
	// one cache for a host.Runtime and its plugins, or for tests.
	CompilationCache wazero.CompilationCache
	// Interpreter runs plugins in wazero's interpreter instead of compiling
	// them: no compile cost, much slower decisions. For tests and
	// platforms without wazero's compiler.
	Interpreter bool
	// Builtins resolves `use = "NAME"`. Nil means the embedded built-ins.
	Builtins BuiltinLookup
	// Natives are plugins of the embedding program's own Go code, written
	// with sdk/policy, by the name a manifest gives them in use = "NAME"
	// (docs/embedding.md#native-plugins). They run in the program's
	// process on the native engine, without the sandbox: no deadline, no
	// memory cap. A name Builtins also resolves has both forms, as
	// wasmgate's built-ins do: engine "auto" runs the wasm one and engine
	// "native" this one; a name with no wasm form runs natively on "auto".
	// A name may not be one of wasmgate's built-ins.
	Natives map[string]NativePlugin
	// PoolSize bounds the instances per plugin (0: GOMAXPROCS), shared by
	// every Policy of a CompiledPolicy. Plugins whose describe says
	// "stateful": true always get one instance per Policy, so that their
	// state (e.g. ratelimit counters) is exact and the guest's own.
	PoolSize int
	// CacheEntries bounds each Policy's verdict cache (0: 4096; <0: no
	// cache); GuestOptions.CacheEntries overrides it per guest.
	CacheEntries int
	// Audit receives one record per decision (docs/manifest.md#audit-records),
	// unless GuestOptions.Audit replaces it for a guest; nil: none. It also
	// receives the records of extism plugins' http_request calls.
	Audit *slog.Logger
	// Logger receives plugin log_* output and WASI stdout/stderr at debug
	// level; nil: discarded.
	Logger *slog.Logger
	// Now is the clock (time_ms, cache expiry, durations); nil: time.Now.
	Now func() time.Time
	// Metrics, when set, records every decision and plugin failure of the
	// chain (docs/metrics.md).
	Metrics *metrics.Metrics
}

// Load parses the manifest at path, compiles and instantiates its plugins,
// calls their describe and validate exports, and returns the ready chain.
// Every problem (in the manifest or in any plugin) is reported at once in a
// *ManifestError.
func Load(ctx context.Context, path string, opts Options) (*Policy, error) {
	if err := checkNatives(opts.Natives); err != nil {
		return nil, err
	}
	m, err := ParseManifest(path, opts.builtins())
	if err != nil {
		return nil, err
	}
	return LoadManifest(ctx, m, opts)
}

// builtins is the lookup of opts' built-in plugins: Builtins, or the
// ones wasmgate has.
func (opts *Options) builtins() BuiltinLookup { return opts.Lookup() }

// Lookup is the BuiltinLookup Load parses a manifest with: Builtins (nil:
// the embedded built-ins), and the names of Natives, which it reports
// found with no bytes (a native plugin with no wasm form). Pass it to
// ParseManifest before CompileManifest or LoadManifest with the same
// Options.
func (opts *Options) Lookup() BuiltinLookup {
	lookup := defaultBuiltins
	if opts.Builtins != nil {
		lookup = opts.Builtins
	}
	if len(opts.Natives) == 0 {
		return lookup
	}
	return func(name string) ([]byte, bool) {
		b, ok := lookup(name)
		if !ok && opts.Natives[name] != nil {
			return nil, true // a native plugin with no wasm form
		}
		return b, ok
	}
}

// DefaultCacheDir is where compiled plugins are cached when Options.CacheDir
// is empty ("" when the user has no cache directory).
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "wasmgate")
}

// LoadManifest is Load for a manifest already parsed: CompileManifest and
// one Instantiate for the manifest's own [guest], the returned Policy
// owning its CompiledPolicy (closing the Policy closes both).
func LoadManifest(ctx context.Context, m *Manifest, opts Options) (*Policy, error) {
	c, err := CompileManifest(ctx, m, opts)
	if err != nil {
		return nil, err
	}
	p, err := c.Instantiate(ctx, GuestOptions{})
	if err != nil {
		_ = c.Close(ctx)
		return nil, err
	}
	p.ownsCompiled = true
	return p, nil
}
