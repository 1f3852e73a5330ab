package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmgate/wasmgate/plugins/internal/kernel"
)

// The go-sdk engine (docs/plugins.md#8-engines): a plugin compiled once by
// go-sdk (extism.CompiledPlugin, one wazero runtime), instances made from
// it on demand and pooled like the kernel's, each reused for many calls.
// Limits are the kernel's: the same input and output caps, plugin
// variables, memory (go-sdk's max_pages) and per-call timeout (go-sdk's
// context deadline).
//
// The plugin's own kernel calls keep their function handles per instance
// (kernelHostFunctions). go-sdk's Plugin.CallWithContext still looks up the
// export and the kernel functions it calls itself by name on every call,
// and allocates a context per call for its timeout; its API offers no way
// around that, so what it costs is measured in BENCHMARKS.md ("Plugin
// engines").

// wasiOutputEnv makes go-sdk send every plugin's WASI stdout and stderr to
// the process's own, overriding ours; refused (see compileSDK).
const wasiOutputEnv = "EXTISM_ENABLE_WASI_OUTPUT"

type sdkConfig struct {
	name     string
	wasm     []byte
	pages    uint32
	timeout  time.Duration
	init     time.Duration
	config   map[string]string
	logger   *slog.Logger
	cache    wazero.CompilationCache
	interp   bool
	http     *httpGate // nil: no http_request
	maxInput int
	maxOut   int
}

type sdkModule struct {
	cfg     sdkConfig
	cp      *extism.CompiledPlugin
	exports map[string]bool // function exports, under the names go-sdk sees
}

// compileSDK compiles a plugin for the go-sdk engine. Its imports must be
// Extism's and WASI's only; http_request is redirected to wasmgate's own
// (pluginhttp.go), which applies allowed_hosts and the special ranges at
// connect time.
func compileSDK(ctx context.Context, cfg sdkConfig) (*sdkModule, error) {
	if _, set := os.LookupEnv(wasiOutputEnv); set {
		return nil, fmt.Errorf("%s is set: go-sdk would send the plugin's output to wasmgate's own stdout and stderr; unset it to use engine = \"extism\"", wasiOutputEnv)
	}
	imps, err := wasmImports(cfg.wasm)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, im := range imps {
		if im.kind != 0 {
			problems = append(problems, fmt.Sprintf("imports a non-function %s.%s, which wasmgate does not provide", im.module, im.name))
		} else if !kernel.ProvidesImport(im.module, im.name) {
			problems = append(problems, fmt.Sprintf("imports %s.%s, which wasmgate does not provide (plugins get only the Extism host functions and WASI; no other host functions)", im.module, im.name))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	wasm, err := redirectImports(cfg.wasm, "extism:host/env", map[string]bool{"http_request": true}, httpModule)
	if err != nil {
		return nil, err
	}
	// go-sdk would start the plugin's language runtime inside its first
	// call, under that call's deadline; hidden under other names, the
	// start functions are called by Instantiate under init_timeout, as
	// the kernel calls _initialize.
	wasm, err = redirectImports(wasm, "extism:host/env", kernelRedirected, sdkKernelModule)
	if err != nil {
		return nil, err
	}
	wasm, err = renameExports(wasm, map[string]string{"_initialize": sdkStart, "__wasm_call_ctors": sdkCtors})
	if err != nil {
		return nil, err
	}
	rc := wazero.NewRuntimeConfig()
	if cfg.interp {
		rc = wazero.NewRuntimeConfigInterpreter()
	}
	if cfg.cache != nil {
		rc = rc.WithCompilationCache(cfg.cache)
	}
	m := extism.Manifest{
		Wasm:   []extism.Wasm{extism.WasmData{Data: wasm}},
		Config: cfg.config,
		Memory: &extism.ManifestMemory{
			MaxPages:             cfg.pages,
			MaxVarBytes:          sdkMaxVarBytes,
			MaxHttpResponseBytes: maxHTTPResponse,
		},
		// go-sdk closes a module whose call context is done only when
		// the manifest has a timeout; each instance's Timeout is then set
		// per call (CallTimeout).
		Timeout: uint64(max(cfg.timeout.Milliseconds(), 1)),
	}
	cp, err := extism.NewCompiledPlugin(ctx, m, extism.PluginConfig{
		RuntimeConfig:             rc,
		EnableWasi:                true,
		EnableHttpResponseHeaders: true,
	}, append(kernelHostFunctions(), cfg.http.hostFunction()))
	if err != nil {
		return nil, fmt.Errorf("go-sdk: %v", firstLine(err.Error()))
	}
	exports, err := wasmFuncExports(wasm)
	if err != nil {
		_ = cp.Close(ctx)
		return nil, err
	}
	setSDKLogLevel(cfg.logger)
	return &sdkModule{cfg: cfg, cp: cp, exports: exports}, nil
}

// sdkMaxVarBytes caps plugin variables as the kernel does.
const sdkMaxVarBytes = 64 << 10

func (m *sdkModule) Instantiate(ctx context.Context) (callable, error) {
	mc := wazero.NewModuleConfig().
		WithStdout(kernel.LogWriter(m.cfg.logger, m.cfg.name, slog.LevelInfo)).
		WithStderr(kernel.LogWriter(m.cfg.logger, m.cfg.name, slog.LevelWarn))
	p, err := m.cp.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: mc})
	if err != nil {
		return nil, fmt.Errorf("instantiate: %v", firstLine(err.Error()))
	}
	name, l := m.cfg.name, m.cfg.logger
	p.SetLogger(func(level extism.LogLevel, msg string) { sdkLog(l, name, level, msg) })
	inst := &sdkInstance{m: m, p: p}
	sdkInstances.Store(p, inst)
	// A WASI reactor's _initialize, else a command's constructors: what
	// go-sdk would have called (renamed in compileSDK).
	for _, fn := range []string{sdkStart, sdkCtors} {
		if m.HasExport(fn) {
			if _, err := inst.CallTimeout(fn, nil, m.cfg.init); err != nil {
				inst.Close()
				return nil, fmt.Errorf("_initialize: %v", err)
			}
			break
		}
	}
	return inst, nil
}

