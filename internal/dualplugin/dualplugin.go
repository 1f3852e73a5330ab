// Package dualplugin is a test plugin written once for both forms a Go
// plugin can take (docs/embedding.md#native-plugins): New is the
// constructor a program hands to plugins.Options.Natives, and package wasm
// next to it hands the same constructor to policy.Serve to build the
// sandboxed plugin. Tests hold the two to the same verdicts.
package dualplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// config is [plugins.config]: connects to Port are allowed, lookups of
// the names in Deny denied, the rest abstained on.
type config struct {
	Port int      `json:"port"`
	Deny []string `json:"deny"`
}

// New is the plugin made from its config (JSON). A bad config fails
// validate and denies every request.
func New(raw []byte) *policy.Plugin {
	var c config
	err := decode(raw, &c)
	if err == nil && (c.Port < 1 || c.Port > 65535) {
		err = fmt.Errorf(`"port" must be 1-65535, not %d`, c.Port)
	}
	reason := "dual: port " + strconv.Itoa(c.Port)
	return &policy.Plugin{
		Describe: func() policy.Description {
			return policy.Description{Name: "dual", Version: "1",
				Ops: []policy.Op{policy.OpTCPConnect, policy.OpDNSLookup}}
		},
		Validate: func() error { return err },
		Decide: func(r policy.Request) policy.Verdict {
			switch {
			case err != nil:
				return policy.Deny("dual: bad config")
			case r.Op == policy.OpDNSLookup && r.Name == "panic.test":
				panic("asked to")
			case r.Op == policy.OpDNSLookup && slices.Contains(c.Deny, r.Name):
				return policy.Deny("dual: " + r.Name + " is denied")
			case r.Op == policy.OpTCPConnect && int(r.Port) == c.Port:
				return policy.Allow(reason)
			}
			return policy.Abstain()
		},
	}
}

func decode(raw []byte, c *config) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return errors.New(`no config; want {"port": N}`)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(c)
}
