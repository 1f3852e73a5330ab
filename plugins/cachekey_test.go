package plugins

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// A cached verdict must never be reused for a request that differs in
// anything a plugin may decide on.
func TestCacheKeyDistinguishes(t *testing.T) {
	base := network.Request{
		Op: policy.OpTCPAccept, Proto: "tcp", Addr: netip.MustParseAddr("203.0.113.9"), Port: 5555,
		Local: netip.MustParseAddrPort("127.0.0.1:8080"), Guest: "app", Names: []string{"a.test"},
	}
	variants := map[string]func(r *network.Request){
		"addr":     func(r *network.Request) { r.Addr = netip.MustParseAddr("203.0.113.10") },
		"port":     func(r *network.Request) { r.Port = 5556 },
		"local":    func(r *network.Request) { r.Local = netip.MustParseAddrPort("127.0.0.1:9090") },
		"guest":    func(r *network.Request) { r.Guest = "other" },
		"names":    func(r *network.Request) { r.Names = []string{"b.test"} },
		"proto":    func(r *network.Request) { r.Proto = "udp" },
		"name":     func(r *network.Request) { r.Name = "x.test" },
		"v4vs6":    func(r *network.Request) { r.Addr = netip.MustParseAddr("::ffff:203.0.113.9") },
		"namesSep": func(r *network.Request) { r.Names = []string{"a.test", ""} },
	}
	bit := opBit(base.Op)
	k0 := makeKey(&base, bit)
	for name, mutate := range variants {
		r := base
		mutate(&r)
		if makeKey(&r, bit) == k0 {
			t.Errorf("%s: request differs but the cache key is the same", name)
		}
	}
	if other := makeKey(&base, opBit(policy.OpUDPRecv)); other == k0 {
		t.Error("op: different ops share a cache key")
	}
}

// accept is a tcp.accept of a connection from peer on the listener
// 127.0.0.1:8080 at ms.
func accept(peer string, ms int64) *network.Request {
	ap := netip.MustParseAddrPort(peer)
	return &network.Request{Op: policy.OpTCPAccept, Proto: "tcp", Addr: ap.Addr(), Port: ap.Port(),
		Local: netip.MustParseAddrPort("127.0.0.1:8080"), Guest: "app", TimeMs: ms}
}

// countPlugin has a generous timeout: a call that times out on a busy
// machine would restart the instance and its count.
const countPlugin = `
[[plugins]]
name = "%s"
path = "MULTI"
timeout = "10s"
[plugins.config]
behave = "count"
ttl = "1000"
describe = '%s'
`

// A plugin that declares it ignores the port on tcp.accept and udp.recv is
// run once per TTL for 1000 connections from one peer address, each from a
// new ephemeral port: 3 runs while the clock crosses two TTLs.
func TestCachePortFreeAccepts(t *testing.T) {
	p := loadTOML(t, fmt.Sprintf(countPlugin, "free",
		`{"ops":["tcp.accept","udp.recv"],"stateful":true,"ignores_port":["tcp.accept","udp.recv"]}`), Options{})
	ctx := context.Background()
	const t0 = 1795780800000
	runs := 0
	var last Outcome
	for i := range 1000 {
		last = p.Chain.DecideOutcome(ctx, accept(fmt.Sprintf("127.0.0.1:%d", 20000+i), t0+3*int64(i)))
		if !last.Allowed() {
			t.Fatalf("accept %d: %+v", i, last)
		}
		if !last.Cached {
			runs++
		}
	}
	// Runs at t0, at the first accept ≥ t0+1000 (i=334, t0+1002) and at
	// the first ≥ t0+2002 (i=668, t0+2004).
	if runs != 3 || last.Reason != "call #3 port 20668" {
		t.Errorf("1000 accepts over 3 TTLs: plugin ran %d times (want 3), last verdict %q", runs, last.Reason)
	}
	// The peer's address is still in the key.
	if o := p.Chain.DecideOutcome(ctx, accept("127.0.0.2:20000", t0+2997)); o.Cached || o.Reason != "call #4 port 20000" {
		t.Errorf("other peer address: %+v", o)
	}
	// udp.recv from many source ports: one run.
	runs = 0
	for i := range 1000 {
		r := accept(fmt.Sprintf("[::1]:%d", 1024+i), t0+3000)
		r.Op, r.Proto, r.Local = policy.OpUDPRecv, "udp", netip.AddrPort{}
		if o := p.Chain.DecideOutcome(ctx, r); !o.Cached {
			runs++
		}
	}
	if runs != 1 {
		t.Errorf("1000 udp.recv from one address: plugin ran %d times, want 1", runs)
	}
}

