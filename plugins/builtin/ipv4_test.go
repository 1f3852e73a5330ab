package builtin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/ruletable/ruletabletest"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestIPv4ShortcutOnBothEngines: the allowlist's and denylist's shortcut in
// wasm (internal/policyhook: requests to an IPv4 address without names,
// labels or a local address skip the SDK's decoding) gives the outcomes,
// reasons included, of the same Go code on the native engine, which never
// takes it. The requests mix the shape it takes with shapes it leaves to
// the SDK (names, labels, IPv6, a local address, dns ops), in one instance,
// so that the two paths alternate. The host's verdict cache is off.
func TestIPv4ShortcutOnBothEngines(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles wasm")
	}
	rules, _ := json.Marshal(ruletabletest.Rules)
	r := rand.New(rand.NewPCG(5, 6))
	addrs := []string{"127.0.0.1", "127.0.0.2", "10.1.2.3", "10.2.0.1", "192.168.0.9", "192.168.1.9", "0.0.0.0", "8.8.8.8", "2001:db8::1", "::ffff:10.1.2.3"}
	ports := []uint16{0, 22, 25, 53, 80, 123, 443, 1023, 1024, 8000, 8080, 8999, 9000, 65535}
	var reqs []*network.Request
	for i := range 3000 {
		op := policy.Ops[r.IntN(len(policy.Ops))]
		_, proto, _ := policy.OpDirection(op)
		req := &network.Request{Op: op, Proto: proto, Addr: netip.MustParseAddr(addrs[r.IntN(len(addrs))]),
			Port: ports[r.IntN(len(ports))], Guest: "app", TimeMs: 1795780800000 + int64(i)}
		switch r.IntN(8) {
		case 0:
			req.Names = []string{"api.example.test"}
		case 1:
			req.Labels = map[string]string{"team": "a"}
		case 2:
			req.Local = netip.MustParseAddrPort("127.0.0.1:8080")
		case 3:
			req.Guest = ""
		}
		if proto == "" {
			req.Name, req.Addr, req.Port = "x.example.test", netip.Addr{}, 0
		}
		reqs = append(reqs, req)
	}
	matched := map[string]int{}
	outcomes := func(t *testing.T, use, engine string) []string {
		wasm, _ := builtin.Lookup(use)
		spec := plugins.PluginSpec{Name: use, Use: use, Wasm: wasm, Timeout: 20 * time.Second, Init: 20 * time.Second,
			Memory: 16 << 20, Config: []byte(`{"rules":` + string(rules) + `}`), EngineSpec: plugins.EngineSpec{Engine: engine}}
		p, err := plugins.LoadManifest(context.Background(), &plugins.Manifest{Default: policy.ActionDeny, Plugins: []plugins.PluginSpec{spec}},
			plugins.Options{CompilationCache: testbuild.Cache(), CacheEntries: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		var out []string
		for _, req := range reqs {
			cp := *req
			o := p.Chain.DecideOutcome(context.Background(), &cp)
			out = append(out, fmt.Sprintf("%s %q %q", o.Audit, o.Plugin, o.Reason))
			if o.Plugin == use {
				matched[use+engine]++
			}
		}
		return out
	}
	for _, use := range []string{"allowlist", "denylist"} {
		t.Run(use, func(t *testing.T) {
			kernel := outcomes(t, use, plugins.EngineWasmgate)
			native := outcomes(t, use, plugins.EngineNative)
			for i := range kernel {
				if kernel[i] != native[i] {
					t.Fatalf("request %d (%+v): kernel %s, native %s", i, *reqs[i], kernel[i], native[i])
				}
			}
			// The plugin decides (a rule matched) often enough to matter.
			if n := matched[use+plugins.EngineWasmgate]; n < 300 {
				t.Errorf("%s decided only %d of %d requests", use, n, len(reqs))
			}
		})
	}
}
