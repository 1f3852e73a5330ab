package host

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/internal/dualplugin"
	"github.com/wasmgate/wasmgate/plugins"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// A program's own Go plugin (plugins.Options.Natives) decides a running
// guest's real connects: allowed to the configured port, denied elsewhere,
// with its reason in the audit.
func TestSockNativesPlugin(t *testing.T) {
	addr := tcpEcho(t)
	_, port, _ := net.SplitHostPort(addr)
	ctx := context.Background()
	var audit bytes.Buffer
	m := &plugins.Manifest{Default: policy.ActionDeny, Plugins: []plugins.PluginSpec{{
		Name: "own", Use: "dual", Config: []byte(`{"port":` + port + `}`),
	}}}
	p, err := plugins.LoadManifest(ctx, m, plugins.Options{
		Natives:      map[string]plugins.NativePlugin{"dual": dualplugin.New},
		CacheEntries: -1,
		Audit:        slog.New(slog.NewJSONHandler(&audit, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if e := p.Chain.Engines(); len(e) != 1 || e[0].Engine != plugins.EngineNative {
		t.Fatalf("engines %+v", e)
	}
	run := func(to string) (int, string) {
		var out bytes.Buffer
		code, err := Run(ctx, probeWasm(t), NewConfig().WithNetwork(p.NewDefault(nil)).
			WithArgs("probe", "dial", to).WithStdout(&out).WithStderr(&out))
		if err != nil {
			t.Fatal(err)
		}
		return code, out.String()
	}
	if code, out := run(addr); code != 0 || !strings.Contains(out, "connected") {
		t.Errorf("dial %s: exit %d\n%s", addr, code, out)
	}
	if code, out := run("127.0.0.1:9"); code == 0 {
		t.Errorf("dial to port 9 allowed\n%s", out)
	}
	a := audit.String()
	for _, want := range []string{`"reason":"dual: port ` + port + `"`, `"verdict":"deny"`} {
		if !strings.Contains(a, want) {
			t.Errorf("audit lacks %s:\n%s", want, a)
		}
	}
}
