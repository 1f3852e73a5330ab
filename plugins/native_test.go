package plugins

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// nativeChain loads one plugin named use on the native engine.
func nativeChain(t *testing.T, use, config string) (*Policy, error) {
	t.Helper()
	wasm, _ := builtin.Lookup("allowlist") // the manifest's lookup found it
	m := &Manifest{Default: policy.ActionDeny, Plugins: []PluginSpec{{
		Name: "n", Use: use, Wasm: wasm, Config: []byte(config), EngineSpec: EngineSpec{Engine: EngineNative},
	}}}
	p, err := LoadManifest(context.Background(), m, Options{CacheEntries: -1})
	if err == nil {
		t.Cleanup(func() { p.Close(context.Background()) })
	}
	return p, err
}

// A panic in a native built-in's decision is a deny naming the plugin,
// not a crash of wasmgate, and the plugin goes on deciding; a describe
// that panics fails the load.
func TestNativePanics(t *testing.T) {
	calls := 0
	natives["boom"] = func([]byte) *policy.Plugin {
		return &policy.Plugin{Decide: func(r policy.Request) policy.Verdict {
			calls++
			if r.Port == 666 {
				panic("boom")
			}
			return policy.Allow("fine")
		}}
	}
	natives["bad-describe"] = func([]byte) *policy.Plugin {
		return &policy.Plugin{
			Describe: func() policy.Description { panic("no description") },
			Decide:   func(policy.Request) policy.Verdict { return policy.Abstain() },
		}
	}
	t.Cleanup(func() { delete(natives, "boom"); delete(natives, "bad-describe") })

	p, err := nativeChain(t, "boom", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	req := func(port uint16) *network.Request {
		return &network.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.1"), Port: port, Guest: "g"}
	}
	if o := p.Chain.DecideOutcome(context.Background(), req(666)); o.Allowed() || !strings.Contains(o.Reason, "panicked: boom") {
		t.Errorf("panicking decision: %+v", o)
	}
	if o := p.Chain.DecideOutcome(context.Background(), req(443)); !o.Allowed() {
		t.Errorf("decision after the panic: %+v", o)
	}
	if calls != 2 {
		t.Errorf("%d calls, want 2", calls)
	}

	if _, err := nativeChain(t, "bad-describe", `{}`); err == nil || !strings.Contains(err.Error(), "describe failed: describe panicked: no description") {
		t.Errorf("describe panic: %v", err)
	}
}

// Only the built-ins run natively, and their config is checked as in the
// sandbox: a bad one fails the load with the plugin's own message.
func TestNativeRefuses(t *testing.T) {
	if _, err := nativeChain(t, "ratelimit", `{"limits":{"*":"1/s"}}`); err == nil || !strings.Contains(err.Error(), `not "ratelimit"`) {
		t.Errorf("ratelimit on the native engine: %v", err)
	}
	if _, err := nativeChain(t, "my-plugin", `{}`); err == nil || !strings.Contains(err.Error(), `engine "native" runs only the stateless built-ins`) {
		t.Errorf("a non-built-in on the native engine: %v", err)
	}
	if _, err := nativeChain(t, "allowlist", `{"rules":["tcp://"],"cache_tl":"1s"}`); err == nil ||
		!strings.Contains(err.Error(), `unknown key "cache_tl"`) {
		t.Errorf("a bad allowlist config: %v", err)
	}
}
