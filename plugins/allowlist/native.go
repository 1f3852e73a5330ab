//go:build !wasip1

package allowlist

import "github.com/wasmgate/wasmgate/sdk/policy"

// Native is the plugin with cfg, its [plugins.config] as JSON, for a host
// that runs it in its own process (wasmgate's native engine,
// docs/plugins.md#8-engines): the same code as the wasm built-in.
func Native(cfg []byte) *policy.Plugin {
	l := loaderOf(func() (config, error) { return policy.ParseRuleListConfig(cfg) })
	return &policy.Plugin{Describe: l.describe, Validate: l.validate, Decide: func(r policy.Request) policy.Verdict { return l.decide(&r) }}
}
