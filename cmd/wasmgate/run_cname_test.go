package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// startCNAMEDNS serves, on 127.0.0.1 (UDP), "alias.allowed.test CNAME
// denied.test", "denied.test A 127.0.0.1" and "rebind.test A 127.0.0.1" (a
// public name rebound to loopback), and returns "ip:port".
func startCNAMEDNS(t *testing.T) string {
	t.Helper()
	return testenv.ServeDNS(t, func(q dns.Question, m *dns.Msg) {
		add := func(s string) {
			if rr, err := dns.NewRR(s); err == nil {
				m.Answer = append(m.Answer, rr)
			}
		}
		switch name := strings.ToLower(q.Name); name {
		case "alias.allowed.test.":
			add("alias.allowed.test. 300 IN CNAME denied.test.")
			if q.Qtype == dns.TypeA {
				add("denied.test. 300 IN A 127.0.0.1")
			}
		case "denied.test.", "rebind.test.":
			if q.Qtype == dns.TypeA {
				add(name + " 300 IN A 127.0.0.1")
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
	})
}

// A CNAME does not launder a name: with "alias.allowed.test CNAME
// denied.test", rules about denied.test apply to the guest that looks up
// alias.allowed.test (issue 18, item 2). Real guest (net/http), real
// loopback DNS server and HTTP server.
func TestRunPolicyCNAMEChainE2E(t *testing.T) {
	wasm := guestWasm(t, "demo")
	server := startCNAMEDNS(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingListener{Listener: l}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") })}
	go srv.Serve(counting)
	t.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("http://alias.allowed.test:%d/", port)

	for _, tt := range []struct {
		name, plugins string
		ok            bool
		want          string   // in stdout
		audit         []string // all in one line of the audit log
	}{
		{"denylist dns and tcp", `
[[plugins]]
name = "deny"
use = "denylist"
[plugins.config]
rules = ["dns://denied.test", "tcp://denied.test:*"]
`, false, "lookup alias.allowed.test: permission denied", []string{`"op":"dns.lookup"`, `"name":"denied.test","verdict":"deny","plugin":"deny"`}},
		// Without the dns rule the lookup succeeds, but the address is
		// bound to denied.test too, so the connect rule applies.
		{"denylist tcp only", `
[[plugins]]
name = "deny"
use = "denylist"
[plugins.config]
rules = ["tcp://denied.test:*"]
`, false, "connect: permission denied", []string{`"op":"tcp.connect"`, `"names":["alias.allowed.test","denied.test"],"verdict":"deny","plugin":"deny"`}},
		{"denylist of another name", `
[[plugins]]
name = "deny"
use = "denylist"
[plugins.config]
rules = ["tcp://other.test:*", "dns://other.test"]
`, true, "200 OK", []string{`"op":"dns.lookup"`, `"name":"denied.test","verdict":"allow"`}},
		// An allowlist must allow the chain's names too: the alias alone
		// is not enough (default deny decides the target's lookup) ...
		{"allowlist of the alias only", fmt.Sprintf(`default = "deny"
[[plugins]]
name = "allow"
use = "allowlist"
[plugins.config]
rules = ["tcp://alias.allowed.test:%d"]
`, port), false, "lookup alias.allowed.test: permission denied", []string{`"op":"dns.lookup"`, `"name":"denied.test","verdict":"deny","plugin":""`}},
		// ... a dns:// rule for the target is, and the connect rule
		// matches the alias among the names.
		{"allowlist of the alias and the target's lookup", fmt.Sprintf(`default = "deny"
[[plugins]]
name = "allow"
use = "allowlist"
[plugins.config]
rules = ["tcp://alias.allowed.test:%d", "dns://denied.test"]
`, port), true, "200 OK", []string{`"op":"tcp.connect"`, `"names":["alias.allowed.test","denied.test"],"verdict":"allow","plugin":"allow"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := counting.accepted.Load()
			dir := t.TempDir()
			manifest := filepath.Join(dir, "policy.toml")
			def, plugins := "default = \"allow\"", tt.plugins
			if strings.HasPrefix(plugins, "default") {
				def, plugins, _ = strings.Cut(plugins, "\n")
			}
			m := fmt.Sprintf("%s\n\n[dns]\nservers = [%q]\n%s", def, server, plugins)
			if err := os.WriteFile(manifest, []byte(m), 0o644); err != nil {
				t.Fatal(err)
			}
			auditPath := filepath.Join(dir, "audit.jsonl")
			code, out, errOut := runCLI(t, "", "run", "--policy", manifest, "--audit", auditPath, wasm, url)
			if (code == 0) != tt.ok || !strings.Contains(strings.ToLower(out), strings.ToLower(tt.want)) {
				t.Errorf("exit %d, stdout %q (want %q), stderr %q", code, out, tt.want, errOut)
			}
			accepted := counting.accepted.Load() - before
			if tt.ok != (accepted == 1) {
				t.Errorf("server accepted %d connections", accepted)
			}
			b, _ := os.ReadFile(auditPath)
			if !auditHas(string(b), tt.audit) {
				t.Errorf("no audit record has %q:\n%s", tt.audit, b)
			}
		})
	}
}

// DNS rebinding: a name rule allows the name, whatever address DNS gives
// for it (here loopback); the address itself is only judged by a plugin
// that looks at addresses, at dns.answer and at connect. Chaining
// special-ranges stops it (docs/sockets.md, "DNS rebinding").
func TestRunPolicyDNSRebindingE2E(t *testing.T) {
	wasm := guestWasm(t, "demo")
	server := startCNAMEDNS(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingListener{Listener: l}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "internal") })}
	go srv.Serve(counting)
	t.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("http://rebind.test:%d/", port)
	allow := fmt.Sprintf("\n[[plugins]]\nname = \"egress\"\nuse = \"allowlist\"\n[plugins.config]\nrules = [\"tcp://rebind.test:%d\"]\n", port)
	special := "\n[[plugins]]\nname = \"special\"\nuse = \"special-ranges\"\n"

	for _, tt := range []struct {
		name, plugins string
		ok            bool
		audit         []string // all in one line of the audit log
	}{
		{"name rule alone", allow, true, []string{`"op":"tcp.connect"`, `"addr":"127.0.0.1"`, `"names":["rebind.test"],"verdict":"allow","plugin":"egress"`}},
		{"with special-ranges", special + allow, false, []string{`"op":"dns.answer"`, `"addr":"127.0.0.1"`, `"name":"rebind.test","verdict":"deny","plugin":"special"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := counting.accepted.Load()
			dir := t.TempDir()
			manifest := filepath.Join(dir, "policy.toml")
			m := fmt.Sprintf("default = \"deny\"\n\n[dns]\nservers = [%q]\n%s", server, tt.plugins)
			if err := os.WriteFile(manifest, []byte(m), 0o644); err != nil {
				t.Fatal(err)
			}
			auditPath := filepath.Join(dir, "audit.jsonl")
			code, out, errOut := runCLI(t, "", "run", "--policy", manifest, "--audit", auditPath, wasm, url)
			if (code == 0) != tt.ok {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			if accepted := counting.accepted.Load() - before; tt.ok != (accepted == 1) {
				t.Errorf("server accepted %d connections", accepted)
			}
			b, _ := os.ReadFile(auditPath)
			if !auditHas(string(b), tt.audit) {
				t.Errorf("no audit record has %q:\n%s", tt.audit, b)
			}
		})
	}
}

// auditHas reports whether one line of the audit log contains every one of
// parts.
func auditHas(log string, parts []string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, s := range parts {
			all = all && strings.Contains(line, s)
		}
		if all {
			return true
		}
	}
	return false
}
