package plugins

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wasmgate/wasmgate/plugins/internal/kernel"
)

// The engines a plugin can run on ([[plugins]] engine, docs/plugins.md#8-engines).
const (
	// EngineAuto (the default) picks EngineWasmgate when the kernel serves
	// every import of the module, EngineExtism otherwise.
	EngineAuto = "auto"
	// EngineWasmgate is wasmgate's own Extism kernel (plugins/internal/kernel):
	// one wasm call per decision, the binary fast path, no http_request.
	EngineWasmgate = "wasmgate"
	// EngineExtism is github.com/extism/go-sdk: the whole Extism host,
	// http_request included (limited by allowed_hosts), at go-sdk's cost.
	EngineExtism = "extism"
	// EngineNative runs a built-in plugin (use = "NAME") as Go code
	// compiled into wasmgate, in its own process: the same code as the
	// wasm built-in, without the sandbox's cost, nor its deadline and
	// memory cap (docs/plugins.md#8-engines).
	EngineNative = "native"
)

// callable is one instance of a plugin, on either engine. It is held by
// one goroutine at a time (the pool's). *kernel.Instance is one; so is
// *sdkInstance. Errors follow the kernel's messages, which the chain turns
// into deny reasons and metrics: "timeout after ...", "trap: ...",
// "returned N without an error", "plugin error: ...".
type callable interface {
	Call(fn string, input []byte) ([]byte, error)
	CallTimeout(fn string, input []byte, timeout time.Duration) ([]byte, error)
	// FastSize is the wasmgate fast path's buffer size, 0 without one.
	FastSize() int
	DecideFast(input []byte) ([]byte, error)
	Dead() bool
	Close()
}

// module is a compiled plugin on either engine.
type module interface {
	Instantiate(ctx context.Context) (callable, error)
	// HasExport reports whether the plugin exports a callable function.
	HasExport(name string) bool
	// InitTimeout is the deadline of load-time calls (describe, validate).
	InitTimeout() time.Duration
	Close(ctx context.Context) error
}

// kernelModule is a kernel.Module as a module.
type kernelModule struct{ *kernel.Module }

func (m kernelModule) Instantiate(ctx context.Context) (callable, error) {
	i, err := m.Module.Instantiate(ctx)
	if err != nil {
		return nil, err
	}
	return i, nil
}

// PluginEngine says which engine a loaded plugin runs on and why.
type PluginEngine struct {
	Plugin string
	Engine string // EngineWasmgate, EngineExtism or EngineNative
	Why    string // e.g. "imports extism:host/env.http_request"
}

// Engines lists the engine of each plugin, in manifest order.
func (c *Chain) Engines() []PluginEngine {
	out := make([]PluginEngine, len(c.plugins))
	for i, p := range c.plugins {
		out[i] = PluginEngine{Plugin: p.name, Engine: p.engine, Why: p.engineWhy}
	}
	return out
}

// chooseEngine resolves a plugin's engine key: an explicit engine is
// taken as written; auto looks at the module's imports. A module whose
// imports cannot be read goes to the kernel, whose compiler then says
// what is wrong with it.
func chooseEngine(spec *PluginSpec) (engine, why string) {
	switch spec.Engine {
	case EngineWasmgate, EngineExtism, EngineNative:
		return spec.Engine, fmt.Sprintf("engine = %q in the manifest", spec.Engine)
	}
	imps, err := wasmImports(spec.Wasm)
	if err != nil {
		return EngineWasmgate, "default (the module's imports could not be read)"
	}
	var need []string
	for _, im := range imps {
		if im.kind == 0 && kernel.ProvidesImport(im.module, im.name) && !kernel.ServesImport(im.module, im.name) {
			need = append(need, im.module+"."+im.name)
		}
	}
	if len(need) == 0 {
		return EngineWasmgate, "every import is one the kernel serves"
	}
	return EngineExtism, "imports " + strings.Join(need, ", ")
}
