package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// dnsZone is what the loopback DNS server answers.
var dnsZone = map[string][]string{
	"api.example.test.":     {"A 198.51.100.10", "A 10.0.0.1", "AAAA 2001:db8::10"},
	"img.cdn.example.test.": {"A 198.51.100.30"},
	"other.example.test.":   {"A 198.51.100.40"},
	"blocked.example.test.": {"A 198.51.100.50"},
}

// startDNS serves dnsZone on 127.0.0.1 (UDP) and returns "ip:port".
func startDNS(t *testing.T) string {
	t.Helper()
	return testenv.ServeDNS(t, func(q dns.Question, m *dns.Msg) {
		name := strings.ToLower(q.Name)
		recs, ok := dnsZone[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, r := range recs {
			typ, addr, _ := strings.Cut(r, " ")
			if (typ == "A" && q.Qtype == dns.TypeA) || (typ == "AAAA" && q.Qtype == dns.TypeAAAA) {
				rr, err := dns.NewRR(name + " 300 IN " + typ + " " + addr)
				if err == nil {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
	})
}

var volatile = regexp.MustCompile(`"time":"[^"]*",|,"duration_us":[0-9]+`)

func TestDecideGolden(t *testing.T) {
	server := startDNS(t)
	inputs, _ := filepath.Glob("../../testdata/decide/*.jsonl")
	if len(inputs) == 0 {
		t.Fatal("no inputs")
	}
	for _, in := range inputs {
		base := strings.TrimSuffix(in, ".jsonl")
		t.Run(filepath.Base(base), func(t *testing.T) {
			text, err := os.ReadFile(base + ".toml")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			manifest := filepath.Join(dir, "policy.toml")
			if err := os.WriteFile(manifest, bytes.ReplaceAll(text, []byte("DNS_SERVER"), []byte(server)), 0o644); err != nil {
				t.Fatal(err)
			}
			stdin, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			auditPath := filepath.Join(dir, "audit.jsonl")
			var stdout, stderr bytes.Buffer
			code := run([]string{"decide", "--policy", manifest, "--audit", auditPath}, stdin, &stdout, &stderr)
			audit, err := os.ReadFile(auditPath)
			if err != nil {
				t.Fatal(err)
			}
			// The start record comes first and names the manifest
			// (a temporary path, so it is checked here and left out
			// of the golden file).
			start, rest, _ := bytes.Cut(audit, []byte("\n"))
			var rec map[string]any
			if err := json.Unmarshal(start, &rec); err != nil || rec["msg"] != "start" || rec["policy"] != manifest ||
				rec["manifest_sha256"] != sha256File(t, manifest) {
				t.Errorf("first audit record %s, want the start record of %s", start, manifest)
			}
			audit = rest
			got := stdout.String() + "--- exit " + string(rune('0'+code)) + "\n--- audit (time and duration_us removed)\n" +
				volatile.ReplaceAllString(string(audit), "")
			if stderr.Len() > 0 {
				got += "--- stderr\n" + stderr.String()
			}
			testenv.Golden(t, base+".golden", got, *updateGolden)
			// Structural checks that do not depend on the golden file.
			inLines := strings.Split(strings.TrimSpace(mustRead(t, in)), "\n")
			outLines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if len(inLines) != len(outLines) {
				t.Fatalf("%d input lines, %d output lines", len(inLines), len(outLines))
			}
			for i, l := range outLines {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("output line %d is not JSON: %s", i+1, l)
				}
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheck(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "../../testdata/decide/plugin-report.toml"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if want := "../../testdata/decide/plugin-report.toml: ok (2 plugins: no-special-ranges, no-smtp)\n" +
		"  no-special-ranges: engine wasmgate (every import is one the kernel serves)\n" +
		"  no-smtp: engine wasmgate (every import is one the kernel serves)\n"; stdout.String() != want {
		t.Fatalf("stdout %q, want %q", stdout.String(), want)
	}
	stdout.Reset()
	if code := run([]string{"check", "../../testdata/manifests/err-plugins.toml"}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d for a bad manifest", code)
	}
	testenv.Golden(t, "../../testdata/check/err-plugins.golden", stderr.String(), *updateGolden)
	// Every problem a built-in finds in its config is a line of its own, at
	// the line of the key or value it is about, with "did you mean" for a
	// misspelt key.
	stderr.Reset()
	if code := run([]string{"check", "../../testdata/check/err-config.toml"}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d for a bad config", code)
	}
	if strings.ContainsRune(stderr.String(), '\uFFFD') {
		t.Errorf("problems joined by U+FFFD:\n%s", stderr.String())
	}
	testenv.Golden(t, "../../testdata/check/err-config.golden", stderr.String(), *updateGolden)
	// A built-in rejecting its config fails check, naming the plugin.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[plugins]]\nname = \"egress\"\nuse = \"allowlist\"\n[plugins.config]\nrules = [\"tcp://[::1\"]\n"), 0o644)
	stderr.Reset()
	if code := run([]string{"check", bad}, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "plugins[1] (egress): config rejected by the plugin") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := run([]string{"check"}, nil, &stdout, &stderr); code != 2 {
		t.Fatalf("no file: exit %d", code)
	}
}

// TestCheckEngines: check names each plugin's engine and why, and refuses
// a special address in allowed_hosts (docs/plugins.md#8-engines).
func TestCheckEngines(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.toml")
	os.WriteFile(ok, []byte(`
[[plugins]]
name = "fast"
use = "denylist"
[plugins.config]
rules = ["tcp://*:25"]

[[plugins]]
name = "sdk"
use = "allowlist"
engine = "extism"
allowed_hosts = ["intel.example.com"]
[plugins.config]
rules = ["tcp://*:443"]
`), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", ok}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if want := ok + ": ok (2 plugins: fast, sdk)\n" +
		"  fast: engine wasmgate (every import is one the kernel serves)\n" +
		"  sdk: engine extism (engine = \"extism\" in the manifest)\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte(`
[[plugins]]
name = "sdk"
use = "allowlist"
engine = "extism"
allowed_hosts = ["169.254.169.254"]
`), 0o644)
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"check", bad}, nil, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), `bad.toml:6: plugins[1].allowed_hosts[0]: 169.254.169.254 is a special address (link-local|metadata); http_request to it is refused unless allow_special lists link-local and metadata`) {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