// Safe by default: a plugin that declares nothing is keyed on the port, so
// it sees every port, and is still served from the cache for a repeated one.
func TestCachePortByDefault(t *testing.T) {
	for name, desc := range map[string]string{
		"nothing":     `{"ops":["tcp.accept"],"stateful":true}`,
		"other op":    `{"ops":["tcp.accept"],"stateful":true,"ignores_port":["udp.recv","tcp.connect"]}`,
		"empty list":  `{"ops":["tcp.accept"],"stateful":true,"ignores_port":[]}`,
		"no describe": `{"stateful":true}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := loadTOML(t, fmt.Sprintf(countPlugin, "reader", desc), Options{})
			ctx := context.Background()
			const t0 = 1795780800000
			for i := range 1000 {
				port := 20000 + i
				o := p.Chain.DecideOutcome(ctx, accept(fmt.Sprintf("127.0.0.1:%d", port), t0))
				if want := fmt.Sprintf("call #%d port %d", i+1, port); o.Cached || o.Reason != want {
					t.Fatalf("accept %d: %+v, want the plugin to run: %q", i, o, want)
				}
			}
			if o := p.Chain.DecideOutcome(ctx, accept("127.0.0.1:20500", t0+999)); !o.Cached || o.Reason != "call #501 port 20500" {
				t.Errorf("repeated port not served from the cache: %+v", o)
			}
		})
	}
}

// In one chain, a plugin that reads the port still sees every port while
// the one that declared it does not is run once: the keys are per plugin.
func TestCachePortMixedChain(t *testing.T) {
	p := loadTOML(t, fmt.Sprintf(countPlugin, "reader", `{"ops":["tcp.accept"],"stateful":true}`)+
		fmt.Sprintf(countPlugin, "free", `{"ops":["tcp.accept"],"stateful":true,"ignores_port":["tcp.accept"]}`), Options{})
	ctx := context.Background()
	const t0 = 1795780800000
	for i := range 1000 {
		port := 20000 + i
		o := p.Chain.DecideOutcome(ctx, accept(fmt.Sprintf("127.0.0.1:%d", port), t0))
		if want := fmt.Sprintf("call #%d port %d", i+1, port); o.Cached || o.Plugin != "reader" || o.Reason != want {
			t.Fatalf("accept %d: %+v, want %q from reader", i, o, want)
		}
	}
	entries := map[int]int{}
	for k := range p.Chain.cache.m {
		entries[k.plugin]++
	}
	if entries[0] != 1000 || entries[1] != 1 {
		t.Errorf("cache entries per plugin: %v, want reader 1000, free 1", entries)
	}
	var k cacheKey
	for k = range p.Chain.cache.m {
		if k.plugin == 1 {
			break
		}
	}
	if v, _ := p.Chain.cache.get(&k, t0); v.Reason != "call #1 port 20000" {
		t.Errorf("free's cached verdict: %+v", v)
	}
}

// The built-ins declare what they read: an allowlist whose accept rule has
// no ports is run once for 1000 connections from one peer (the issue's
// server manifest, behind special-ranges and a denylist); one whose accept
// rule names ports sees every port, and its verdicts still follow them.
func TestCacheBuiltinAccepts(t *testing.T) {
	const chain = `
[[plugins]]
name = "special"
use = "special-ranges"
timeout = "10s"
[[plugins]]
name = "deny"
use = "denylist"
timeout = "10s"
[plugins.config]
rules = ["accept tcp://192.0.2.0/24"]
[[plugins]]
name = "server"
use = "allowlist"
timeout = "10s"
[plugins.config]
rules = ["bind tcp://127.0.0.1:8080", "ACCEPT"]
`
	const t0 = 1795780800000
	ctx := context.Background()
	run := func(t *testing.T, rule string, wantRuns int, allowed func(port int) bool) {
		p := loadTOML(t, strings.ReplaceAll(chain, "ACCEPT", rule), Options{Builtins: builtin.Lookup})
		runs := 0
		for i := range 1000 {
			port := 20000 + i
			r := accept(fmt.Sprintf("127.0.0.1:%d", port), t0+int64(i))
			if strings.HasPrefix(rule, "accept udp") {
				r.Op, r.Proto, r.Local = policy.OpUDPRecv, "udp", netip.AddrPort{}
			}
			o := p.Chain.DecideOutcome(ctx, r)
			if o.Allowed() != allowed(port) {
				t.Fatalf("port %d: %+v", port, o)
			}
			if !o.Cached {
				runs++
			}
		}
		if runs != wantRuns {
			t.Errorf("1000 accepts from 127.0.0.1: plugins ran for %d, want %d", runs, wantRuns)
		}
	}
	t.Run("no ports", func(t *testing.T) {
		run(t, "accept tcp://127.0.0.1", 1, func(int) bool { return true })
	})
	t.Run("ports", func(t *testing.T) {
		run(t, "accept tcp://127.0.0.1:20000-20499", 1000, func(port int) bool { return port < 20500 })
	})
	t.Run("udp recv", func(t *testing.T) {
		run(t, "accept udp://127.0.0.0/8", 1, func(int) bool { return true })
	})
}
