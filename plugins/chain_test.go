package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/testenv"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

func TestMain(m *testing.M) {
	testenv.IsolateUserCache() // Options.CacheDir's default
	code := m.Run()
	testbuild.Cleanup()
	os.Exit(code)
}

const multiPkg = "plugins/internal/testplugins/multi"

// engines are what the chain tests that hold for every engine run on.
var engines = []string{EngineWasmgate, EngineExtism}

// onEngine puts every MULTI plugin of a manifest on engine.
func onEngine(text, engine string) string {
	return strings.ReplaceAll(text, `path = "MULTI"`, `path = "MULTI"`+"\nengine = \""+engine+"\"")
}

// loadTOML writes manifest text (with MULTI replaced by the test plugin's
// path) to a temp dir and loads it.
func loadTOML(t testing.TB, text string, opts Options) *Policy {
	t.Helper()
	p, err := loadTOMLErr(t, text, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func loadTOMLErr(t testing.TB, text string, opts Options) (*Policy, error) {
	t.Helper()
	multi := testbuild.Plugin(t, multiPkg)
	text = strings.ReplaceAll(text, "MULTI", multi)
	fake, _ := filepath.Abs("../testdata/manifests/fake.wasm")
	text = strings.ReplaceAll(text, "FAKE", fake)
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if opts.CompilationCache == nil {
		opts.CompilationCache = testbuild.Cache()
	}
	if opts.Builtins == nil {
		opts.Builtins = func(string) ([]byte, bool) { return nil, false }
	}
	m, err := ParseManifest(path, opts.Builtins)
	if err != nil {
		return nil, err
	}
	for i := range m.Plugins {
		// multi imports http_request (behave = "http"), so auto would
		// put it on go-sdk: tests that name no engine test the kernel.
		if s := &m.Plugins[i]; s.Path == multi && s.Engine == EngineAuto {
			s.Engine = EngineWasmgate
		}
	}
	return LoadManifest(context.Background(), m, opts)
}

func connect(addr string, port uint16) *network.Request {
	return &network.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr(addr), Port: port,
		Names: []string{"api.example.test"}, Guest: "app", TimeMs: 1}
}

func TestChainVerdicts(t *testing.T) {
	p := loadTOML(t, `
[[plugins]]
name = "ports"
path = "MULTI"
`, Options{})
	ctx := context.Background()
	cases := []struct {
		port        uint16
		verdict     policy.Action
		plugin, rsn string
	}{
		{443, policy.ActionAllow, "ports", "https to 198.51.100.10"},
		{25, policy.ActionDeny, "ports", "no smtp"},
		{80, policy.ActionDeny, "", "no plugin allowed tcp.connect; manifest default is deny"},
	}
	for _, c := range cases {
		d, err := p.Chain.DecideExplain(ctx, connect("198.51.100.10", c.port))
		if err != nil || d.Verdict.Verdict != c.verdict || d.Plugin != c.plugin || d.Reason != c.rsn {
			t.Errorf("port %d: got %+v %v; want %s by %q (%q)", c.port, d, err, c.verdict, c.plugin, c.rsn)
		}
	}
}

func TestChainMisbehaving(t *testing.T) {
	cases := []struct{ behave, reason string }{
		{"trap", `plugin "bad" failed: trap: `},
		{"loop", `plugin "bad" failed: timeout after 50ms`},
		{"alloc", `plugin "bad" failed: `},
		{"garbage", `plugin "bad" failed: malformed verdict: `},
		{"huge", `plugin "bad" failed: output of 204800 bytes exceeds the 65536-byte limit`},
		{"empty", `plugin "bad" failed: malformed verdict: `},
		{"rc", `plugin "bad" failed: returned 7 without an error`},
		{"errset", `plugin "bad" failed: plugin error: bad things`},
		{"http", `plugin "bad" failed: trap: `},
	}
	for _, eng := range engines {
		for _, c := range cases {
			t.Run(eng+"/"+c.behave, func(t *testing.T) { chainMisbehaving(t, eng, c.behave, c.reason) })
		}
	}
}

func chainMisbehaving(t *testing.T, eng string, behave, reason string) {
	// Only "loop" is meant to time out; the others get time even
	// under -race on a busy machine.
	timeout, memory := "10s", "8MiB"
	switch behave {
	case "loop":
		timeout = "50ms"
	case "alloc":
		memory = "4MiB" // reach the cap fast (the interpreter is slow)
	}
	p := loadTOML(t, onEngine(fmt.Sprintf(`
default = "allow"
[[plugins]]
name = "bad"
path = "MULTI"
timeout = %q
memory = %q
[plugins.config]
behave = %q
describe = '{"ops":["tcp.connect"]}'

[[plugins]]
name = "good"
path = "MULTI"
`, timeout, memory, behave), eng), Options{})
	ctx := context.Background()
	for i := range 3 {
		d, _ := p.Chain.DecideExplain(ctx, connect("198.51.100.10", 443))
		if d.Allowed() || d.Plugin != "bad" || !strings.HasPrefix(d.Reason, reason) {
			t.Fatalf("call %d: got %+v, want a deny by bad starting %q", i, d, reason)
		}
		// The host keeps serving: an op the bad plugin does not take works.
		r := connect("198.51.100.10", 443)
		r.Op, r.Proto = policy.OpUDPSend, "udp"
		if d, _ := p.Chain.DecideExplain(ctx, r); !d.Allowed() || d.Plugin != "good" {
			t.Fatalf("call %d: udp.send got %+v", i, d)
		}
	}
}

func TestChainReportMode(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) { chainReportMode(t, eng) })
	}
}

