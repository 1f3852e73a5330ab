// Command bundle is the module wasmgate embeds for all built-in policy
// plugins: allowlist, denylist, special-ranges and ratelimit in one Go
// program. Each chain entry that says use = "NAME" gets instances of this
// module with the Extism config key "wasmgate.builtin" set to NAME, which
// selects the plugin; its own config comes under "config" as for any
// plugin.
//
// Why one module: a Go plugin is mostly Go runtime, so four modules were
// four copies of it (11 MB in the wasmgate binary, now 3 MB), and a chain
// that alternates between different programs' machine code runs slower
// than one that runs the same code in each instance (BENCHMARKS.md,
// "Built-ins in one module"). Instances still have their own memory and
// state, so chain entries stay isolated from each other.
//
// Build: see ../build.sh (go generate ./plugins/builtin).
package main

import (
	"errors"
	"strconv"
	"sync"

	"github.com/wasmgate/wasmgate/plugins/allowlist"
	"github.com/wasmgate/wasmgate/plugins/denylist"
	"github.com/wasmgate/wasmgate/plugins/ratelimit"
	specialranges "github.com/wasmgate/wasmgate/plugins/special-ranges"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// SelectKey is the Extism config key naming the built-in to run.
const SelectKey = "wasmgate.builtin"

type builtin struct {
	describe func() policy.Description
	validate func() error
	decide   func(policy.Request) policy.Verdict
}

var builtins = map[string]builtin{
	"allowlist":      {allowlist.Describe, allowlist.Validate, allowlist.Decide},
	"denylist":       {denylist.Describe, denylist.Validate, denylist.Decide},
	"ratelimit":      {ratelimit.Describe, ratelimit.Validate, ratelimit.Decide},
	"special-ranges": {specialranges.Describe, specialranges.Validate, specialranges.Decide},
}

// choose returns the built-in named by the host's config.
func choose() (builtin, error) {
	name, ok := policy.ConfigValue(SelectKey)
	if !ok {
		return builtin{}, errors.New("wasmgate built-ins: the Extism config key " + strconv.Quote(SelectKey) +
			" must name the plugin to run (allowlist, denylist, ratelimit or special-ranges)")
	}
	b, ok := builtins[name]
	if !ok {
		return builtin{}, errors.New("wasmgate built-ins: no built-in plugin " + strconv.Quote(name) +
			" (want allowlist, denylist, ratelimit or special-ranges)")
	}
	return b, nil
}

// selected is choose, once per instance (the host fixes its config when it
// creates the instance).
var selected = sync.OnceValues(choose)

func init() {
	if b, err := choose(); err == nil {
		// wasmgate and go-sdk let a plugin read its config while it
		// initialises: register the chosen plugin itself, so that a
		// decision costs no dispatch (and no copy of the request, which
		// inside wasm is a call out to the host's memmove).
		policy.DescribeFunc(b.describe)
		policy.Validate(b.validate)
		policy.Handle(b.decide)
		return
	}
	// Otherwise choose on first use, and fail closed if nothing is named.
	policy.DescribeFunc(func() policy.Description {
		b, err := selected()
		if err != nil {
			return policy.Description{Name: "wasmgate-builtins"}
		}
		return b.describe()
	})
	policy.Validate(func() error {
		b, err := selected()
		if err != nil {
			return err
		}
		return b.validate()
	})
	policy.Handle(func(r policy.Request) policy.Verdict {
		b, err := selected()
		if err != nil {
			return policy.Deny(err.Error())
		}
		return b.decide(r)
	})
}

func main() {}
