// Command example is the worked example of docs/plugins.md: a policy plugin
// that allows HTTPS to the hosts in its config, denies plain HTTP to them,
// and abstains on everything else.
package main

import (
	"errors"
	"sync"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// config is the [plugins.config] table of the manifest, e.g.
//
//	[plugins.config]
//	hosts = ["*.example.test"]
type config struct {
	Hosts []string `json:"hosts"`
}

// patterns parses the config once per plugin instance.
var patterns = sync.OnceValues(func() ([]policy.HostPattern, error) {
	var c config
	if err := policy.Config(&c); err != nil {
		return nil, err
	}
	if len(c.Hosts) == 0 {
		return nil, errors.New("example: set hosts = [...] in [plugins.config]")
	}
	var out []policy.HostPattern
	var errs []error
	for _, h := range c.Hosts {
		p, err := policy.ParseHostPattern(h)
		if err != nil {
			errs = append(errs, errors.New("hosts: "+h+": "+err.Error()))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
})

func decide(r policy.Request) policy.Verdict {
	pats, err := patterns()
	if err != nil {
		return policy.Deny(err.Error()) // fail closed
	}
	for _, p := range pats {
		for _, name := range r.Names {
			if !p.MatchName(name) {
				continue
			}
			switch r.Port {
			case 443:
				return policy.Allow("example: https to " + name)
			case 80:
				policy.Log(policy.LogWarn, "example: plain http to "+name+" refused")
				return policy.Deny("example: use https for " + name)
			}
		}
	}
	return policy.Abstain()
}

func init() {
	policy.Describe(policy.Description{Name: "example", Version: "1.0.0", Ops: []policy.Op{policy.OpTCPConnect}})
	policy.Validate(func() error {
		_, err := patterns()
		return err
	})
	policy.Handle(decide)
}

func main() {}
