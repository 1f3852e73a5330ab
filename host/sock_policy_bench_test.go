package host

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/decisionbench"
	"github.com/wasmgate/wasmgate/internal/dualplugin"
	"github.com/wasmgate/wasmgate/network"
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

// BenchmarkSockConnectPolicy is the decision cost in a running guest, in
// one process (BENCHMARKS.md, "Decision cost in a running guest"; the
// number of record is the CLI run, scalebench decisioncost): the probe guest makes
// connectPolicyConns sequential connections (connect, 1-byte echo, close)
// to a native echo server on loopback, under manifests loaded with
// plugins.Load and run through CompiledGuest.Run, as `wasmgate run
// --policy` does. Variants: "allow-all" (`default = "allow"`, no plugins:
// the chain decides nothing), "allowlist" (the built-in allowlist,
// cache_ttl = "0s", so the plugin runs on every connect) and "chain3"
// (special-ranges excepting 127.0.0.0/8, a denylist and the allowlist, all
// uncached), and both again on the native engine ("native-allowlist",
// "native-chain3"); and a Go plugin of one's own (internal/dualplugin,
// which never sets a cache TTL), built for wasm ("go-wasm") and run
// natively from Options.Natives ("native-go"). Each iteration runs every variant once, in turn, so that the
// load of a shared machine falls on all alike; the guest times its own
// loop. Reported: each variant's median ns per connection over the
// iterations, and the median over iterations of the difference to
// allow-all (NAME-added-ns/conn): what the decision adds to a connection.
//
//	go test -run XXX -bench BenchmarkSockConnectPolicy -benchtime 10x -count 1 ./host/
func BenchmarkSockConnectPolicy(b *testing.B) {
	const conns = 1000
	srv := nativeEcho(b, 0, false)
	_, port, _ := net.SplitHostPort(srv.addr)
	allowlist, chain3 := decisionbench.Allowlist, decisionbench.Chain3
	const goPlugin = `
[[plugins]]
name = "own"
use = "dual"
[plugins.config]
port = PORT
`
	variants := []struct {
		name, manifest string
		nw             func() network.Network
		per, cpu       []float64
		timed          *timedPolicy
	}{
		{name: "allow-all", manifest: `default = "allow"`},
		{name: "allowlist", manifest: `default = "deny"` + allowlist},
		{name: "chain3", manifest: `default = "deny"` + chain3},
		// The same built-ins on the native engine (docs/plugins.md#8-engines).
		{name: "native-allowlist", manifest: `default = "deny"` + decisionbench.Native(allowlist)},
		{name: "native-chain3", manifest: `default = "deny"` + decisionbench.Native(chain3)},
		// A Go plugin of one's own (internal/dualplugin): built for wasm
		// with policy.Serve, and run natively through Options.Natives
		// (docs/embedding.md#native-plugins).
		{name: "go-wasm", manifest: `default = "deny"` + strings.ReplaceAll(goPlugin, `use = "dual"`, `path = "dual.wasm"`)},
		{name: "native-go", manifest: `default = "deny"` + goPlugin},
		{name: "go-raw", manifest: `default = "deny"` + strings.ReplaceAll(goPlugin, `use = "dual"`, `path = "raw.wasm"`)},
	}
	ctx := context.Background()
	dir := b.TempDir()
	buildGoPlugin(b, "../internal/dualplugin/wasm", filepath.Join(dir, "dual.wasm"))
	buildGoPlugin(b, "../plugins/internal/testplugins/raw", filepath.Join(dir, "raw.wasm"))
	for i := range variants {
		path := filepath.Join(dir, variants[i].name+".toml")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(variants[i].manifest, "PORT", port)), 0o644); err != nil {
			b.Fatal(err)
		}
		p, err := plugins.Load(ctx, path, plugins.Options{CacheDir: filepath.Join(os.TempDir(), "wasmgate-socktest-plugin-cache"),
			Natives: map[string]plugins.NativePlugin{"dual": dualplugin.New}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close(context.Background()) })
		for _, e := range p.Chain.Engines() {
			if native := strings.HasPrefix(variants[i].name, "native"); native != (e.Engine == plugins.EngineNative) {
				b.Fatalf("%s: plugin %s on engine %s", variants[i].name, e.Plugin, e.Engine)
			}
		}
		t := &timedPolicy{p: p.Chain}
		variants[i].timed = t
		variants[i].nw = func() network.Network { return p.Manifest.NewDefault(nil, t) }
	}
	rt := NewRuntime(ctx, WithCacheDir(sockCacheDir))
	b.Cleanup(func() { rt.Close(context.Background()) })
	g, err := rt.Compile(ctx, probeWasm(b))
	if err != nil {
		b.Fatal(err)
	}
	// run runs the guest on a goroutine locked to its thread and returns
	// the loop's wall ns per connection (timed by the guest) and the
	// thread's CPU ns per connection (the whole run: the guest's wasm, its
	// host calls and the decisions, which run on its thread; start-up is
	// the same for every variant).
	run := func(nw network.Network, n int) (wall, cpu float64) {
		out := newLines()
		var code int
		var err error
		done := make(chan time.Duration)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tid := syscall.Gettid()
			c0 := threadCPU(tid)
			code, err = g.Run(ctx, NewConfig().WithNetwork(nw).WithArgs("probe", "connectloop", srv.addr, strconv.Itoa(n)).WithStdout(out).WithStderr(out))
			done <- threadCPU(tid) - c0
		}()
		c := <-done
		s := out.String()
		if err != nil || code != 0 {
			b.Fatalf("guest: exit %d, %v\n%s", code, err, s)
		}
		i := strings.Index(s, "ns/conn ")
		if i < 0 {
			b.Fatalf("guest output: %s", s)
		}
		ns, err := strconv.ParseFloat(strings.Fields(s[i+len("ns/conn "):])[0], 64)
		if err != nil {
			b.Fatal(err)
		}
		return ns, float64(c.Nanoseconds()) / float64(n)
	}
	for i := range variants { // warm up: instances, caches, the echo server
		run(variants[i].nw(), 50)
	}
	for i := range variants {
		variants[i].timed.n, variants[i].timed.d = 0, 0
	}
	for b.Loop() {
		for i := range variants {
			w, c := run(variants[i].nw(), conns)
			variants[i].per = append(variants[i].per, w)
			variants[i].cpu = append(variants[i].cpu, c)
		}
	}
	med := func(x []float64) float64 {
		x = slices.Clone(x)
		slices.Sort(x)
		return x[len(x)/2]
	}
	diff := func(x, y []float64) []float64 {
		d := make([]float64, len(x))
		for j := range d {
			d[j] = x[j] - y[j]
		}
		return d
	}
	for i := range variants {
		v := &variants[i]
		b.Logf("%s wall %.0f cpu %.0f", v.name, v.per, v.cpu)
		b.ReportMetric(med(v.per), v.name+"-ns/conn")
		b.ReportMetric(med(v.cpu), v.name+"-cpu-ns/conn")
		conns := float64(b.N * conns)
		b.ReportMetric(float64(v.timed.n)/conns, v.name+"-decisions/conn")
		b.ReportMetric(float64(v.timed.d.Nanoseconds())/conns, v.name+"-decide-ns/conn")
		if i > 0 {
			b.ReportMetric(med(diff(v.per, variants[0].per)), v.name+"-added-ns/conn")
			b.ReportMetric(med(diff(v.cpu, variants[0].cpu)), v.name+"-added-cpu-ns/conn")
		}
	}
}

// timedPolicy counts the decisions of a chain and the time spent in them.
// The guest is sequential, so no locking is needed beyond the atomics'
// visibility: it is read after the guest has exited.
type timedPolicy struct {
	p network.Explainer
	n int64
	d time.Duration
}

func (t *timedPolicy) Decide(ctx context.Context, r *network.Request) (network.Verdict, error) {
	d, err := t.DecideExplain(ctx, r)
	return d.Verdict, err
}

func (t *timedPolicy) DecideExplain(ctx context.Context, r *network.Request) (network.Decision, error) {
	start := time.Now()
	d, err := t.p.DecideExplain(ctx, r)
	t.d += time.Since(start)
	t.n++
	return d, err
}

// buildGoPlugin builds the Go plugin package pkg (relative to host/) for
// wasm into out.
func buildGoPlugin(tb testing.TB, pkg, out string) {
	tb.Helper()
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}
