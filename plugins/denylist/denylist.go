// Package denylist is the built-in wasmgate policy plugin that denies what
// its rules match and abstains on everything else (docs/plugins.md#6-the-built-in-plugins). Put it
// first in the chain: any deny wins.
//
// Config ([plugins.config] in the manifest):
//
//	rules = ["tcp://*.tracker.test", "*://10.0.0.0/8:22", "dns://*.exfil.test"]
//	cache_ttl = "1m"   # how long the host may reuse a verdict; "0s" disables; default 1m
//
// An IP or CIDR rule also denies the IPv6 addresses that embed an IPv4
// address it matches (NAT64, 6to4, Teredo, IPv4-compatible: policy.Rule
// MatchDeny): tcp://127.0.0.0/8 denies 64:ff9b::7f00:1.
//
// The grammar is the allowlist's (sdk/policy ParseRule) with one difference:
// lookups (dns.lookup, dns.answer) are denied only by dns:// rules. A deny
// rule like tcp://api.example.test:25 must not stop the guest from resolving
// api.example.test to reach it on port 443.
//
// The plugin's package main is ./plugin (build: GOOS=wasip1 GOARCH=wasm go
// build -buildmode=c-shared ./plugins/denylist/plugin); wasmgate embeds it in
// the bundle of built-ins (package plugins/builtin).
package denylist

import (
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/wasmgate/wasmgate/internal/policyhook"
	"github.com/wasmgate/wasmgate/internal/ruletable"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// config is the plugin's [plugins.config] table.
type config = policy.RuleListConfig

type denylist struct {
	rules   policy.RuleSet
	reasons []string // per rule, built once: allocating in decide is slow in wasm
	ttlMs   int64
	// table decides the requests of the shortcut in wasm
	// (internal/policyhook) as decide does.
	table *ruletable.Table
}

func newDenylist(c config) (*denylist, error) {
	rules, ttl, err := c.Compile("denylist")
	if err != nil {
		return nil, err
	}
	d := &denylist{rules: rules, ttlMs: ttl}
	for _, r := range rules {
		d.reasons = append(d.reasons, "denied by rule "+strconv.Quote(r.Text))
	}
	d.table = ruletable.Compile(rules, policyhook.Deny, ttl, d.reasons)
	return d, nil
}

func isDNS(op policy.Op) bool { return op == policy.OpDNSLookup || op == policy.OpDNSAnswer }

func (d *denylist) decide(r *policy.Request) policy.Verdict {
	dns := isDNS(r.Op)
	for i := range d.rules {
		rule := &d.rules[i]
		if dns && rule.Dir != policy.DirDNS {
			continue
		}
		if rule.MatchDeny(r) {
			v := policy.Deny(d.reasons[i])
			if !dns && len(r.EmbeddedIPv4) > 0 && !rule.Match(r) {
				// Rare: say why an IPv6 address matched an IPv4 rule.
				v.Reason += " (" + r.Addr.String() + " embeds IPv4 " + embedded(r.EmbeddedIPv4) + ")"
			}
			if !dns {
				v.CacheTTLMs = d.ttlMs
			}
			return v
		}
	}
	v := policy.Abstain()
	if !dns {
		// No rule matched: that too depends only on the request's key.
		v.CacheTTLMs = d.ttlMs
	}
	return v
}

func embedded(as []netip.Addr) string {
	var b []byte
	for i, a := range as {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = a.AppendTo(b)
	}
	return string(b)
}

// ops lists the operations some rule can deny.
func (d *denylist) ops() []policy.Op {
	var out []policy.Op
	for _, op := range d.rules.Ops() {
		if isDNS(op) {
			hasDNSRule := false
			for _, r := range d.rules {
				hasDNSRule = hasDNSRule || r.Dir == policy.DirDNS
			}
			if !hasDNSRule {
				continue
			}
		}
		out = append(out, op)
	}
	return out
}

// loader builds the plugin from its config, once (the host fixes the
// config at instantiation).
type loader func() (*denylist, error)

func loaderOf(read func() (config, error)) loader {
	return sync.OnceValues(func() (*denylist, error) {
		c, err := read()
		if err != nil {
			// Report the values' problems too (one per line), so that a
			// config is fixed in one pass.
			if c.Rules != nil {
				if _, err2 := newDenylist(c); err2 != nil {
					err = errors.Join(err, err2)
				}
			}
			return nil, err
		}
		return newDenylist(c)
	})
}

// load is the wasm plugin's: its config comes from the host.
var load = loaderOf(func() (config, error) { return readConfig() })

// readConfig reads the plugin's config (policy.LoadRuleListConfig).
var readConfig = policy.LoadRuleListConfig

// Describe is the plugin's describe output (docs/plugins.md#4-the-wire-format).
func Describe() policy.Description { return load.describe() }

func (l loader) describe() policy.Description {
	dl, err := l()
	if err != nil {
		return policy.Description{Name: "denylist", Version: "1"}
	}
	return dl.describe()
}

func (dl *denylist) describe() policy.Description {
	d := policy.Description{Name: "denylist", Version: "1"}
	d.Ops = dl.ops() // empty (no rules) means all ops
	// As the allowlist: the ops on which no rule looks at the port.
	d.IgnoresPort = dl.rules.PortFreeOps(d.Ops)
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
// plugin: each call on the way is cold code in a running guest.
func Decide(r policy.Request) policy.Verdict {
	if d := loaded.Load(); d != nil {
		return d.decide(&r)
	}
	d, err := load()
	if err != nil {
		return load.decide(&r) // the deny naming the config error
	}
	loaded.Store(d)
	// From now on the requests the shortcut takes skip the SDK's
	// decoding and this function (wasm only; BENCHMARKS.md, "The
	// built-ins' IPv4 shortcut").
	policyhook.Offer(d.table.Decide)
	return d.decide(&r)
}

// loaded is the package's plugin once load has built it.
var loaded atomic.Pointer[denylist]

func (l loader) decide(r *policy.Request) policy.Verdict {
	dl, err := l()
	if err != nil {
		return policy.Deny("denylist: bad config: " + err.Error())
	}
	return dl.decide(r)
}

// Register makes this plugin the module's describe, validate and decide
// (sdk/policy), as its package main and the built-in bundle do.
func Register() {
	policy.DescribeFunc(Describe)
	policy.Validate(Validate)
	policy.Handle(Decide)
}
