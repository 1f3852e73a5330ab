// Command denylist is the built-in wasmgate policy plugin that denies what
// its rules match and abstains on everything else (POLICY.md §5). Put it
// first in the chain: any deny wins.
//
// Config ([plugins.config] in the manifest):
//
//	rules = ["tcp://*.tracker.test", "*://10.0.0.0/8:22", "dns://*.exfil.test"]
//	cache_ttl = "1m"   # how long the host may reuse a verdict; "0s" disables; default 1m
//
// The grammar is the allowlist's (sdk/policy ParseRule) with one difference:
// lookups (dns.lookup, dns.answer) are denied only by dns:// rules. A deny
// rule like tcp://api.example.test:25 must not stop the guest from resolving
// api.example.test to reach it on port 443.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags='-s -w'
package main

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// config is the plugin's [plugins.config] table.
type config struct {
	Rules    *[]string // nil: the key is missing
	CacheTTL string
}

type denylist struct {
	rules   policy.RuleSet
	reasons []string // per rule, built once: allocating in decide is slow in wasm
	ttlMs   int64
}

const defaultCacheTTL = time.Minute

func newDenylist(c config) (*denylist, error) {
	if c.Rules == nil {
		return nil, errors.New(`denylist: no rules: set rules = ["tcp://HOST:PORT", ...] in [plugins.config]`)
	}
	rules, err := policy.ParseRules(*c.Rules)
	if err != nil {
		return nil, err
	}
	ttl := defaultCacheTTL.Milliseconds()
	if c.CacheTTL != "" {
		d, err := time.ParseDuration(c.CacheTTL)
		if err != nil || d < 0 {
			return nil, errors.New("cache_ttl " + strconv.Quote(c.CacheTTL) + ": want a duration such as \"1m\" or \"0s\"")
		}
		ttl = d.Milliseconds()
	}
	d := &denylist{rules: rules, ttlMs: ttl}
	for _, r := range rules {
		d.reasons = append(d.reasons, "denied by rule "+strconv.Quote(r.Text))
	}
	return d, nil
}

func isDNS(op policy.Op) bool { return op == policy.OpDNSLookup || op == policy.OpDNSAnswer }

func (d *denylist) decide(r policy.Request) policy.Verdict {
	dns := isDNS(r.Op)
	for i := range d.rules {
		rule := &d.rules[i]
		if dns && rule.Dir != policy.DirDNS {
			continue
		}
		if rule.Match(&r) {
			v := policy.Deny(d.reasons[i])
			if !dns {
				v.CacheTTLMs = d.ttlMs
			}
			return v
		}
	}
	return policy.Abstain()
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

var load = sync.OnceValues(func() (*denylist, error) {
	c, err := readConfig()
	if err != nil {
		return nil, err
	}
	return newDenylist(c)
})

// readConfig reads the config with policy.ConfigMap rather than
// policy.Config: without encoding/json the plugin is ~1 MB smaller.
func readConfig() (config, error) {
	m, err := policy.LoadConfigMap()
	if err != nil {
		return config{}, err
	}
	var c config
	rules, ok, err1 := m.Strings("rules")
	if ok && err1 == nil {
		c.Rules = &rules
	}
	ttl, _, err2 := m.String("cache_ttl")
	c.CacheTTL = ttl
	return c, errors.Join(err1, err2, m.Unused())
}

func init() {
	policy.DescribeFunc(func() policy.Description {
		d := policy.Description{Name: "denylist", Version: "1"}
		if dl, err := load(); err == nil {
			d.Ops = dl.ops() // empty (no rules) means all ops
		}
		return d
	})
	policy.Validate(func() error {
		_, err := load()
		return err
	})
	policy.Handle(func(r policy.Request) policy.Verdict {
		dl, err := load()
		if err != nil {
			return policy.Deny("denylist: bad config: " + err.Error())
		}
		return dl.decide(r)
	})
}

func main() {}
