package plugins

import (
	"net/netip"
	"testing"

	"github.com/wasmgate/wasmgate/network"
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
