package plugins_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Compile a manifest once and give each guest a Policy of its own: its
// own name (so its own ratelimit budget), verdict cache and audit
// attributes. A guest's Policy.NewDefault is the network to run it with
// (host.Config.WithNetwork).
func ExampleCompiledPolicy() {
	dir, err := os.MkdirTemp("", "policy")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	manifest := filepath.Join(dir, "policy.toml")
	err = os.WriteFile(manifest, []byte(`
[[plugins]]
name = "limit"
use = "ratelimit"
[plugins.config]
limits = { "tcp.connect" = "2/1m" }
[[plugins]]
name = "egress"
use = "allowlist"
[plugins.config]
rules = ["tcp://198.51.100.0/24:443"]
`), 0o644)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	compiled, err := plugins.Compile(ctx, manifest, plugins.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer compiled.Close(ctx) // after the guests' policies, or before: they keep it open

	audit := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case "tenant", "guest", "verdict", "plugin":
				return a
			}
			return slog.Attr{} // only these in this example's output
		},
	}))
	for _, tenant := range []string{"a", "b"} {
		p, err := compiled.Instantiate(ctx, plugins.GuestOptions{
			Name:       "job-" + tenant,
			Audit:      audit,
			AuditAttrs: []slog.Attr{slog.String("tenant", tenant)},
		})
		if err != nil {
			log.Fatal(err)
		}
		d := p.NewDefault(nil) // the guest's network: its name, the manifest's resolver and limits
		fmt.Println("guest", d.Guest)
		for i := range 3 {
			// What d sends the policy when the guest connects.
			req := &network.Request{Op: policy.OpTCPConnect, Proto: "tcp", Guest: d.Guest,
				Addr: netip.MustParseAddr("198.51.100.7"), Port: 443, TimeMs: 1_000 + int64(i)}
			if _, err := p.Decide(ctx, req); err != nil {
				log.Fatal(err)
			}
		}
		p.Close(ctx)
	}
	// Output:
	// guest job-a
	// tenant=a guest=job-a verdict=allow plugin=egress
	// tenant=a guest=job-a verdict=allow plugin=egress
	// tenant=a guest=job-a verdict=deny plugin=limit
	// guest job-b
	// tenant=b guest=job-b verdict=allow plugin=egress
	// tenant=b guest=job-b verdict=allow plugin=egress
	// tenant=b guest=job-b verdict=deny plugin=limit
}

// Run a Go plugin of the program's own in its process (Options.Natives):
// the manifest names it with use, and the chain, cache and audit work as
// for wasm plugins. The same constructor, handed to policy.Serve in a
// main package, builds the sandboxed form (docs/embedding.md#native-plugins).
func ExampleOptions_natives() {
	onlyPort := func(config []byte) *policy.Plugin {
		var c struct{ Port uint16 }
		err := json.Unmarshal(config, &c)
		return &policy.Plugin{
			Validate: func() error { return err },
			Decide: func(r policy.Request) policy.Verdict {
				if r.Port == c.Port {
					return policy.Allow(fmt.Sprint("port ", c.Port))
				}
				return policy.Deny(fmt.Sprint("only port ", c.Port))
			},
		}
	}
	m := &plugins.Manifest{Default: policy.ActionDeny, Plugins: []plugins.PluginSpec{{
		Name: "ports", Use: "only-port", Config: []byte(`{"port": 443}`),
	}}}
	ctx := context.Background()
	p, err := plugins.LoadManifest(ctx, m, plugins.Options{
		Natives: map[string]plugins.NativePlugin{"only-port": onlyPort},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)
	fmt.Println(p.Chain.Engines()[0].Engine)
	for _, port := range []uint16{443, 80} {
		req := &network.Request{Op: policy.OpTCPConnect, Proto: "tcp", Addr: netip.MustParseAddr("192.0.2.1"), Port: port}
		o := p.Chain.DecideOutcome(ctx, req)
		fmt.Println(port, o.Verdict.Verdict, o.Reason)
	}
	// Output:
	// native
	// 443 allow port 443
	// 80 deny only port 443
}
