package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

func TestNamesAndLookup(t *testing.T) {
	want := []string{"allowlist", "denylist", "ratelimit", "special-ranges"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, n := range want {
		b, ok := Lookup(n)
		if !ok || !bytes.HasPrefix(b, []byte("\x00asm")) {
			t.Errorf("Lookup(%q) = %d bytes, %v", n, len(b), ok)
		}
	}
	for _, n := range []string{"", "nope", "allowlist.wasm", "../builtin/allowlist", ".", "builtins", "bundle"} {
		if _, ok := Lookup(n); ok {
			t.Errorf("Lookup(%q) found something", n)
		}
	}
}

// TestEmbeddedUpToDate rebuilds the bundle with build.sh and compares it
// with the committed file, so that the embedded binary always matches its
// sources.
func TestEmbeddedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "build.sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	fresh, err := os.ReadFile(filepath.Join(dir, "builtins.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, bundle) {
		t.Errorf("builtins.wasm is stale (%d bytes committed, %d rebuilt): run go generate ./plugins/builtin", len(bundle), len(fresh))
	}
}

// runtimeConfig is wazero's interpreter: these tests check behaviour, not
// speed. Compiling 2-4 MB Go modules costs seconds per module on a busy
// machine and minutes under -race, while the calls here are few and short.
func runtimeConfig() wazero.RuntimeConfig { return wazero.NewRuntimeConfigInterpreter() }

// newExtismPlugin loads wasm in go-sdk, the reference Extism host, with a
// manifest timeout (close-on-context-done, as wasmgate runs plugins).
func newExtismPlugin(t *testing.T, name, configJSON string) *extism.Plugin {
	t.Helper()
	wasm, ok := Lookup(name)
	if !ok {
		t.Fatalf("no built-in %q", name)
	}
	return newExtismPluginWith(t, wasm, Config(name, configJSON))
}

func newExtismPluginWith(t *testing.T, wasm []byte, config map[string]string) *extism.Plugin {
	t.Helper()
	m := extism.Manifest{
		Wasm:    []extism.Wasm{extism.WasmData{Data: wasm}},
		Timeout: 10000,
		Config:  config,
	}
	ctx := context.Background()
	p, err := extism.NewPlugin(ctx, m, extism.PluginConfig{
		EnableWasi:    true,
		RuntimeConfig: runtimeConfig(),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(ctx) })
	return p
}

func call(t *testing.T, p *extism.Plugin, export string, input []byte) []byte {
	t.Helper()
	rc, out, err := p.Call(export, input)
	if err != nil || rc != 0 {
		t.Fatalf("%s: rc=%d err=%v", export, rc, err)
	}
	return out
}

// TestThroughExtism runs every built-in in go-sdk: describe, validate and
// decide must behave as the native handler tests say, in the bundle wasmgate
// embeds and as the plugin's own module (plugins/NAME/plugin).
func TestThroughExtism(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles wasm")
	}
	t.Parallel()
	type step struct {
		req     string
		verdict string // the whole JSON verdict, or a prefix ending in "*"
	}
	tests := []struct {
		plugin   string
		config   string
		describe string
		steps    []step
	}{
		{"allowlist", `{"rules":["tcp://*.example.test:443","bind tcp://127.0.0.1:8080"]}`,
			`{"name":"allowlist","version":"1","ops":["dns.lookup","dns.answer","tcp.connect","tcp.bind","tcp.listen"],"ignores_port":["dns.lookup","dns.answer"]}`,
			[]step{
				{`{"op":"tcp.connect","proto":"tcp","addr":"198.51.100.10","port":443,"names":["api.example.test"],"guest":"app","time_ms":1795780800000}`,
					`{"verdict":"allow","reason":"allowed by rule \"tcp://*.example.test:443\"","cache_ttl_ms":60000}`},
				{`{"op":"tcp.connect","proto":"tcp","addr":"198.51.100.10","port":80,"names":["api.example.test"]}`, `{"verdict":"abstain","cache_ttl_ms":60000}`},
				{` { "name" : "x.example.test", "op" : "dns.lookup" } `, `{"verdict":"allow","reason":"allowed by rule \"tcp://*.example.test:443\""}`},
			}},
		{"denylist", `{"rules":["*://10.0.0.0/8"],"cache_ttl":"0s"}`,
			`{"name":"denylist","version":"1","ops":["tcp.connect","udp.connect","udp.send"],"ignores_port":["tcp.connect","udp.connect","udp.send"]}`,
			[]step{
				{`{"op":"udp.send","proto":"udp","addr":"10.1.1.1","port":53}`, `{"verdict":"deny","reason":"denied by rule \"*://10.0.0.0/8\""}`},
				{`{"op":"udp.send","proto":"udp","addr":"11.1.1.1","port":53}`, `{"verdict":"abstain"}`},
			}},
		{"special-ranges", `{"except":["198.51.100.0/24"]}`,
			`{"name":"special-ranges","version":"1","ops":["dns.answer","tcp.connect","udp.connect","udp.send"],"ignores_port":["dns.answer","tcp.connect","udp.connect","udp.send"]}`,
			[]step{
				{`{"op":"tcp.connect","proto":"tcp","addr":"169.254.169.254","port":80}`,
					`{"verdict":"deny","reason":"special-ranges: 169.254.169.254 is link-local|metadata (*`},
				{`{"op":"tcp.connect","proto":"tcp","addr":"198.51.100.10","port":443}`, `{"verdict":"abstain","cache_ttl_ms":60000}`},
			}},
		// A scoped exception: UDP to the resolver's port 53 only; its ports
		// make connect verdicts depend on the port.
		{"special-ranges", `{"except":["udp://192.0.2.53:53"]}`,
			`{"name":"special-ranges","version":"1","ops":["dns.answer","tcp.connect","udp.connect","udp.send"],"ignores_port":["dns.answer"]}`,
			[]step{
				{`{"op":"udp.send","proto":"udp","addr":"192.0.2.53","port":53}`, `{"verdict":"abstain","cache_ttl_ms":60000}`},
				{`{"op":"tcp.connect","proto":"tcp","addr":"192.0.2.53","port":443}`,
					`{"verdict":"deny","reason":"special-ranges: 192.0.2.53 is documentation*`},
			}},
		{"ratelimit", `{"limits":{"tcp.connect":"1/1s"}}`,
			`{"name":"ratelimit","version":"1","ops":["tcp.connect"],"stateful":true,"ignores_port":["tcp.connect"]}`,
			[]step{
				{`{"op":"tcp.connect","guest":"app","time_ms":1795780800000}`, `{"verdict":"abstain"}`},
				{`{"op":"tcp.connect","guest":"app","time_ms":1795780800500}`, `{"verdict":"deny","reason":"ratelimit: guest \"app\" exceeded tcp.connect limit 1/1s"}`},
				{`{"op":"tcp.connect","guest":"app","time_ms":1795780801000}`, `{"verdict":"abstain"}`},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.plugin, func(t *testing.T) {
			t.Parallel() // instantiating a Go module is slow; overlap them
			standalone, err := os.ReadFile(buildPackage(t, tt.plugin, "./plugins/"+tt.plugin+"/plugin"))
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range []*extism.Plugin{
				newExtismPlugin(t, tt.plugin, tt.config),
				newExtismPluginWith(t, standalone, map[string]string{"config": tt.config}),
			} {
				module := [...]string{"bundle", "own module"}[i]
				if got := string(call(t, p, "validate", nil)); got != `{}` {
					t.Errorf("%s: validate: %s", module, got)
				}
				if got := string(call(t, p, "describe", nil)); got != tt.describe {
					t.Errorf("%s: describe: %s\nwant      %s", module, got, tt.describe)
				}
				for _, s := range tt.steps {
					out := call(t, p, "decide", []byte(s.req))
					want, isPrefix := strings.CutSuffix(s.verdict, "*")
					if isPrefix && !strings.HasPrefix(string(out), want) || !isPrefix && string(out) != want {
						t.Errorf("%s: decide %s:\n got %s\nwant %s", module, s.req, out, s.verdict)
					}
					if _, err := policy.ParseVerdictJSON(out); err != nil {
						t.Errorf("%s: host would reject %s: %v", module, out, err)
					}
				}
			}
		})
	}
}

