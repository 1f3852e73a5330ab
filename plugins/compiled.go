package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/kernel"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// CompiledPolicy is a manifest loaded once for many guests
// (docs/embedding.md, "One policy, many guests"): its plugins compiled,
// their describe and validate run, their configs accepted. Instantiate
// gives each guest a Policy of its own from it, cheaply: its own guest
// name and labels (so its own budgets in plugins that keep state per guest,
// as ratelimit does), verdict cache and audit logger, and on request
// (GuestOptions.OwnInstances) its own instances of the stateful plugins.
// The compiled modules, the validated configs, the describe results and
// the plugin instances are otherwise shared.
//
// A CompiledPolicy is safe for concurrent use. Its Policies are closed
// independently of each other and of it: Close marks it closed (no more
// Instantiate) and it releases the compiled code once the last of its
// Policies is closed.
type CompiledPolicy struct {
	// Manifest is the validated manifest, shared by every instance; do
	// not modify it.
	Manifest *Manifest

	engine  *kernel.Engine
	plugins []*plugin // manifest order; stateless ones are shared by every instance
	opts    Options   // with Now set
	metrics *metrics.Series
	index   map[string]int

	mu     sync.Mutex
	refs   int  // open Policies
	closed bool // Close was called
	done   bool // the plugins and the engine are released
}

// GuestOptions give one guest's Policy its identity (CompiledPolicy.Instantiate).
// The zero value is the manifest's [guest] and the Options of Compile.
type GuestOptions struct {
	// Name is the guest name the plugins see in every request of this
	// guest (network.Request.Guest, through Policy.NewDefault); "" means
	// the manifest's [guest] name.
	Name string
	// Labels are the guest's labels in the same way; nil means the
	// manifest's [guest] labels (an empty non-nil map: none).
	Labels map[string]string
	// Audit receives this guest's audit records; nil means the Audit of
	// the Options given to Compile (which may be nil: no audit).
	Audit *slog.Logger
	// AuditAttrs are added to each of this guest's audit records (e.g. a
	// tenant or request id), as slog.Logger.With adds them: before the
	// record's own attributes. Their keys should differ from those
	// (docs/manifest.md#audit-records).
	AuditAttrs []slog.Attr
	// CacheEntries bounds this guest's verdict cache, as
	// Options.CacheEntries does (0: the Options', <0: no cache).
	CacheEntries int
	// OwnInstances gives the guest its own instance of every stateful
	// plugin (describe's "stateful": true, e.g. ratelimit), made by
	// Instantiate: its state is then the guest's alone, also against
	// guests of the same name, and its calls never wait for another
	// guest's. Without it the guests of a CompiledPolicy share the one
	// instance of each stateful plugin, whose state a plugin keeps per
	// guest name (ratelimit's budgets are per request guest): guests of
	// different names are apart, guests of one name share it.
	// An instance costs what instantiating the plugin costs, about 5 ms
	// for the Go built-ins (BENCHMARKS.md, "Per-guest policy instance").
	OwnInstances bool
}

// Compile parses the manifest at path and compiles it for many guests:
// Load without the instance. Every problem is reported at once in a
// *ManifestError.
func Compile(ctx context.Context, path string, opts Options) (*CompiledPolicy, error) {
	if err := checkNatives(opts.Natives); err != nil {
		return nil, err
	}
	m, err := ParseManifest(path, opts.builtins())
	if err != nil {
		return nil, err
	}
	return CompileManifest(ctx, m, opts)
}

// newEngine makes the kernel engine of opts' compilation cache settings.
func newEngine(opts Options) *kernel.Engine {
	if opts.CompilationCache != nil {
		return kernel.NewEngineWithCache(opts.CompilationCache)
	}
	dir := opts.CacheDir
	if dir == "" {
		dir = DefaultCacheDir()
	}
	if dir == "-" || opts.InMemoryCache {
		dir = ""
	}
	engine, err := kernel.NewEngine(dir)
	if err != nil {
		// An unusable cache directory only costs time.
		engine, _ = kernel.NewEngine("")
	}
	return engine
}