// The names the start functions are exported under for go-sdk.
const (
	sdkStart = "wasmgate_initialize"
	sdkCtors = "wasmgate_call_ctors"
)

func (m *sdkModule) HasExport(name string) bool { return m.exports[name] }

func (m *sdkModule) InitTimeout() time.Duration { return m.cfg.init }

func (m *sdkModule) Close(ctx context.Context) error { return m.cp.Close(ctx) }

// sdkInstance is one go-sdk Plugin, reused for many calls.
type sdkInstance struct {
	m    *sdkModule
	p    *extism.Plugin
	dead bool
	// kfns are the handles of go-sdk's kernel module functions the
	// plugin calls (kernelHostFunctions), looked up once each.
	kfns [len(kernelFuncs)]api.Function
}

func (i *sdkInstance) FastSize() int { return 0 }

func (i *sdkInstance) DecideFast([]byte) ([]byte, error) {
	return nil, errors.New("no fast path on the extism engine")
}

func (i *sdkInstance) Dead() bool { return i.dead }

func (i *sdkInstance) Close() {
	i.dead = true
	sdkInstances.Delete(i.p)
	_ = i.p.Close(context.Background())
}

// The plugin's calls of the Extism kernel: go-sdk serves each by looking
// the kernel module's function up by name, which costs a wazero call
// engine (an allocation of several KiB) per call. They are redirected
// (compileSDK) to these host functions, which call the same functions of
// the same kernel module through handles kept per instance.
const sdkKernelModule = "wasmgate:host/kernel"

var kernelFuncs = [...]struct {
	name            string
	params, results []api.ValueType
}{
	{"alloc", []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}},
	{"free", []api.ValueType{api.ValueTypeI64}, nil},
	{"load_u8", []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI32}},
	{"input_load_u8", []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI32}},
	{"store_u8", []api.ValueType{api.ValueTypeI64, api.ValueTypeI32}, nil},
	{"input_set", []api.ValueType{api.ValueTypeI64, api.ValueTypeI64}, nil},
	{"output_set", []api.ValueType{api.ValueTypeI64, api.ValueTypeI64}, nil},
	{"input_length", nil, []api.ValueType{api.ValueTypeI64}},
	{"input_offset", nil, []api.ValueType{api.ValueTypeI64}},
	{"output_length", nil, []api.ValueType{api.ValueTypeI64}},
	{"output_offset", nil, []api.ValueType{api.ValueTypeI64}},
	{"length", []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}},
	{"length_unsafe", []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}},
	{"reset", nil, nil},
	{"error_set", []api.ValueType{api.ValueTypeI64}, nil},
	{"error_get", nil, []api.ValueType{api.ValueTypeI64}},
	{"memory_bytes", nil, []api.ValueType{api.ValueTypeI64}},
}

var kernelRedirected = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range kernelFuncs {
		m[f.name] = true
	}
	return m
}()

// sdkInstances finds the instance of a go-sdk Plugin in a host call.
var sdkInstances sync.Map // *extism.Plugin -> *sdkInstance

func kernelHostFunctions() []extism.HostFunction {
	out := make([]extism.HostFunction, 0, len(kernelFuncs))
	for idx, kf := range kernelFuncs {
		f := extism.NewHostFunctionWithStack(kf.name, func(ctx context.Context, _ *extism.CurrentPlugin, stack []uint64) {
			p, _ := ctx.Value(extism.PluginCtxKey("plugin")).(*extism.Plugin)
			v, _ := sdkInstances.Load(p)
			inst, _ := v.(*sdkInstance)
			if inst == nil {
				panic(fmt.Errorf("%s: outside a plugin call", kf.name))
			}
			fn := inst.kfns[idx]
			if fn == nil {
				kernel, _ := ctx.Value(extism.PluginCtxKey("extism")).(api.Module)
				if kernel == nil {
					panic(fmt.Errorf("%s: no Extism kernel", kf.name))
				}
				if fn = kernel.ExportedFunction(kf.name); fn == nil {
					panic(fmt.Errorf("%s: not in the Extism kernel", kf.name))
				}
				inst.kfns[idx] = fn
			}
			if err := fn.CallWithStack(ctx, stack); err != nil {
				panic(err)
			}
		}, kf.params, kf.results)
		f.SetNamespace(sdkKernelModule)
		out = append(out, f)
	}
	return out
}

