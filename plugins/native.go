package plugins

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/wasmgate/wasmgate/plugins/allowlist"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/denylist"
	specialranges "github.com/wasmgate/wasmgate/plugins/special-ranges"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// natives are the built-in plugins the native engine runs: the same Go
// code as the wasm bundle's, compiled into wasmgate (docs/plugins.md#native).
// Only the stateless ones: ratelimit keeps windows per guest name, which
// in wasm the plugin's memory cap bounds and in wasmgate's process nothing
// would.
var natives = map[string]func(config []byte) *policy.Plugin{
	"allowlist":      allowlist.Native,
	"denylist":       denylist.Native,
	"special-ranges": specialranges.Native,
}

// NativePlugin makes a plugin of the embedding program's own Go code from
// its config (the manifest's [plugins.config] table as JSON, "{}" without
// one), for Options.Natives: the same constructor a wasm build of the
// plugin hands to policy.Serve (docs/embedding.md#native-plugins).
type NativePlugin func(config []byte) *policy.Plugin

// nativeModule is a built-in plugin on the native engine, or one of
// Options.Natives. Each instance is the plugin built anew from the
// config, as a wasm instance is.
type nativeModule struct {
	config []byte
	init   time.Duration
	build  func(config []byte) *policy.Plugin
}

func newNativeModule(use string, config []byte, init time.Duration, own map[string]NativePlugin) (*nativeModule, error) {
	if build := own[use]; build != nil {
		return &nativeModule{config: config, init: init, build: func(c []byte) *policy.Plugin {
			if p := build(c); p != nil {
				return p
			}
			return &policy.Plugin{Validate: func() error {
				return fmt.Errorf("Options.Natives[%q] returned no plugin", use)
			}}
		}}, nil
	}
	build, ok := natives[use]
	if !ok {
		if len(own) > 0 {
			return nil, fmt.Errorf(`engine "native" runs only the stateless built-ins (allowlist, denylist, special-ranges) and the program's own (Options.Natives), not %q; use engine "wasmgate"`, use)
		}
		return nil, fmt.Errorf(`engine "native" runs only the stateless built-ins (allowlist, denylist, special-ranges), not %q; use engine "wasmgate"`, use)
	}
	return &nativeModule{config: config, init: init, build: build}, nil
}

func (m *nativeModule) Instantiate(context.Context) (callable, error) {
	i := &nativeInstance{}
	// A panic in the program's constructor fails the instance as a trap
	// would (the built-ins' never panic).
	err := func() (err error) {
		defer i.trap(&err)
		i.p = m.build(m.config)
		return nil
	}()
	if err != nil {
		return nil, err
	}
	return i, nil
}

// checkNatives refuses Options.Natives that a manifest could not name or
// that would take the name of one of wasmgate's built-ins.
func checkNatives(own map[string]NativePlugin) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(own)) { // one order for the messages
		build := own[name]
		switch {
		case name == "":
			errs = append(errs, errors.New("plugins: Options.Natives has an empty name"))
		case build == nil:
			errs = append(errs, fmt.Errorf("plugins: Options.Natives[%q] is nil", name))
		case slices.Contains(builtin.Names(), name):
			errs = append(errs, fmt.Errorf("plugins: Options.Natives[%q] has the name of a wasmgate built-in; pick another name", name))
		}
	}
	return errors.Join(errs...)
}

func (m *nativeModule) HasExport(name string) bool {
	return name == "describe" || name == "validate" || name == "decide"
}

func (m *nativeModule) InitTimeout() time.Duration { return m.init }

func (m *nativeModule) Close(context.Context) error { return nil }

// nativeInstance is one instance of a native built-in. Like a wasm
// instance it is used by one goroutine at a time (the pool's). A panic
// that escapes the plugin (sdk/policy turns one in decide into a deny)
// kills the instance, which the pool then replaces.
type nativeInstance struct {
	p    *policy.Plugin
	dead bool
}

// nativeDecider is a callable that decides a request as it is, without
// encoding it: the native engine's path (plugin.decide).
type nativeDecider interface {
	DecideRequest(r *policy.Request) (policy.Verdict, error)
}

var (
	_ callable      = (*nativeInstance)(nil)
	_ nativeDecider = (*nativeInstance)(nil)
)

// trap turns a panic into the kernel's "trap: ..." error and kills the
// instance.
func (i *nativeInstance) trap(err *error) {
	if r := recover(); r != nil {
		i.dead = true
		*err = fmt.Errorf("trap: panic: %v", r)
	}
}

func (i *nativeInstance) DecideRequest(r *policy.Request) (v policy.Verdict, err error) {
	defer i.trap(&err)
	return i.p.Invoke(*r), nil
}

func (i *nativeInstance) Call(fn string, input []byte) (out []byte, err error) {
	defer i.trap(&err)
	switch fn {
	case "describe":
		return i.p.DescribeJSON()
	case "validate":
		return i.p.ValidateJSON(), nil
	}
	// decide goes through DecideRequest (plugin.decide).
	return nil, errors.New("native instance: no export " + fn)
}

// CallTimeout is Call: the built-ins' work is bounded by their config and
// the request, so the native engine enforces no deadline (docs/plugins.md#8-engines).
func (i *nativeInstance) CallTimeout(fn string, input []byte, _ time.Duration) ([]byte, error) {
	return i.Call(fn, input)
}

// FastSize is 0: plugin.decide takes the request as it is.
func (i *nativeInstance) FastSize() int { return 0 }

func (i *nativeInstance) DecideFast([]byte) ([]byte, error) {
	return nil, errors.New("native instance: no binary fast path")
}

func (i *nativeInstance) Dead() bool { return i.dead }

func (i *nativeInstance) Close() {}
