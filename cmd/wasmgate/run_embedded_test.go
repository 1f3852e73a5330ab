package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The IPv6 forms of 127.0.0.3 a guest may dial (issue 18, item 3): NAT64
// (well-known and local-use prefixes), IPv4-compatible, 6to4, Teredo with
// 127.0.0.3 as the client and as the server.
var embeddedForms = []string{"64:ff9b::7f00:3", "64:ff9b:1:7f00:0:300::", "::127.0.0.3", "2002:7f00:3::1",
	"2001:0:4136:e378:8000:63bf:80ff:fffc", "2001:0:7f00:3::1"}

// A real guest dials every IPv6 form of 127.0.0.3. A denylist rule for
// 127.0.0.2/31 denies each of them (the decision, before any syscall, names
// the rule and the embedded address); an allowlist rule for 127.0.0.0/8
// allows 127.0.0.1 but none of them. The manifest default is deny in both
// cases, so that even a policy that missed them sends nothing off loopback.
func TestRunPolicyEmbeddedIPv4E2E(t *testing.T) {
	wasm := guestWasm(t, "probe")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	var args []string
	for _, f := range embeddedForms {
		args = append(args, "dial", fmt.Sprintf("[%s]:%d", f, port), "--")
	}
	args = append(args, "dial", fmt.Sprintf("127.0.0.1:%d", port))

	for _, tt := range []struct {
		name, plugin, rule, deniedBy string
		reason                       []string // in the reason of each denied form
	}{
		{"denylist", "denylist", "tcp://127.0.0.2/31", "rules", []string{"embeds IPv4 ", "127.0.0.3"}},
		{"allowlist", "allowlist", "tcp://127.0.0.0/8", "", []string{"manifest default is deny"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			manifest := filepath.Join(dir, "policy.toml")
			m := fmt.Sprintf(`default = "deny"

[[plugins]]
name = "rules"
use = %q
[plugins.config]
rules = [%q]
`, tt.plugin, tt.rule)
			if tt.plugin == "denylist" {
				// The direct dial must get through: allow it explicitly.
				m += fmt.Sprintf("\n[[plugins]]\nname = \"allow\"\nuse = \"allowlist\"\n[plugins.config]\nrules = [\"tcp://127.0.0.1:%d\"]\n", port)
			}
			if err := os.WriteFile(manifest, []byte(m), 0o644); err != nil {
				t.Fatal(err)
			}
			auditPath := filepath.Join(dir, "audit.jsonl")
			code, out, errOut := runCLI(t, "", append([]string{"run", "--policy", manifest, "--audit", auditPath, wasm}, args...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for i := range embeddedForms {
				want := fmt.Sprintf("[%d] error: ", i)
				line := ""
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, want) {
						line = l
					}
				}
				if !strings.Contains(strings.ToLower(line), "permission denied") {
					t.Errorf("dial %s: %q, want permission denied; stdout %q stderr %q", embeddedForms[i], line, out, errOut)
				}
			}
			if want := fmt.Sprintf("[%d] connected", len(embeddedForms)); !strings.Contains(out, want) {
				t.Errorf("stdout %q lacks %q", out, want)
			}
			b, err := os.ReadFile(auditPath)
			if err != nil {
				t.Fatal(err)
			}
			conns := connects(auditRecords(t, string(b)))
			if len(conns) != len(embeddedForms)+1 {
				t.Fatalf("%d tcp.connect records, want %d:\n%s", len(conns), len(embeddedForms)+1, b)
			}
			for i, f := range embeddedForms {
				r := conns[i]
				reason, _ := r["reason"].(string)
				ok := r["addr"] == netip.MustParseAddr(f).String() && r["verdict"] == "deny" && r["plugin"] == tt.deniedBy
				for _, s := range tt.reason {
					ok = ok && strings.Contains(reason, s)
				}
				if !ok {
					t.Errorf("record for %s: %v; want deny by %q, reason with %q", f, r, tt.deniedBy, tt.reason)
				}
			}
			if r := conns[len(embeddedForms)]; r["addr"] != "127.0.0.1" || r["verdict"] != "allow" {
				t.Errorf("record for 127.0.0.1: %v", r)
			}
		})
	}
}