func chainReportMode(t *testing.T, eng string) {
	loadTOML := func(t *testing.T, text string, opts Options) *Policy { return loadTOML(t, onEngine(text, eng), opts) }
	var audit bytes.Buffer
	p := loadTOML(t, `
[[plugins]]
name = "watch"
path = "MULTI"
mode = "report"

[[plugins]]
name = "allow-all"
path = "MULTI"
[plugins.config]
behave = "allowall"
`, Options{Audit: slog.New(slog.NewJSONHandler(&audit, nil))})
	// watch (report mode) denies port 25, then allow-all allows it: the
	// operation goes ahead, and the audit names watch's deny as would_deny.
	o := p.Chain.DecideOutcome(context.Background(), connect("198.51.100.10", 25))
	if !o.Allowed() || o.Plugin != "watch" || o.Audit != "would_deny" || o.Reason != "no smtp" {
		t.Fatalf("report-mode deny, then an allow: got %+v", o)
	}
	// Nothing to report: allow-all's allow stands as it is.
	o = p.Chain.DecideOutcome(context.Background(), connect("198.51.100.10", 80))
	if !o.Allowed() || o.Plugin != "allow-all" || o.Audit != "allow" || o.Reason != "allow all" {
		t.Fatalf("allow after a report-mode abstain: got %+v", o)
	}

	p2 := loadTOML(t, `
mode = "report"
[[plugins]]
name = "ports"
path = "MULTI"
`, Options{Audit: slog.New(slog.NewJSONHandler(&audit, nil))})
	o = p2.Chain.DecideOutcome(context.Background(), connect("198.51.100.10", 25))
	if !o.Allowed() || o.Plugin != "ports" || o.Audit != "would_deny" || o.Reason != "no smtp" {
		t.Fatalf("manifest report mode: got %+v", o)
	}
	o = p2.Chain.DecideOutcome(context.Background(), connect("198.51.100.10", 80))
	if !o.Allowed() || o.Audit != "would_deny" {
		t.Fatalf("manifest report mode, default deny: got %+v", o)
	}

	p3 := loadTOML(t, `
default = "allow"
[[plugins]]
name = "ports"
path = "MULTI"
mode = "report"
`, Options{Audit: slog.New(slog.NewJSONHandler(&audit, nil))})
	o = p3.Chain.DecideOutcome(context.Background(), connect("198.51.100.10", 25))
	if !o.Allowed() || o.Plugin != "ports" || o.Audit != "would_deny" || o.Reason != "no smtp" {
		t.Fatalf("plugin report mode: got %+v", o)
	}
	lines := strings.Split(strings.TrimSpace(audit.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 audit records, got %d:\n%s", len(lines), audit.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[4]), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"guest": "app", "op": "tcp.connect", "proto": "tcp", "addr": "198.51.100.10",
		"port": 25.0, "verdict": "would_deny", "plugin": "ports", "reason": "no smtp", "cached": false} {
		if rec[k] != want {
			t.Errorf("audit %s = %v, want %v", k, rec[k], want)
		}
	}
	for _, k := range []string{"time", "names", "duration_us"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("audit record lacks %s: %s", k, lines[3])
		}
	}
}

