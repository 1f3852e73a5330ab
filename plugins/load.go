package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/kernel"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Options configure Load. The zero value is usable.
type Options struct {
	// CacheDir is where compiled plugin code is cached across runs. Empty
	// means os.UserCacheDir()/wasmgate; "-" disables the on-disk cache.
	CacheDir string
	// CompilationCache, when set, is used instead of CacheDir (tests share
	// one per process).
	CompilationCache wazero.CompilationCache
	// Interpreter runs plugins in wazero's interpreter instead of compiling
	// them: no compile cost, much slower decisions. For tests and
	// platforms without wazero's compiler.
	Interpreter bool
	// Builtins resolves `use = "NAME"`. Nil means the embedded built-ins.
	Builtins BuiltinLookup
	// PoolSize bounds the instances per plugin (0: GOMAXPROCS). Plugins
	// whose describe says "stateful": true always get one instance, so
	// their state (e.g. ratelimit counters) is exact.
	PoolSize int
	// CacheEntries bounds the verdict cache (0: 4096; <0: no cache).
	CacheEntries int
	// Audit receives one record per decision (docs/manifest.md#audit-records); nil: none.
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

// Policy is a loaded manifest: the validated Manifest and its Chain.
type Policy struct {
	Manifest *Manifest
	Chain    *Chain
	engine   *kernel.Engine
}

// Load parses the manifest at path, compiles and instantiates its plugins,
// calls their describe and validate exports, and returns the ready chain.
// Every problem (in the manifest or in any plugin) is reported at once in a
// *ManifestError.
func Load(ctx context.Context, path string, opts Options) (*Policy, error) {
	lookup := opts.Builtins
	if lookup == nil {
		lookup = defaultBuiltins
	}
	m, err := ParseManifest(path, lookup)
	if err != nil {
		return nil, err
	}
	return LoadManifest(ctx, m, opts)
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

// LoadManifest is Load for a manifest already parsed.
func LoadManifest(ctx context.Context, m *Manifest, opts Options) (*Policy, error) {
	var engine *kernel.Engine
	switch {
	case opts.CompilationCache != nil:
		engine = kernel.NewEngineWithCache(opts.CompilationCache)
	default:
		dir := opts.CacheDir
		if dir == "" {
			dir = DefaultCacheDir()
		}
		if dir == "-" {
			dir = ""
		}
		var err error
		engine, err = kernel.NewEngine(dir)
		if err != nil {
			// An unusable cache directory only costs time.
			engine, _ = kernel.NewEngine("")
		}
	}
	engine.Interpreter = opts.Interpreter
	pool := opts.PoolSize
	if pool <= 0 {
		pool = runtime.GOMAXPROCS(0)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	c := &Chain{def: m.Default, report: m.Report, audit: opts.Audit, now: now}
	if opts.Metrics != nil {
		names := make([]string, len(m.Plugins))
		c.index = make(map[string]int, len(m.Plugins))
		for i := range m.Plugins {
			names[i] = m.Plugins[i].Name
			c.index[names[i]] = i
		}
		ops := make([]string, len(policy.Ops))
		for i, o := range policy.Ops {
			ops[i] = string(o)
		}
		c.metrics = opts.Metrics.DecisionSeries(names, ops)
	}
	switch {
	case opts.CacheEntries == 0:
		c.cache = newVerdictCache(4096)
	case opts.CacheEntries > 0:
		c.cache = newVerdictCache(opts.CacheEntries)
	}
	logger := newLogger(opts.Logger)

	plugins := make([]*plugin, len(m.Plugins))
	problems := make([][]string, len(m.Plugins))
	var wg sync.WaitGroup
	for i := range m.Plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := &m.Plugins[i]
			config := map[string]string{"config": string(spec.Config)}
			if spec.Use != "" {
				// The built-ins are one module; this key picks the plugin.
				config[builtin.SelectKey] = spec.Use
			}
			eng, why := chooseEngine(spec)
			var mod module
			switch eng {
			case EngineExtism:
				init := spec.Init
				if init <= 0 {
					init = DefaultInit
				}
				timeout := spec.Timeout
				if timeout <= 0 {
					timeout = DefaultTimeout
				}
				pages := uint32(spec.Memory / wasmPage)
				if pages == 0 {
					pages = kernel.DefaultMemoryPages
				}
				sm, err := compileSDK(ctx, sdkConfig{
					name: spec.Name, wasm: spec.Wasm, pages: pages,
					timeout: timeout, init: init, config: config, logger: logger,
					cache: engine.Cache(), interp: opts.Interpreter,
					http:     newHTTPGate(spec.Name, spec.AllowedHosts, spec.AllowSpecial, m.Resolver(), opts.Audit),
					maxInput: kernel.DefaultMaxInput, maxOut: kernel.DefaultMaxOutput,
				})
				if err != nil {
					problems[i] = []string{err.Error()}
					return
				}
				mod = sm
			default:
				km, err := engine.Compile(ctx, kernel.Config{
					Name:        spec.Name,
					Wasm:        spec.Wasm,
					MemoryPages: uint32(spec.Memory / wasmPage),
					Timeout:     spec.Timeout,
					InitTimeout: spec.Init,
					Config:      config,
					Logger:      logger,
				})
				if err != nil {
					problems[i] = []string{err.Error()}
					return
				}
				mod = kernelModule{km}
			}
			p := newPlugin(spec.Name, i, mod, pool, spec.Timeout)
			p.engine, p.engineWhy = eng, why
			p.report = spec.Report
			if probs := p.describeAndValidate(ctx); len(probs) > 0 {
				problems[i] = probs
				p.close(ctx)
				return
			}
			if p.stateful {
				p.pool.resize(1)
			}
			plugins[i] = p
		}()
	}
	wg.Wait()
	var all []Problem
	for i, probs := range problems {
		spec := &m.Plugins[i]
		for _, msg := range probs {
			all = append(all, Problem{File: m.Path, Line: m.problemLine(i, msg),
				Key: fmt.Sprintf("plugins[%d] (%s)", i+1, spec.Name), Msg: msg})
		}
	}
	if len(all) > 0 {
		// In file order: a plugin's config problems point at their keys.
		sort.SliceStable(all, func(a, b int) bool { return all[a].Line < all[b].Line })
		for _, p := range plugins {
			if p != nil {
				p.close(ctx)
			}
		}
		_ = engine.Close(ctx)
		return nil, &ManifestError{all}
	}
	c.plugins = plugins
	return &Policy{Manifest: m, Chain: c, engine: engine}, nil
}

// Close releases every plugin instance and the compilation cache handle.
func (p *Policy) Close(ctx context.Context) error {
	for _, pl := range p.Chain.plugins {
		pl.close(ctx)
	}
	return p.engine.Close(ctx)
}
