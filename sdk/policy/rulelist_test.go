package policy

import (
	"strings"
	"testing"
)

func TestRuleListConfig(t *testing.T) {
	defer SetConfig(nil)
	SetConfig([]byte(`{"rules":["tcp://a.test:443","dns://*"],"cache_ttl":"30s"}`))
	c, err := LoadRuleListConfig()
	if err != nil || c.Rules == nil || len(*c.Rules) != 2 || c.CacheTTL != "30s" {
		t.Fatalf("LoadRuleListConfig = %+v, %v", c, err)
	}
	rules, ttl, err := c.Compile("x")
	if err != nil || len(rules) != 2 || ttl != 30000 {
		t.Fatalf("Compile = %d rules, ttl %d, %v", len(rules), ttl, err)
	}

	SetConfig([]byte(`{"rules":["tcp://a.test"],"cache_tl":"1s"}`))
	if _, err := LoadRuleListConfig(); err == nil || !strings.Contains(err.Error(), "cache_tl") {
		t.Errorf("typo'd key: err = %v, want it named", err)
	}

	for _, tc := range []struct {
		c    RuleListConfig
		want string // error substring, "" = ok
		ttl  int64
	}{
		{RuleListConfig{}, `x: no rules`, 0},
		{RuleListConfig{Rules: &[]string{"tcp://a.test"}}, "", DefaultRuleCacheTTL.Milliseconds()},
		{RuleListConfig{Rules: &[]string{"tcp://a.test"}, CacheTTL: "0s"}, "", 0},
		{RuleListConfig{Rules: &[]string{"tcp://a.test"}, CacheTTL: "-1s"}, `cache_ttl "-1s"`, 0},
		{RuleListConfig{Rules: &[]string{"tcp://a.test"}, CacheTTL: "soon"}, `cache_ttl "soon"`, 0},
		{RuleListConfig{Rules: &[]string{"tcp//a.test"}}, `tcp//a.test`, 0},
	} {
		_, ttl, err := tc.c.Compile("x")
		switch {
		case tc.want == "" && (err != nil || ttl != tc.ttl):
			t.Errorf("%+v: ttl %d, %v; want ttl %d", tc.c, ttl, err, tc.ttl)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: err %v, want %q", tc.c, err, tc.want)
		}
	}
}
