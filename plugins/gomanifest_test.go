package plugins

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestUnknownBuiltinMessage: the problem of an unknown use = "NAME" lists
// the built-ins the lookup really has, and says there are none when the
// lookup is nil, instead of naming plugins it would not find either.
func TestUnknownBuiltinMessage(t *testing.T) {
	data := []byte("[[plugins]]\nname = \"x\"\nuse = \"allowlist\"\n")
	onlyDeny := func(n string) ([]byte, bool) { return []byte("x"), n == "denylist" }
	cases := []struct {
		lookup BuiltinLookup
		want   string
	}{
		{nil, `unknown built-in plugin "allowlist" (no built-in plugins are available here; use path = "FILE.wasm")`},
		{onlyDeny, `unknown built-in plugin "allowlist" (built-ins: denylist)`},
	}
	for _, c := range cases {
		_, err := ParseManifestData("/p.toml", data, c.lookup)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %s", err, c.want)
		}
	}
	_, err := ParseManifestData("/p.toml", []byte("[[plugins]]\nname = \"x\"\nuse = \"allow-list\"\n"), builtin.Lookup)
	if want := `(built-ins: allowlist, denylist, special-ranges, ratelimit)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("embedded built-ins: %v", err)
	}
}

// TestGoManifestDefaults: the zero limits of a PluginSpec built in Go are
// the defaults of a manifest file, nil Config is "{}", and a negative
// limit is refused rather than taken for the default.
func TestGoManifestDefaults(t *testing.T) {
	lim, probs := specLimits(&PluginSpec{})
	if len(probs) > 0 || lim.timeout != DefaultTimeout || lim.init != DefaultInit ||
		uint64(lim.pages)*wasmPage != DefaultMemory || lim.config != "{}" {
		t.Errorf("zero spec: %+v %v", lim, probs)
	}
	lim, _ = specLimits(&PluginSpec{Memory: 1 << 20, Config: []byte(`{"a":1}`)})
	if lim.pages != 16 || lim.config != "" {
		t.Errorf("1 MiB: %+v", lim)
	}
	if lim, _ = specLimits(&PluginSpec{Memory: 1<<20 + 1}); lim.pages != 17 {
		t.Errorf("1 MiB + 1: %d pages, want 17 (rounded up)", lim.pages)
	}
	ctx := context.Background()
	wasm, _ := builtin.Lookup("special-ranges")
	load := func(spec PluginSpec) (*Policy, error) {
		spec.Name, spec.Use, spec.Wasm = "sr", "special-ranges", wasm
		return LoadManifest(ctx, &Manifest{Default: policy.ActionAllow, Plugins: []PluginSpec{spec}},
			Options{CompilationCache: testbuild.Cache()})
	}
	p, err := load(PluginSpec{})
	if err != nil {
		t.Fatalf("zero spec: %v", err)
	}
	d, _ := p.DecideExplain(ctx, connect("127.0.0.1", 80))
	p.Close(ctx)
	if d.Allowed() || d.Plugin != "sr" {
		t.Errorf("special-ranges with the zero spec: %+v", d)
	}
	for _, spec := range []PluginSpec{{Timeout: -time.Second}, {Init: -1}, {Memory: MaxMemory + wasmPage}} {
		_, err := load(spec)
		var me *ManifestError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), "plugins[1] (sr)") {
			t.Errorf("%+v: %v", spec, err)
		}
	}
}
