// Package examples holds the per-decision benchmarks of the example plugins
// in go/, c/ and assemblyscript/ (the plugins themselves are built by
// test.sh; see each README).
package examples

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// benchExample measures one uncached decision of the example in dir through
// the chain, as a guest's connect or lookup would make it. The plugin must
// have been built (./test.sh or the build command of dir's README).
func benchExample(b *testing.B, dir string, req *network.Request) {
	if _, err := os.Stat(filepath.Join(dir, "example.wasm")); err != nil {
		b.Skipf("%s/example.wasm is not built: run examples/test.sh first", dir)
	}
	ctx := context.Background()
	p, err := plugins.Load(ctx, filepath.Join(dir, "policy.toml"), plugins.Options{CacheDir: "-", CacheEntries: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	if v, err := p.Chain.Decide(ctx, req); err != nil || !v.Allowed() {
		b.Fatalf("not allowed: %+v %v", v, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Chain.Decide(ctx, req)
	}
}

var (
	connect443 = &network.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("192.0.2.10"),
		Port: 443, Names: []string{"api.example.test"}, Guest: "app", TimeMs: 1}
	lookup = &network.Request{Op: policy.OpDNSLookup, Name: "api.example.test", Guest: "app", TimeMs: 1}
)

func BenchmarkConnectGo(b *testing.B)             { benchExample(b, "go", connect443) }
func BenchmarkConnectC(b *testing.B)              { benchExample(b, "c", connect443) }
func BenchmarkConnectAssemblyScript(b *testing.B) { benchExample(b, "assemblyscript", connect443) }
func BenchmarkLookupGo(b *testing.B)              { benchExample(b, "go", lookup) }
func BenchmarkLookupC(b *testing.B)               { benchExample(b, "c", lookup) }
func BenchmarkLookupAssemblyScript(b *testing.B)  { benchExample(b, "assemblyscript", lookup) }
