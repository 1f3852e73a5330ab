package plugins

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/kernel"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// refRequests are the requests every plugin gets in TestSameVerdictsAsGoSDK.
var refRequests = []*network.Request{
	{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("93.184.216.34"), Port: 443, Names: []string{"api.example.test"}, Guest: "app"},
	{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("10.0.0.1"), Port: 443, Names: []string{"api.example.test"}, Guest: "app"},
	{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("93.184.216.34"), Port: 25, Guest: "app"},
	{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("93.184.216.34"), Port: 80, Names: []string{"www.example.test"}, Guest: "app"},
	{Op: policy.OpDNSLookup, Name: "api.example.test", Guest: "app"},
	{Op: policy.OpDNSAnswer, Name: "api.example.test", Addr: netip.MustParseAddr("10.0.0.1"), Guest: "app"},
	{Op: policy.OpUDPSend, Proto: "udp", Addr: netip.MustParseAddr("8.8.8.8"), Port: 53, Guest: "app"},
	{Op: policy.OpTCPBind, Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080, Guest: "app"},
	{Op: policy.OpTCPAccept, Proto: "tcp", Addr: netip.MustParseAddr("203.0.113.9"), Port: 5555, Local: netip.MustParseAddrPort("127.0.0.1:8080"), Guest: "app"},
	{Op: policy.OpUDPRecv, Proto: "udp", Addr: netip.MustParseAddr("198.51.100.53"), Port: 53, Guest: "app"},
	{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("93.184.216.34"), Port: 443, Names: []string{"api.example.test"}, Guest: "app"},
	{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("93.184.216.34"), Port: 443, Names: []string{"api.example.test"}, Guest: "app"},
	// IPv6 forms of 127.0.0.3 (NAT64, Teredo client): denylist's IPv4 rule
	// denies them on every path; allowlist's does not allow them.
	{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("64:ff9b::7f00:3"), Port: 443, Guest: "app"},
	{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("2001:0:4136:e378:8000:63bf:80ff:fffc"), Port: 443, Guest: "app"},
	{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.3"), Port: 443, Guest: "app"},
}

type refPlugin struct {
	name, config string
	wasm         []byte
	requests     int // how many of refRequests (misbehaving ones get 1)
}

// refResult is a verdict reduced to what both hosts must agree on.
type refResult struct {
	verdict string // allow, deny, abstain, or fail (any failure: a deny)
	reason  string // for allow and deny; for fail, how it failed (failKind)
}

// Ways a plugin call fails, as both hosts must classify them.
const (
	failTrap      = "trap"      // the module trapped
	failTimeout   = "timeout"   // the call ran past its deadline
	failMalformed = "malformed" // rc 0 but the output is not a verdict
)

// failRC is the kind of a call that returned rc without an error.
func failRC(rc uint32) string { return fmt.Sprintf("rc %d", rc) }

// TestSameVerdictsAsGoSDK runs every built-in and test plugin through
// go-sdk's own Plugin.Call and through our chain on both engines (the
// kernel and the go-sdk engine) with the same requests, and requires the
// same verdicts.
func TestSameVerdictsAsGoSDK(t *testing.T) {
	const tdp = "testdata/plugins/"
	// Each misbehaving plugin and how it must fail on both hosts: the
	// alloc plugin's Go runtime panics when memory.grow is refused, and the
	// huge one's kernel alloc of 64 MiB is refused, so it returns 1.
	badKind := map[string]string{"trap": failTrap, "loop": failTimeout, "alloc": failTrap,
		"garbage": failMalformed, "huge": failRC(1), "emptyobj": failMalformed, "rcnoerror": failRC(7)}
	bad := []string{"trap", "loop", "alloc", "garbage", "huge", "emptyobj", "rcnoerror"}
	good := []string{"jsononly", "example"}
	var pkgs []string
	for _, n := range append(good, bad...) {
		pkgs = append(pkgs, tdp+n)
	}
	pkgs = append(pkgs, multiPkg)
	testbuild.Plugins(t, pkgs...) // in parallel
	read := func(i int) []byte { return testbuild.Bytes(t, pkgs[i]) }
	var list []refPlugin
	for _, b := range []struct{ name, config string }{
		{"allowlist", `{"rules":["tcp://api.example.test:443","dns://*.example.test","udp://8.8.8.8:53","bind tcp://127.0.0.1:8080","accept tcp://203.0.113.0/24","tcp://127.0.0.0/8"]}`},
		{"denylist", `{"rules":["tcp://*:25","accept udp://198.51.100.0/24","tcp://127.0.0.0/8"]}`},
		{"special-ranges", `{"except":["198.51.100.0/24"]}`},
		{"ratelimit", `{"limits":{"tcp.connect":"2/1m"}}`},
	} {
		w, ok := builtin.Lookup(b.name)
		if !ok {
			t.Fatalf("no built-in %s", b.name)
		}
		list = append(list, refPlugin{b.name, b.config, w, len(refRequests)})
	}
	list = append(list,
		refPlugin{"jsononly", `{}`, read(0), len(refRequests)},
		refPlugin{"example", `{"hosts":["*.example.test"]}`, read(1), len(refRequests)},
		refPlugin{"multi", `{}`, read(len(pkgs) - 1), len(refRequests)},
	)
	for i, n := range bad {
		list = append(list, refPlugin{n, `{}`, read(len(good) + i), 1})
	}
	precompile(t, list)
	for _, rp := range list {
		t.Run(rp.name, func(t *testing.T) {
			ours := ourVerdicts(t, rp, EngineWasmgate)
			viaSDK := ourVerdicts(t, rp, EngineExtism)
			theirs := goSDKVerdicts(t, rp)
			for i := range ours {
				if ours[i] != theirs[i] {
					t.Errorf("request %d (%s): ours %+v, go-sdk %+v", i, refRequests[i].Op, ours[i], theirs[i])
				}
				if viaSDK[i] != theirs[i] {
					t.Errorf("request %d (%s): ours on the extism engine %+v, go-sdk %+v", i, refRequests[i].Op, viaSDK[i], theirs[i])
				}
			}
			if _, ok := natives[rp.name]; ok {
				// A built-in's own Go code, compiled into wasmgate.
				native := ourVerdicts(t, rp, EngineNative)
				for i := range native {
					if native[i] != theirs[i] {
						t.Errorf("request %d (%s): ours on the native engine %+v, go-sdk %+v", i, refRequests[i].Op, native[i], theirs[i])
					}
				}
			}
			if want, ok := badKind[rp.name]; ok {
				if w := (refResult{"fail", want}); ours[0] != w || theirs[0] != w || viaSDK[0] != w {
					t.Errorf("misbehaving plugin: ours %+v, extism engine %+v, go-sdk %+v, want %+v", ours[0], viaSDK[0], theirs[0], w)
				}
			}
			// The embedded-IPv4 requests (the last three) on the wasm
			// path: deny rules cover them, allow rules only the IPv4.
			if n := len(refRequests); rp.name == "denylist" && (ours[n-3].verdict != "deny" || ours[n-2].verdict != "deny" || ours[n-1].verdict != "deny") {
				t.Errorf("denylist tcp://127.0.0.0/8 on the forms of 127.0.0.3: %+v", ours[n-3:])
			}
			if n := len(refRequests); rp.name == "allowlist" && (ours[n-3].verdict != "abstain" || ours[n-2].verdict != "abstain" || ours[n-1].verdict != "allow") {
				t.Errorf("allowlist tcp://127.0.0.0/8 on the forms of 127.0.0.3: %+v", ours[n-3:])
			}
		})
	}
}

const refTimeout = 2 * time.Second

// ourFailKind classifies the reason our chain gives for a failed call.
func ourFailKind(why string) string {
	var rc uint32
	switch {
	case strings.HasPrefix(why, "trap: "):
		return failTrap
	case strings.HasPrefix(why, "timeout after "):
		return failTimeout
	case strings.HasPrefix(why, "malformed verdict: "):
		return failMalformed
	}
	if _, err := fmt.Sscanf(why, "returned %d without an error", &rc); err == nil {
		return failRC(rc)
	}
	return "unclassified: " + why
}

// theirFailKind classifies a failed go-sdk call the same way.
func theirFailKind(rc uint32, err, parseErr error) string {
	switch {
	case err != nil && strings.Contains(err.Error(), "deadline exceeded"):
		return failTimeout
	case err != nil && strings.HasPrefix(err.Error(), "wasm error: "):
		return failTrap
	case err != nil:
		return "unclassified: " + err.Error()
	case rc != 0:
		return failRC(rc)
	case parseErr != nil:
		return failMalformed
	}
	return "not failed"
}

func ourVerdicts(t *testing.T, rp refPlugin, engine string) []refResult {
	m := &Manifest{Default: policy.ActionDeny, Plugins: []PluginSpec{{
		Name: rp.name, Timeout: refTimeout, Init: refTimeout, Memory: 16 << 20, Config: []byte(rp.config), Wasm: rp.wasm,
		EngineSpec: EngineSpec{Engine: engine},
	}}}
	if _, ok := builtin.Lookup(rp.name); ok {
		m.Plugins[0].Use = rp.name // selects the plugin in the bundle
	}
	p, err := LoadManifest(context.Background(), m, Options{CompilationCache: testbuild.Cache(), CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if e := p.Chain.Engines()[0].Engine; e != engine {
		t.Fatalf("engine %s, want %s", e, engine)
	}
	var out []refResult
	for i := range rp.requests {
		r := *refRequests[i]
		r.TimeMs = 1795780800000 + int64(i)
		o := p.Chain.DecideOutcome(context.Background(), &r)
		switch {
		case o.Plugin == "":
			out = append(out, refResult{verdict: "abstain"})
		case strings.HasPrefix(o.Reason, `plugin "`+rp.name+`" failed: `):
			out = append(out, refResult{"fail", ourFailKind(strings.TrimPrefix(o.Reason, `plugin "`+rp.name+`" failed: `))})
		default:
			out = append(out, refResult{string(o.Verdict.Verdict), o.Reason})
		}
	}
	return out
}

// extismConfig is what go-sdk gets: built-ins need the key that picks the
// plugin in the bundle, as wasmgate sets it for use = "NAME".
func extismConfig(rp refPlugin) map[string]string {
	if _, ok := builtin.Lookup(rp.name); ok {
		return builtin.Config(rp.name, rp.config)
	}
	return map[string]string{"config": rp.config}
}

func goSDKVerdicts(t *testing.T, rp refPlugin) []refResult {
	ctx := context.Background()
	manifest := extism.Manifest{
		Wasm:    []extism.Wasm{extism.WasmData{Data: rp.wasm}},
		Config:  extismConfig(rp),
		Memory:  &extism.ManifestMemory{MaxPages: 256},
		Timeout: uint64(refTimeout.Milliseconds()),
	}
	plugin, err := extism.NewPlugin(ctx, manifest, extism.PluginConfig{
		EnableWasi:    true,
		RuntimeConfig: refRuntimeConfig(),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plugin.Close(ctx)
	ops := uint16(allOps)
	if plugin.FunctionExists("describe") {
		rc, out, err := plugin.Call("describe", nil)
		if err != nil || rc != 0 {
			t.Fatalf("go-sdk describe: rc %d, %v", rc, err)
		}
		var d description
		if len(out) == 0 {
			out = []byte("{}") // as our loader: no output, no description
		}
		if err := strictJSON(out, &d); err != nil {
			t.Fatalf("go-sdk describe: %v", err)
		}
		if len(d.Ops) > 0 {
			ops = 0
			for _, o := range d.Ops {
				ops |= opBit(policy.Op(o))
			}
		}
	}
	var res []refResult
	for i := range rp.requests {
		r := *refRequests[i]
		r.TimeMs = 1795780800000 + int64(i)
		if ops&opBit(r.Op) == 0 {
			res = append(res, refResult{verdict: "abstain"})
			continue
		}
		if plugin == nil {
			res = append(res, refResult{verdict: "fail"})
			continue
		}
		rc, out, err := plugin.Call("decide", policy.AppendRequestJSON(nil, &r))
		var v policy.Verdict
		var parseErr error
		if err == nil && rc == 0 {
			v, parseErr = policy.ParseVerdictJSON(out)
		}
		switch {
		case err != nil || rc != 0 || parseErr != nil:
			res = append(res, refResult{"fail", theirFailKind(rc, err, parseErr)})
			// Like our pool: a failed instance is replaced.
			plugin.Close(ctx)
			plugin, err = extism.NewPlugin(ctx, manifest, extism.PluginConfig{EnableWasi: true,
				RuntimeConfig: refRuntimeConfig()}, nil)
			if err != nil {
				plugin = nil
			}
		case v.Verdict == policy.ActionAbstain:
			res = append(res, refResult{verdict: "abstain"})
		default:
			res = append(res, refResult{string(v.Verdict), v.Reason})
		}
	}
	if plugin != nil {
		plugin.Close(ctx)
	}
	return res
}

func refRuntimeConfig() wazero.RuntimeConfig {
	return wazero.NewRuntimeConfig().WithCompilationCache(testbuild.Cache())
}

// precompile fills the shared compilation cache with every module, two at
// a time: under -race a cold compile of a Go plugin takes many seconds.
func precompile(t *testing.T, list []refPlugin) {
	e := kernel.NewEngineWithCache(testbuild.Cache())
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, rp := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			m, err := e.Compile(context.Background(), kernel.Config{Name: rp.name, Wasm: rp.wasm})
			if err != nil {
				t.Errorf("compile %s: %v", rp.name, err)
				return
			}
			m.Close(context.Background())
		}()
	}
	wg.Wait()
}