func (i *sdkInstance) Call(fn string, input []byte) ([]byte, error) {
	return i.CallTimeout(fn, input, i.m.cfg.timeout)
}

// CallTimeout calls export fn. Every failure is an error worded as the
// kernel's; any failure but a plugin's own error_set kills the instance.
func (i *sdkInstance) CallTimeout(fn string, input []byte, timeout time.Duration) ([]byte, error) {
	if i.dead {
		return nil, errors.New("instance is closed")
	}
	if len(input) > i.m.cfg.maxInput {
		return nil, fmt.Errorf("input of %d bytes exceeds the %d-byte limit", len(input), i.m.cfg.maxInput)
	}
	i.p.Timeout = timeout
	start := time.Now()
	rc, out, err := i.p.CallWithContext(context.Background(), fn, input)
	if err != nil {
		var exit *sys.ExitError
		switch {
		case errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled),
			// A host function (http_request) that failed because the
			// deadline passed.
			time.Since(start) >= timeout && errors.Is(err, context.DeadlineExceeded),
			time.Since(start) >= timeout && strings.Contains(err.Error(), context.DeadlineExceeded.Error()):
			i.Close()
			return nil, fmt.Errorf("timeout after %v", timeout)
		case errors.As(err, &exit):
			i.Close()
			return nil, fmt.Errorf("plugin exited with code %d", exit.ExitCode())
		}
		if msg := i.p.GetError(); msg != "" && msg == err.Error() {
			// The plugin's own error_set: the instance survives.
			if len(msg) > 1<<10 {
				msg = msg[:1<<10]
			}
			return nil, errors.New("plugin error: " + strings.ToValidUTF8(msg, "?"))
		}
		i.Close()
		return nil, errors.New("trap: " + firstLine(err.Error()))
	}
	if rc != 0 {
		i.Close()
		return nil, fmt.Errorf("returned %d without an error", rc)
	}
	if len(out) > i.m.cfg.maxOut {
		i.Close()
		return nil, fmt.Errorf("output of %d bytes exceeds the %d-byte limit", len(out), i.m.cfg.maxOut)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
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

// go-sdk's log level is one process-wide setting (extism.SetLogLevel)
// that gates every plugin's log_* calls before they reach a logger. It is
// raised to the most verbose level any loaded plugin's logger wants, never
// lowered; each plugin's logger then filters its own lines.
var (
	sdkLevelMu sync.Mutex
	sdkLevel   = extism.LogLevelOff
)

func setSDKLogLevel(l *slog.Logger) {
	want := extism.LogLevelOff
	ctx := context.Background()
	switch {
	case l.Enabled(ctx, slog.LevelDebug-4):
		want = extism.LogLevelTrace
	case l.Enabled(ctx, slog.LevelDebug):
		want = extism.LogLevelDebug
	case l.Enabled(ctx, slog.LevelInfo):
		want = extism.LogLevelInfo
	case l.Enabled(ctx, slog.LevelWarn):
		want = extism.LogLevelWarn
	case l.Enabled(ctx, slog.LevelError):
		want = extism.LogLevelError
	}
	sdkLevelMu.Lock()
	defer sdkLevelMu.Unlock()
	if want < sdkLevel {
		sdkLevel = want
		extism.SetLogLevel(want)
	}
}

// sdkLog passes a plugin's log line to the host logger as the kernel does
// ("plugin log", with the plugin's name). go-sdk logs its own call
// tracing through the same callback; those lines are dropped.
func sdkLog(l *slog.Logger, plugin string, level extism.LogLevel, msg string) {
	var sl slog.Level
	switch level {
	case extism.LogLevelTrace:
		sl = slog.LevelDebug - 4
	case extism.LogLevelDebug:
		sl = slog.LevelDebug
	case extism.LogLevelInfo:
		sl = slog.LevelInfo
	case extism.LogLevelWarn:
		sl = slog.LevelWarn
	default:
		sl = slog.LevelError
	}
	ctx := context.Background()
	if !l.Enabled(ctx, sl) {
		return
	}
	if level <= extism.LogLevelDebug && sdkInternal(msg) {
		return
	}
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	l.Log(ctx, sl, "plugin log", "plugin", plugin, "msg", strings.ToValidUTF8(msg, "?"))
}

// sdkInternal recognises go-sdk's own debug and trace lines.
func sdkInternal(msg string) bool {
	for _, p := range []string{"Calling function : ", "Calling _initialize", "Calling __wasm_call_ctors",
		"Initializing runtime for", "Initialized Haskell language runtime.", "WASI runtime detected", "Reactor module detected",
		"Command module detected", "Haskell runtime detected", "No runtime detected", "hs_init function found",
		"_initialize function found", "__wasm_call_ctors function found"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
