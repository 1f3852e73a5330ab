//go:build !wasip1

package ratelimit

import "github.com/wasmgate/wasmgate/sdk/policy"

// Native is the plugin with cfg, its [plugins.config] as JSON, for a host
// that runs it in its own process (wasmgate's native engine,
// docs/plugins.md#8-engines): the same code as the wasm built-in. Its
// state (the windows per guest) is the Plugin's.
func Native(cfg []byte) *policy.Plugin {
	l := loaderOf(func() (config, error) { return configFrom(policy.ParseConfigMap(cfg)) })
	return &policy.Plugin{Describe: l.describe, Validate: l.validate, Decide: l.decide}
}
