package host

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/plugins"
)

// BenchmarkSockAcceptPolicy: an inbound server under a manifest. The
// guest is the probe's echo server (as in BenchmarkSockConnectEcho); an
// outside client on loopback connects, echoes 100 B and closes, one
// connection at a time. The guest's network comes from plugins.Load, as
// for `wasmgate run --policy`, in three variants served side by side:
// "allow-all" is `default = "allow"` without plugins (the chain decides
// nothing), "allowlist" the built-in allowlist with
// `bind tcp://127.0.0.1:PORT` and `accept tcp://127.0.0.1` (its accept
// verdicts are cached once per peer address, docs/plugins.md "The verdict
// cache"), "nocache" the same with cache_ttl = "0s" (the plugin runs on
// every accept, as it did while the cache key held the peer's port).
//
// Each iteration makes one connection to each server in turn, so that the
// load of a shared machine falls on all three alike. Per variant it reports
// the connection's wall time (NAME-ns/conn) and the CPU time of the guest's
// thread (NAME-server-cpu-ns/conn), and the ratios allowlist/allow-all.
// Switching guests at every connection runs each on cold CPU caches, which
// about doubles the absolute costs (compare BenchmarkSockConnectEcho), but
// keeps the ratios within ±1% run to run; blocks of 100 connections per
// guest, or separate runs, were tried and vary by ±10% on this machine.
//
//	go test -run XXX -bench BenchmarkSockAcceptPolicy -benchtime 2000x -count 5 ./host/
func BenchmarkSockAcceptPolicy(b *testing.B) {
	const allowlist = `
default = "deny"
[[plugins]]
name = "server"
use = "allowlist"
[plugins.config]
rules = ["bind tcp://127.0.0.1:PORT", "accept tcp://127.0.0.1"]
`
	variants := []struct {
		name     string
		manifest string
		srv      echoServer
		wall     time.Duration
		cpu      time.Duration
	}{
		{name: "allow-all", manifest: `default = "allow"`},
		{name: "allowlist", manifest: allowlist},
		{name: "nocache", manifest: allowlist + `cache_ttl = "0s"` + "\n"},
	}
	for i := range variants {
		variants[i].srv = policyEchoGuest(b, variants[i].manifest)
	}
	msg := make([]byte, 100)
	in := make([]byte, 100)
	echo := func(addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	for i := range variants { // warm up: first connections, cached verdicts
		for range 10 {
			echo(variants[i].srv.addr)
		}
	}
	b.ResetTimer()
	for i := range variants {
		variants[i].cpu = -variants[i].srv.cpu()
	}
	for b.Loop() {
		for i := range variants {
			v := &variants[i]
			start := time.Now()
			echo(v.srv.addr)
			v.wall += time.Since(start)
		}
	}
	n := float64(b.N)
	for i := range variants {
		v := &variants[i]
		v.cpu += v.srv.cpu()
		b.ReportMetric(float64(v.wall.Nanoseconds())/n, v.name+"-ns/conn")
		b.ReportMetric(float64(v.cpu.Nanoseconds())/n, v.name+"-server-cpu-ns/conn")
	}
	b.ReportMetric(float64(variants[1].wall)/float64(variants[0].wall), "allowlist/allow-all-wall")
	b.ReportMetric(float64(variants[1].cpu)/float64(variants[0].cpu), "allowlist/allow-all-cpu")
}

// policyEchoGuest starts the probe's echo server on a free loopback port
// under the manifest text (PORT replaced by that port).
func policyEchoGuest(b *testing.B, manifest string) echoServer {
	b.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	path := filepath.Join(b.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(manifest, "PORT", port)), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	p, err := plugins.Load(ctx, path, plugins.Options{CacheDir: filepath.Join(os.TempDir(), "wasmgate-socktest-plugin-cache")})
	if err != nil {
		b.Fatal(err)
	}
	// Cleanups run last-registered-first: runGuestServer's (stop the
	// guest) before this one.
	b.Cleanup(func() { p.Close(context.Background()) })
	nw := p.NewDefault(nil)
	wasm := probeWasm(b)
	return runGuestServer(b, "[0] listening ", func(ctx context.Context, out *lines) {
		Run(ctx, wasm, NewConfig().WithNetwork(nw).WithArgs("probe", "echoserve", "127.0.0.1:"+port, "-1").
			WithStdout(out).WithStderr(out).WithCompilationCacheDir(sockCacheDir))
	})
}
