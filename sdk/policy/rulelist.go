package policy

import (
	"errors"
	"strconv"
	"time"
)

// RuleListConfig is the [plugins.config] table of a rule-list plugin, the
// shape allowlist and denylist share:
//
//	rules = ["tcp://api.example.test:443", ...]
//	cache_ttl = "1m"   # optional
type RuleListConfig struct {
	Rules    *[]string // nil: the key is missing
	CacheTTL string    // "" means DefaultRuleCacheTTL
}

// DefaultRuleCacheTTL is how long a rule-list verdict may be cached when
// cache_ttl is not set: long enough to make the host's verdict cache
// effective, and harmless because the verdict depends only on the request,
// which is the cache key.
const DefaultRuleCacheTTL = time.Minute

// LoadRuleListConfig reads the plugin's config as a RuleListConfig. It uses
// ConfigMap, not Config: without encoding/json a plugin is ~1 MB smaller.
// Unknown keys are an error.
func LoadRuleListConfig() (RuleListConfig, error) {
	return ruleListConfig(LoadConfigMap())
}

// ParseRuleListConfig is LoadRuleListConfig on the given config JSON.
func ParseRuleListConfig(data []byte) (RuleListConfig, error) {
	return ruleListConfig(ParseConfigMap(data))
}

func ruleListConfig(m *ConfigMap, err error) (RuleListConfig, error) {
	if err != nil {
		return RuleListConfig{}, err
	}
	var c RuleListConfig
	rules, ok, err1 := m.Strings("rules")
	if ok && err1 == nil {
		c.Rules = &rules
	}
	ttl, _, err2 := m.String("cache_ttl")
	c.CacheTTL = ttl
	return c, errors.Join(err1, err2, m.Unused())
}

// Compile parses the rules and the cache TTL (in ms). plugin names the
// plugin in the error for a missing rules key.
func (c RuleListConfig) Compile(plugin string) (RuleSet, int64, error) {
	if c.Rules == nil {
		return nil, 0, errors.New(plugin + `: no rules: set rules = ["tcp://HOST:PORT", ...] in [plugins.config]`)
	}
	rules, err := ParseRules(*c.Rules)
	if err != nil {
		return nil, 0, err
	}
	if c.CacheTTL == "" {
		return rules, DefaultRuleCacheTTL.Milliseconds(), nil
	}
	d, err := time.ParseDuration(c.CacheTTL)
	if err != nil || d < 0 {
		return nil, 0, errors.New("cache_ttl " + strconv.Quote(c.CacheTTL) + ": want a duration such as \"1m\" or \"0s\"")
	}
	return rules, d.Milliseconds(), nil
}
