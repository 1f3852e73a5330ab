// Package allowlist is the built-in wasmgate policy plugin that allows what
// its rules match and abstains on everything else (docs/plugins.md#6-the-built-in-plugins).
//
// Config ([plugins.config] in the manifest):
//
//	rules = ["tcp://api.example.test:443", "bind tcp://127.0.0.1:8080", "dns://*.internal.test"]
//	cache_ttl = "1m"   # how long the host may reuse a verdict; "0s" disables; default 1m
//
// The rule grammar is sdk/policy's ParseRule. dns.lookup and dns.answer of a
// name are allowed when a connect rule's name pattern (or "*") or a dns://
// rule matches the name.
//
// The plugin's package main is ./plugin (build: GOOS=wasip1 GOARCH=wasm go
// build -buildmode=c-shared ./plugins/allowlist/plugin); wasmgate embeds it in
// the bundle of built-ins (package plugins/builtin).
package allowlist

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/wasmgate/wasmgate/internal/policyhook"
	"github.com/wasmgate/wasmgate/internal/ruletable"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// config is the plugin's [plugins.config] table.
type config = policy.RuleListConfig

type allowlist struct {
	rules   policy.RuleSet
	reasons []string // per rule, built once: allocating in decide is slow in wasm
	ttlMs   int64
	// table decides the requests of the shortcut in wasm
	// (internal/policyhook) as decide does.
	table *ruletable.Table
}

func newAllowlist(c config) (*allowlist, error) {
	rules, ttl, err := c.Compile("allowlist")
	if err != nil {
		return nil, err
	}
	a := &allowlist{rules: rules, ttlMs: ttl}
	for _, r := range rules {
		a.reasons = append(a.reasons, "allowed by rule "+strconv.Quote(r.Text))
	}
	a.table = ruletable.Compile(rules, policyhook.Allow, ttl, a.reasons)
	return a, nil
}

func (a *allowlist) decide(r *policy.Request) policy.Verdict {
	v := policy.Abstain()
	if i := a.rules.Index(r); i >= 0 {
		v = policy.Allow(a.reasons[i])
	}
	if r.Op != policy.OpDNSLookup && r.Op != policy.OpDNSAnswer {
		// Allow or abstain, the verdict depends only on the request's
		// key (docs/plugins.md §4, "The verdict cache"), so the host
		// may reuse it.
		// dns verdicts are never reused: a lookup is decided afresh.
		v.CacheTTLMs = a.ttlMs
	}
	return v
}

// loader builds the plugin from its config, once (the host fixes the
// config at instantiation).
type loader func() (*allowlist, error)

func loaderOf(read func() (config, error)) loader {
	return sync.OnceValues(func() (*allowlist, error) {
		c, err := read()
		if err != nil {
			// Report the values' problems too (one per line), so that a
			// config is fixed in one pass.
			if c.Rules != nil {
				if _, err2 := newAllowlist(c); err2 != nil {
					err = errors.Join(err, err2)
				}
			}
			return nil, err
		}
		return newAllowlist(c)
	})
}

// load is the wasm plugin's: its config comes from the host.
var load = loaderOf(func() (config, error) { return readConfig() })

// readConfig reads the plugin's config (policy.LoadRuleListConfig).
var readConfig = policy.LoadRuleListConfig

// Describe is the plugin's describe output (docs/plugins.md#4-the-wire-format).
func Describe() policy.Description { return load.describe() }

func (l loader) describe() policy.Description {
	a, err := l()
	if err != nil {
		return policy.Description{Name: "allowlist", Version: "1"}
	}
	return a.describe()
}

func (a *allowlist) describe() policy.Description {
	d := policy.Description{Name: "allowlist", Version: "1"}
	// Only the ops some rule can match; with no rules this is empty,
	// which means all ops (the plugin then abstains).
	d.Ops = a.rules.Ops()
	// The ops on which no rule looks at the port: the host may then
	// reuse a verdict for every port of the peer (an accept rule without
	// ports serves each new ephemeral port from the cache).
	d.IgnoresPort = a.rules.PortFreeOps(d.Ops)
	return d
}

// Validate checks the config (the validate export).
func Validate() error { return load.validate() }

func (l loader) validate() error {
	_, err := l()
	return err
}

// Decide is the plugin's decision on one request. It passes the request
// on by pointer (inside wasm each copy of a Request is a call out of the
// plugin's code) and, once the config is loaded, calls straight into the
// allowlist: each call on the way is cold code in a running guest.
func Decide(r policy.Request) policy.Verdict {
	if a := loaded.Load(); a != nil {
		return a.decide(&r)
	}
	a, err := load()
	if err != nil {
		return load.decide(&r) // the deny naming the config error
	}
	loaded.Store(a)
	// From now on the requests the shortcut takes skip the SDK's
	// decoding and this function (wasm only; BENCHMARKS.md, "The
	// built-ins' IPv4 shortcut").
	policyhook.Offer(a.table.Decide)
	return a.decide(&r)
}

// loaded is the package's allowlist once load has built it.
var loaded atomic.Pointer[allowlist]

func (l loader) decide(r *policy.Request) policy.Verdict {
	a, err := l()
	if err != nil {
		return policy.Deny("allowlist: bad config: " + err.Error())
	}
	return a.decide(r)
}

// Register makes this plugin the module's describe, validate and decide
// (sdk/policy), as its package main and the built-in bundle do.
func Register() {
	policy.DescribeFunc(Describe)
	policy.Validate(Validate)
	policy.Handle(Decide)
}