// TestBundleSelection: the bundle runs only the built-in its config key
// names; without a valid name it fails validation and denies every request.
func TestBundleSelection(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles wasm")
	}
	t.Parallel()
	for _, c := range []struct {
		config map[string]string
		want   string
	}{
		{map[string]string{"config": `{}`}, `must name the plugin to run`},
		{map[string]string{"config": `{}`, SelectKey: "allowlist.wasm"}, `no built-in plugin \"allowlist.wasm\"`},
		{map[string]string{"config": `{}`, SelectKey: ""}, `must name the plugin to run`},
	} {
		p := newExtismPluginWith(t, bundle, c.config)
		if got := string(call(t, p, "validate", nil)); !strings.Contains(got, c.want) {
			t.Errorf("%v: validate = %s, want an error containing %s", c.config, got, c.want)
		}
		out := call(t, p, "decide", []byte(`{"op":"tcp.connect","proto":"tcp","addr":"198.51.100.10","port":443}`))
		if v, err := policy.ParseVerdictJSON(out); err != nil || v.Verdict != policy.ActionDeny {
			t.Errorf("%v: decide = %s, want a deny", c.config, out)
		}
	}
	// Each name selects its own plugin: describe says which.
	for _, n := range Names() {
		p := newExtismPlugin(t, n, "")
		var d struct{ Name string }
		if err := json.Unmarshal(call(t, p, "describe", nil), &d); err != nil || d.Name != n {
			t.Errorf("%s: describe names %q (%v)", n, d.Name, err)
		}
	}
}

// TestBadConfigThroughExtism checks that validate reports a bad config and
// decide then fails closed, and that a malformed request is an Extism error.
func TestBadConfigThroughExtism(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles wasm")
	}
	t.Parallel()
	p := newExtismPlugin(t, "allowlist", `{"rules":["tcp://*bad.test","udp://ok.test:99999"]}`)
	var v struct{ Error string }
	if err := json.Unmarshal(call(t, p, "validate", nil), &v); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.Error, `rule "tcp://*bad.test"`) || !strings.Contains(v.Error, `rule "udp://ok.test:99999"`) {
		t.Errorf("validate does not list every bad rule: %q", v.Error)
	}
	out := call(t, p, "decide", []byte(`{"op":"tcp.connect","addr":"192.0.2.1","port":1}`))
	if verdict, err := policy.ParseVerdictJSON(out); err != nil || verdict.Verdict != policy.ActionDeny {
		t.Errorf("decide with bad config: %s", out)
	}
	rc, _, err := p.Call("decide", []byte(`{"op":`))
	if rc == 0 || err == nil || !strings.Contains(err.Error(), "bad request") {
		t.Errorf("malformed request: rc=%d err=%v", rc, err)
	}
	// The instance is still healthy after a refused request.
	call(t, p, "decide", []byte(`{"op":"tcp.connect","addr":"192.0.2.1","port":1}`))

}