func TestChainCache(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) { chainCache(t, eng) })
	}
}

func chainCache(t *testing.T, eng string) {
	loadTOML := func(t *testing.T, text string, opts Options) *Policy { return loadTOML(t, onEngine(text, eng), opts) }
	p := loadTOML(t, `
[[plugins]]
name = "ports"
path = "MULTI"
[plugins.config]
ttl = "100"
`, Options{})
	ctx := context.Background()
	// The cache runs on the requests' time_ms (Default's clock).
	at := func(r *network.Request, ms int64) *network.Request { r.TimeMs = ms; return r }
	const t0 = 1795780800000
	o := p.Chain.DecideOutcome(ctx, at(connect("198.51.100.10", 443), t0))
	if !o.Allowed() || o.Cached {
		t.Fatalf("first: %+v", o)
	}
	o = p.Chain.DecideOutcome(ctx, at(connect("198.51.100.10", 443), t0))
	if !o.Allowed() || !o.Cached {
		t.Fatalf("second: %+v", o)
	}
	// A different address, port, name set or guest is a different request.
	if o := p.Chain.DecideOutcome(ctx, at(connect("198.51.100.11", 443), t0)); o.Cached {
		t.Fatalf("other addr cached: %+v", o)
	}
	r := at(connect("198.51.100.10", 443), t0)
	r.Names = []string{"other.example.test"}
	if o := p.Chain.DecideOutcome(ctx, r); o.Cached {
		t.Fatalf("other names cached: %+v", o)
	}
	r = at(connect("198.51.100.10", 443), t0)
	r.Guest = "other"
	if o := p.Chain.DecideOutcome(ctx, r); o.Cached {
		t.Fatalf("other guest cached: %+v", o)
	}
	if o := p.Chain.DecideOutcome(ctx, at(connect("198.51.100.10", 443), t0+999)); !o.Cached {
		t.Fatalf("before expiry: %+v", o)
	}
	if o := p.Chain.DecideOutcome(ctx, at(connect("198.51.100.10", 443), t0+1000)); o.Cached {
		t.Fatalf("at expiry: %+v", o)
	}
	// Verdicts without cache_ttl_ms are never reused.
	p.Chain.DecideOutcome(ctx, at(connect("198.51.100.10", 25), t0))
	if o := p.Chain.DecideOutcome(ctx, at(connect("198.51.100.10", 25), t0)); o.Cached {
		t.Fatalf("uncacheable verdict reused: %+v", o)
	}
}

func TestVerdictCacheBounded(t *testing.T) {
	c := newVerdictCache(100)
	for i := range 1000 {
		c.put(cacheKey{port: uint16(i)}, policy.Verdict{Verdict: policy.ActionAllow, CacheTTLMs: 1000}, 0)
		if len(c.m) > 100 {
			t.Fatalf("cache holds %d entries, bound 100", len(c.m))
		}
	}
	if _, ok := c.get(&cacheKey{port: 999}, 0); !ok {
		t.Fatal("newest entry missing")
	}
}

func TestLoadProblems(t *testing.T) {
	_, err := loadTOMLErr(t, `
[[plugins]]
name = "picky"
path = "MULTI"
[plugins.config]
invalid = "rule 3 is bad"

[[plugins]]
name = "confused"
path = "MULTI"
[plugins.config]
describe = '{"ops":["tcp.connect","tcp.teleport"],"ignores_port":["tcp.accept","udp.beam"]}'

[[plugins]]
name = "fake"
path = "FAKE"
`, Options{})
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{
		`plugins[1] (picky): config rejected by the plugin: rule 3 is bad`,
		`plugins[2] (confused): describe lists unknown op "tcp.teleport"`,
		`plugins[2] (confused): describe lists unknown op "udp.beam" in ignores_port`,
		`plugins[3] (fake): not a valid wasm module`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestChainHammer(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) { chainHammer(t, eng) })
	}
}