// CompileManifest is Compile for a manifest already parsed, or built in
// Go. It compiles and instantiates each plugin once, calls its describe
// and validate exports and keeps it for the instances.
//
// In a Manifest built in Go, a zero PluginSpec Timeout, Init or Memory
// means the default a manifest file gets when it leaves the key out
// (DefaultTimeout 100 ms, DefaultInit 5 s, DefaultMemory 64 MiB), and a
// nil Config an empty table ("{}"). Memory is rounded up to whole 64 KiB
// pages. The bounds of a file's keys (MaxTimeout, MinMemory, ...) are not
// applied, but a negative timeout or a memory past 4 GiB is a
// *ManifestError.
func CompileManifest(ctx context.Context, m *Manifest, opts Options) (*CompiledPolicy, error) {
	if err := checkNatives(opts.Natives); err != nil {
		return nil, err
	}
	engine := newEngine(opts)
	engine.Interpreter = opts.Interpreter
	pool := opts.PoolSize
	if pool <= 0 {
		pool = runtime.GOMAXPROCS(0)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cp := &CompiledPolicy{Manifest: m, engine: engine, opts: opts}
	if opts.Metrics != nil {
		names := make([]string, len(m.Plugins))
		cp.index = make(map[string]int, len(m.Plugins))
		for i := range m.Plugins {
			names[i] = m.Plugins[i].Name
			cp.index[names[i]] = i
		}
		ops := make([]string, len(policy.Ops))
		for i, o := range policy.Ops {
			ops[i] = string(o)
		}
		cp.metrics = opts.Metrics.DecisionSeries(names, ops)
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
			lim, probs := specLimits(spec)
			if len(probs) > 0 {
				problems[i] = probs
				return
			}
			if len(lim.config) > 0 {
				config["config"] = lim.config
			}
			eng, why := chooseEngine(spec)
			if opts.Natives[spec.Use] != nil && spec.Wasm == nil && spec.Path == "" && spec.OCI == "" {
				// The program's own plugin with no wasm form.
				if eng != EngineNative && spec.Engine != "" && spec.Engine != EngineAuto {
					problems[i] = []string{fmt.Sprintf(`%q is a native plugin of this program (Options.Natives) with no wasm form; it runs only on engine "native", not %q`, spec.Use, spec.Engine)}
					return
				}
				eng, why = EngineNative, "a native plugin of this program (Options.Natives)"
			}
			if eng == EngineNative && opts.Natives[spec.Use] != nil &&
				(spec.Timeout != 0 && spec.Timeout != DefaultTimeout || spec.Memory != 0 && spec.Memory != DefaultMemory) {
				// A file's keys are refused when it is parsed; this is
				// for a Manifest built in Go.
				problems[i] = []string{`timeout and memory have no effect on a native plugin of this program: it runs without the sandbox's deadline and memory cap`}
				return
			}
			var mod module
			switch eng {
			case EngineNative:
				nm, err := newNativeModule(spec.Use, []byte(config["config"]), lim.init, opts.Natives)
				if err != nil {
					problems[i] = []string{err.Error()}
					return
				}
				mod = nm
			case EngineExtism:
				sm, err := compileSDK(ctx, sdkConfig{
					name: spec.Name, wasm: spec.Wasm, pages: lim.pages,
					timeout: lim.timeout, init: lim.init, config: config, logger: logger,
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
					MemoryPages: lim.pages,
					Timeout:     lim.timeout,
					InitTimeout: lim.init,
					Config:      config,
					Logger:      logger,
				})
				if err != nil {
					problems[i] = []string{err.Error()}
					return
				}
				mod = kernelModule{km}
			}
			p := newPlugin(spec.Name, i, mod, pool, lim.timeout)
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
	cp.plugins = plugins
	return cp, nil
}

// pluginLimits are a PluginSpec's limits with the defaults applied.
type pluginLimits struct {
	timeout, init time.Duration
	pages         uint32
	config        string // "" when the spec has one
}

// specLimits applies the defaults to the zero values of a PluginSpec,
// which a Manifest built in Go may have (ParseManifest never leaves them
// zero). A Go-built manifest may go past the bounds of a manifest file
// (MaxTimeout, MinMemory: a C plugin may need less than a Go one), but
// not below zero or past wasm32's 4 GiB. Memory is rounded up to whole
// 64 KiB pages, as in a file.
func specLimits(spec *PluginSpec) (pluginLimits, []string) {
	lim := pluginLimits{timeout: spec.Timeout, init: spec.Init}
	var probs []string
	switch {
	case lim.timeout == 0:
		lim.timeout = DefaultTimeout
	case lim.timeout < 0:
		probs = append(probs, fmt.Sprintf("timeout must be more than 0, not %v", lim.timeout))
	}
	switch {
	case lim.init == 0:
		lim.init = DefaultInit
	case lim.init < 0:
		probs = append(probs, fmt.Sprintf("init_timeout must be more than 0, not %v", lim.init))
	}
	mem := spec.Memory
	switch {
	case mem == 0:
		mem = DefaultMemory
	case mem > MaxMemory:
		probs = append(probs, fmt.Sprintf("memory must be at most 4GiB, not %d bytes", mem))
	}
	lim.pages = uint32((mem + wasmPage - 1) / wasmPage)
	if len(spec.Config) == 0 {
		lim.config = "{}"
	}
	return lim, probs
}

// errCompiledClosed is Instantiate's error after Close.
var errCompiledClosed = errors.New("plugins: compiled policy is closed")

// Instantiate returns a Policy for one guest (see GuestOptions): a chain
// over the compiled plugins with its own verdict cache and audit logger.
// Without OwnInstances it makes no plugin instance and runs no wasm; with
// it, the guest's instance of each stateful plugin is made here, not at
// its first decision, so that one that cannot be made fails Instantiate.
// The Policy's Manifest is a copy of the compiled one with the guest's
// name and labels, so Policy.NewDefault gives them to the guest's
// requests. Close the Policy when the guest is done; it does not close the
// CompiledPolicy.
func (c *CompiledPolicy) Instantiate(ctx context.Context, g GuestOptions) (*Policy, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errCompiledClosed
	}
	c.refs++
	c.mu.Unlock()

	m := new(Manifest)
	*m = *c.Manifest
	if g.Name != "" {
		m.Guest = g.Name
	}
	if g.Labels != nil {
		m.Labels = maps.Clone(g.Labels)
	}
	audit := g.Audit
	if audit == nil {
		audit = c.opts.Audit
	}
	if audit != nil && len(g.AuditAttrs) > 0 {
		args := make([]any, len(g.AuditAttrs))
		for i, a := range g.AuditAttrs {
			args[i] = a
		}
		audit = audit.With(args...)
	}
	ch := &Chain{def: m.Default, report: m.Report, audit: audit, now: c.opts.Now,
		metrics: c.metrics, index: c.index}
	entries := g.CacheEntries
	if entries == 0 {
		entries = c.opts.CacheEntries
	}
	switch {
	case entries == 0:
		ch.cache = newVerdictCache(4096)
	case entries > 0:
		ch.cache = newVerdictCache(entries)
	}
	p := &Policy{Manifest: m, Chain: ch, compiled: c}
	ch.plugins = make([]*plugin, len(c.plugins))
	for i, tp := range c.plugins {
		if !tp.stateful || !g.OwnInstances {
			ch.plugins[i] = tp
			continue
		}
		own := *tp
		own.pool = newPool[*instance](1)
		ch.plugins[i] = &own
		p.own = append(p.own, &own)
		if err := own.with(ctx, func(*instance) error { return nil }); err != nil {
			p.Close(ctx)
			return nil, fmt.Errorf("plugin %q: %w", tp.name, err)
		}
	}
	return p, nil
}

// Close stops Instantiate and releases the compiled plugins once every
// Policy instantiated from them is closed (at once if none is open).
// Calling it again does nothing.
func (c *CompiledPolicy) Close(ctx context.Context) error {
	return c.releaseAfter(ctx, func() { c.closed = true })
}

// unref is a Policy's Close.
func (c *CompiledPolicy) unref(ctx context.Context) error {
	return c.releaseAfter(ctx, func() { c.refs-- })
}

// releaseAfter applies change under the lock, then releases the compiled
// plugins if Close was called and no Policy is open, once.
func (c *CompiledPolicy) releaseAfter(ctx context.Context, change func()) error {
	c.mu.Lock()
	change()
	release := c.refs == 0 && c.closed && !c.done
	if release {
		c.done = true
	}
	c.mu.Unlock()
	if release {
		return c.release(ctx)
	}
	return nil
}

func (c *CompiledPolicy) release(ctx context.Context) error {
	for _, p := range c.plugins {
		p.close(ctx)
	}
	return c.engine.Close(ctx)
}

// Policy is one guest's instance of a compiled manifest (Load, or
// CompiledPolicy.Instantiate): the Manifest with the guest's name and
// labels, and the Chain that decides for it.
type Policy struct {
	Manifest *Manifest
	Chain    *Chain

	compiled     *CompiledPolicy
	own          []*plugin // the instance's own stateful plugins
	ownsCompiled bool      // Load's: Close closes compiled too
	closeOnce    sync.Once
	closeErr     error
}

// Close releases the guest's own plugin instances; decisions after it
// deny. A Policy from Load also closes its CompiledPolicy, so that its
// compiled code is released; one from Instantiate leaves it to the
// CompiledPolicy's Close. Calling Close again does nothing.
func (p *Policy) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.Chain.closed.Store(true)
		for _, pl := range p.own {
			pl.pool.close()
		}
		if p.ownsCompiled {
			_ = p.compiled.Close(ctx)
		}
		p.closeErr = p.compiled.unref(ctx)
	})
	return p.closeErr
}

// Compiled returns the CompiledPolicy p was instantiated from.
func (p *Policy) Compiled() *CompiledPolicy { return p.compiled }
