package plugins

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/internal/dualplugin"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

var dualNatives = map[string]NativePlugin{"dual": dualplugin.New}

// loadFile writes manifest into a temporary directory, next to the files,
// and loads it with opts.
func loadFile(t *testing.T, manifest string, files map[string][]byte, opts Options) (*Policy, error) {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	opts.CompilationCache = testbuild.Cache()
	opts.CacheEntries = -1
	p, err := Load(context.Background(), path, opts)
	if err == nil {
		t.Cleanup(func() { p.Close(context.Background()) })
	}
	return p, err
}

// A program's own Go plugin (Options.Natives) decides as the same code
// built for wasm with policy.Serve does, reasons, panics and describe's
// ops included; on engine "auto" it runs natively, having no wasm form.
func TestNativesSameVerdictsAsWasm(t *testing.T) {
	wasm := testbuild.Bytes(t, "./internal/dualplugin/wasm")
	const config = `
[plugins.config]
port = 8443
deny = ["bad.test"]
`
	inWasm, err := loadFile(t, "[[plugins]]\nname = \"d\"\npath = \"dual.wasm\"\n"+config,
		map[string][]byte{"dual.wasm": wasm}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	native, err := loadFile(t, "[[plugins]]\nname = \"d\"\nuse = \"dual\"\n"+config, nil, Options{Natives: dualNatives})
	if err != nil {
		t.Fatal(err)
	}
	if got := native.Chain.Engines(); len(got) != 1 || got[0].Engine != EngineNative || !strings.Contains(got[0].Why, "Options.Natives") {
		t.Errorf("engines: %+v", got)
	}
	a := netip.MustParseAddr("192.0.2.1")
	reqs := []*network.Request{
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: a, Port: 8443},
		{Op: policy.OpTCPConnect, Proto: "tcp", Addr: a, Port: 443},
		{Op: policy.OpDNSLookup, Name: "bad.test"},
		{Op: policy.OpDNSLookup, Name: "BAD.test."}, // canonical first, on both
		{Op: policy.OpDNSLookup, Name: "good.test"},
		{Op: policy.OpDNSLookup, Name: "panic.test"},
		{Op: policy.OpUDPSend, Proto: "udp", Addr: a, Port: 8443}, // not in describe's ops
	}
	for _, r := range reqs {
		w := inWasm.Chain.DecideOutcome(context.Background(), r)
		n := native.Chain.DecideOutcome(context.Background(), r)
		if w.Verdict != n.Verdict || w.Plugin != n.Plugin || w.Reason != n.Reason {
			t.Errorf("%s %s%s: wasm %+v, native %+v", r.Op, r.Addr, r.Name, w, n)
		}
	}
	if o := native.Chain.DecideOutcome(context.Background(), reqs[5]); o.Allowed() || !strings.Contains(o.Reason, "plugin panicked: asked to") {
		t.Errorf("panic: %+v", o)
	}
	if o := native.Chain.DecideOutcome(context.Background(), reqs[0]); !o.Allowed() || o.Reason != "dual: port 8443" {
		t.Errorf("allowed connect: %+v", o)
	}

	// A bad config fails the load the same way in both forms.
	const bad = "\n[plugins.config]\nport = 0\n"
	_, errW := loadFile(t, "[[plugins]]\nname = \"d\"\npath = \"dual.wasm\"\n"+bad, map[string][]byte{"dual.wasm": wasm}, Options{})
	_, errN := loadFile(t, "[[plugins]]\nname = \"d\"\nuse = \"dual\"\n"+bad, nil, Options{Natives: dualNatives})
	for _, err := range []error{errW, errN} {
		if err == nil || !strings.Contains(err.Error(), `"port" must be 1-65535, not 0`) {
			t.Errorf("bad config: %v", err)
		}
	}
}

// What a manifest or a program cannot do with a native plugin, each with
// a message that says what to do instead.
func TestNativesRefused(t *testing.T) {
	const cfg = "\n[plugins.config]\nport = 1\n"
	for _, tc := range []struct {
		name, manifest string
		natives        map[string]NativePlugin
		want           string
	}{
		{"wasm engine", "[[plugins]]\nname = \"d\"\nuse = \"dual\"\nengine = \"wasmgate\"\n" + cfg, dualNatives,
			`"dual" is a native plugin of this program with no wasm form; it runs only on engine "native"`},
		{"timeout", "[[plugins]]\nname = \"d\"\nuse = \"dual\"\ntimeout = \"1s\"\n" + cfg, dualNatives,
			`timeout: has no effect on a native plugin of this program`},
		{"not registered", "[[plugins]]\nname = \"d\"\nuse = \"dual\"\n" + cfg, nil,
			`unknown built-in plugin "dual"`},
		{"a built-in's name", "[[plugins]]\nname = \"d\"\nuse = \"dual\"\n" + cfg,
			map[string]NativePlugin{"dual": dualplugin.New, "allowlist": dualplugin.New},
			`Options.Natives["allowlist"] has the name of a wasmgate built-in`},
		{"nil constructor", "[[plugins]]\nname = \"d\"\nuse = \"dual\"\n" + cfg,
			map[string]NativePlugin{"dual": nil, "x": dualplugin.New}, `Options.Natives["dual"] is nil`},
		{"no plugin", "[[plugins]]\nname = \"d\"\nuse = \"none\"\n",
			map[string]NativePlugin{"none": func([]byte) *policy.Plugin { return nil }},
			`Options.Natives["none"] returned no plugin`},
		{"constructor panics", "[[plugins]]\nname = \"d\"\nuse = \"boom\"\n",
			map[string]NativePlugin{"boom": func([]byte) *policy.Plugin { panic("no") }}, "trap: panic: no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadFile(t, tc.manifest, nil, Options{Natives: tc.natives})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// A manifest built in Go names a native plugin by Use alone.
func TestNativesGoManifest(t *testing.T) {
	m := &Manifest{Default: policy.ActionDeny, Plugins: []PluginSpec{{Name: "d", Use: "dual", Config: []byte(`{"port":7}`)}}}
	p, err := LoadManifest(context.Background(), m, Options{Natives: dualNatives, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	r := &network.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("192.0.2.1"), Port: 7}
	if o := p.Chain.DecideOutcome(context.Background(), r); !o.Allowed() || o.Reason != "dual: port 7" {
		t.Errorf("%+v", o)
	}
	m.Plugins[0].Timeout = 5 * DefaultTimeout
	if _, err := LoadManifest(context.Background(), m, Options{Natives: dualNatives}); err == nil || !strings.Contains(err.Error(), "timeout and memory have no effect") {
		t.Errorf("a timeout on a native plugin: %v", err)
	}
}