func chainHammer(t *testing.T, eng string) {
	loadTOML := func(t *testing.T, text string, opts Options) *Policy { return loadTOML(t, onEngine(text, eng), opts) }
	p := loadTOML(t, `
[[plugins]]
name = "ports"
path = "MULTI"
[[plugins]]
name = "second"
path = "MULTI"
[plugins.config]
ttl = "1"
`, Options{PoolSize: 2})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				port := uint16(443)
				if (g+i)%3 == 0 {
					port = 25
				}
				d, err := p.Chain.DecideExplain(context.Background(), connect("198.51.100.10", port))
				if err != nil || d.Allowed() != (port == 443) {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d wrong decisions", bad.Load())
	}
}

// TestChainHammerFailures: concurrent decisions through a plugin whose
// every call traps; each is a deny naming it, dead instances are replaced,
// and the pool never deadlocks or leaks tokens; on both engines.
func TestChainHammerFailures(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) { chainHammerFailures(t, eng) })
	}
}

func chainHammerFailures(t *testing.T, eng string) {
	loadTOML := func(t *testing.T, text string, opts Options) *Policy { return loadTOML(t, onEngine(text, eng), opts) }
	p := loadTOML(t, `
default = "allow"
[[plugins]]
name = "bad"
path = "MULTI"
timeout = "10s"
[plugins.config]
behave = "trap"
describe = '{"ops":["tcp.connect"]}'
`, Options{PoolSize: 2})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				d, _ := p.Chain.DecideExplain(context.Background(), connect("198.51.100.10", 443))
				if d.Allowed() || d.Plugin != "bad" || !strings.HasPrefix(d.Reason, `plugin "bad" failed: trap`) {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d wrong decisions", bad.Load())
	}
	pl := p.Chain.plugins[0].pool
	pl.mu.Lock()
	out, idle := pl.out, len(pl.idle)
	pl.mu.Unlock()
	if out != 0 || idle != 0 {
		t.Fatalf("pool: %d instances still out, %d idle (all died)", out, idle)
	}
}

// TestInitTimeout: a plugin's init_timeout bounds its load-time calls (here
// a validate that never returns) in wall-clock time, and the load fails
// naming the plugin and the timeout.
func TestInitTimeout(t *testing.T) {
	start := time.Now()
	_, err := loadTOMLErr(t, `
[[plugins]]
name = "stuck"
path = "MULTI"
init_timeout = "300ms"
[plugins.config]
behave = "validateloop"
`, Options{})
	d := time.Since(start)
	if err == nil {
		t.Fatal("loaded")
	}
	if want := `plugins[1] (stuck): validate failed: timeout after 300ms`; !strings.Contains(err.Error(), want) {
		t.Errorf("error lacks %q:\n%v", want, err)
	}
	// Compiling the plugin comes first (cached, but not free); the default
	// of 5s would take far longer than this.
	if d > 3*time.Second {
		t.Errorf("load took %v with an init_timeout of 300ms", d)
	}
}

// TestValidateProblemLines: a plugin's newline-joined validate error is one
// problem per line (not one line joined by U+FFFD), each at the line of the
// config key or value it names, or of the config table; at most
// maxValidateLines of them.
func TestValidateProblemLines(t *testing.T) {
	_, err := loadTOMLErr(t, `
[[plugins]]
name = "picky"
path = "MULTI"
[plugins.config]
invalid = "first\nport \"8o\" is not a number\nthird"
port = "8o"
`, Options{})
	if err == nil {
		t.Fatal("loaded")
	}
	got := err.Error()
	for _, want := range []string{
		`:5: plugins[1] (picky): config rejected by the plugin: first` + "\n",
		`:7: plugins[1] (picky): config rejected by the plugin: port "8o" is not a number`,
		`:5: plugins[1] (picky): config rejected by the plugin: third`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("error lacks %q:\n%s", want, got)
		}
	}
	if strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("U+FFFD in %q", got)
	}
	lines := strings.Repeat("bad\n", maxValidateLines+8)
	probs := validateProblems(lines)
	if len(probs) != maxValidateLines+1 || !strings.HasSuffix(probs[maxValidateLines], "… and 8 more lines") {
		t.Errorf("%d problems, last %q", len(probs), probs[len(probs)-1])
	}
}
