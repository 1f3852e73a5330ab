package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/internal/oci"
	"github.com/wasmgate/wasmgate/internal/testenv"
)

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// registryRepo is a repository of the test registry named after the test.
func registryRepo(t *testing.T) string {
	addr, _ := testenv.Registry(t)
	return addr + "/cli/" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
}

// cli runs wasmgate and fails the test unless it exits 0; it returns
// stdout's first line.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, "", args...)
	if code != 0 {
		t.Fatalf("wasmgate %s: exit %d\nstdout %s\nstderr %s", strings.Join(args, " "), code, out, errOut)
	}
	return strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
}

func TestPluginPushPullResolveCLI(t *testing.T) {
	repo := registryRepo(t)
	plugin := multiPlugin(t)
	dig := cli(t, "plugin", "push", plugin, repo+":v1")
	if !strings.HasPrefix(dig, "sha256:") || len(dig) != 71 {
		t.Fatalf("push printed %q, want a digest", dig)
	}
	if got := cli(t, "plugin", "resolve", repo+":v1"); got != repo+"@"+dig {
		t.Fatalf("resolve printed %q, want %s@%s", got, repo, dig)
	}
	out := filepath.Join(t.TempDir(), "pulled.wasm")
	if got := cli(t, "plugin", "pull", "--output", out, repo+":v1"); got != repo+"@"+dig {
		t.Fatalf("pull printed %q, want %s@%s", got, repo, dig)
	}
	if sha256File(t, out) != sha256File(t, plugin) {
		t.Fatal("pulled module differs from the pushed one")
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"plugin"}, 2, "usage"},
		{[]string{"plugin", "fetch", "x"}, 2, "unknown command"},
		{[]string{"plugin", "push", plugin}, 2, "want 2 arguments"},
		{[]string{"plugin", "push", "--max-size", "lots", plugin, repo + ":v2"}, 2, "--max-size"},
		{[]string{"plugin", "push", filepath.Join(t.TempDir(), "none.wasm"), repo + ":v2"}, 1, "no such file"},
		{[]string{"plugin", "resolve", repo + ":missing"}, 1, "MANIFEST_UNKNOWN"},
		{[]string{"plugin", "pull", repo + "@sha256:" + strings.Repeat("0", 64)}, 1, "MANIFEST_UNKNOWN"},
	} {
		code, _, errOut := runCLI(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

// TestOCINotPinnedRefused: a reference without a digest is refused by
// check, run and decide, with the command that prints the pin.
func TestOCINotPinnedRefused(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "policy.toml")
	ref := "127.0.0.1:1/team/egress:v3"
	if err := os.WriteFile(manifest, []byte("[[plugins]]\nname = \"egress\"\noci = \""+ref+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hint := "run `wasmgate plugin resolve " + ref + "`"
	wasm := filepath.Join(dir, "trap.wasm")
	if err := os.WriteFile(wasm, trapWasm, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", manifest},
		{"run", "--policy", manifest, wasm},
		{"decide", "--policy", manifest},
		{"test", "--policy", manifest, manifest},
	} {
		code, _, errOut := runCLI(t, "", args...)
		if code != 1 || !strings.Contains(errOut, "plugins[1].oci") || !strings.Contains(errOut, hint) {
			t.Errorf("%s: exit %d stderr %q; want 1 and the hint %q", args[0], code, errOut, hint)
		}
	}
	code, _, errOut := runCLI(t, "", "run", "--policy", "oci://"+ref, wasm)
	if code != 1 || !strings.Contains(errOut, "wasmgate plugin resolve "+ref) {
		t.Errorf("run --policy oci:// unpinned: exit %d stderr %q", code, errOut)
	}
}

// TestRunPolicyOCIE2E pushes a policy directory (a built-in denylist and
// a plugin file) as one artifact, then runs a guest under oci://REF: the
// plugin pulled from the registry allows 127.0.0.1, the denylist denies
// 127.0.0.2 before any packet leaves, and the audit start record names
// the sha256 of the manifest and of each plugin. The same plugin pinned
// in a local manifest's oci key decides the same.
func TestRunPolicyOCIE2E(t *testing.T) {
	wasm := guestWasm(t, "demo")
	repo := registryRepo(t)
	plugin := multiPlugin(t)
	port, allowedL, deniedL := twoServers(t)
	good := fmt.Sprintf("http://127.0.0.1:%d/", port)
	bad := fmt.Sprintf("http://127.0.0.2:%d/", port)
	plugins := fmt.Sprintf(`[[plugins]]
name = "block"
use = "denylist"
[plugins.config]
rules = ["tcp://127.0.0.2:%d"]

[[plugins]]
name = "gate"
%%s
[plugins.config]
behave = "allowall"
`, port)

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "wasm"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(plugin)
	if err := os.WriteFile(filepath.Join(dir, "wasm", "gate.wasm"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	text := "default = \"deny\"\n[guest]\nname = \"e2e\"\n\n" + fmt.Sprintf(plugins, `path = "wasm/gate.wasm"`)
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	dig := cli(t, "policy", "push", dir, repo+"-policy:v1")
	pinned := cli(t, "plugin", "resolve", repo+"-policy:v1")
	if pinned != repo+"-policy@"+dig {
		t.Fatalf("resolve printed %q, want %s-policy@%s", pinned, repo, dig)
	}
	// The directory is gone: everything comes from the registry.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// decide and test take oci:// as run does.
	line := fmt.Sprintf(`{"op":"connect","proto":"tcp","addr":"127.0.0.2","port":%d}`, port)
	code, out, errOut := runCLI(t, line+"\n", "decide", "--policy", "oci://"+pinned)
	if code != 0 || !strings.Contains(out, `"verdict":"deny","plugin":"block"`) {
		t.Errorf("decide --policy oci://: exit %d stdout %s stderr %s", code, out, errOut)
	}
	cases := filepath.Join(t.TempDir(), "cases.jsonl")
	if err := os.WriteFile(cases, []byte(strings.TrimSuffix(line, "}")+`,"expect":"deny"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := cli(t, "test", "--policy", "oci://"+pinned, cases); got != "1 passed, 0 failed" {
		t.Errorf("test --policy oci:// printed %q", got)
	}
	pluginDigest := cli(t, "plugin", "push", plugin, repo+"-gate:v1")
	local := filepath.Join(t.TempDir(), "policy.toml")
	localText := "default = \"deny\"\n[guest]\nname = \"e2e\"\n\n" + fmt.Sprintf(plugins, fmt.Sprintf("oci = %q", repo+"-gate@"+pluginDigest))
	if err := os.WriteFile(local, []byte(localText), 0o644); err != nil {
		t.Fatal(err)
	}

	for i, tc := range []struct {
		policy, manifestText, source string
	}{
		{"oci://" + pinned, text, "path:"},
		{local, localText, "oci:" + repo + "-gate@" + pluginDigest},
	} {
		auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
		code, out, errOut := runCLI(t, "", "run", "--policy", tc.policy, "--audit", auditPath, wasm, good, bad)
		if code != 1 { // the demo guest exits with its number of failed GETs
			t.Errorf("%s: exit %d, want 1; stdout %s stderr %s", tc.policy, code, out, errOut)
		}
		if n := allowedL.accepted.Load(); n != int32(i+1) {
			t.Errorf("%s: 127.0.0.1 accepted %d connections in all, want %d", tc.policy, n, i+1)
		}
		if n := deniedL.accepted.Load(); n != 0 {
			t.Errorf("%s: 127.0.0.2 accepted %d connections, want none", tc.policy, n)
		}
		b, err := os.ReadFile(auditPath)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var start struct {
			Msg            string `json:"msg"`
			Policy         string `json:"policy"`
			ManifestSHA256 string `json:"manifest_sha256"`
			Plugins        []struct{ Name, Source, SHA256 string }
		}
		if err := json.Unmarshal([]byte(lines[0]), &start); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(tc.manifestText))
		if start.Msg != "start" || start.Policy != tc.policy || start.ManifestSHA256 != hex.EncodeToString(sum[:]) ||
			len(start.Plugins) != 2 || start.Plugins[1].Name != "gate" || start.Plugins[1].SHA256 != sha256File(t, plugin) ||
			!strings.HasPrefix(start.Plugins[1].Source, tc.source) || start.Plugins[0].Source != "use:denylist" {
			t.Errorf("%s: start record %s", tc.policy, lines[0])
		}
		conns := connects(auditRecords(t, string(b)))
		if len(conns) != 2 {
			t.Fatalf("%s: %d tcp.connect records, want 2:\n%s", tc.policy, len(conns), b)
		}
		checkConnect(t, conns[0], "127.0.0.1", port, "allow", "gate", nil)
		checkConnect(t, conns[1], "127.0.0.2", port, "deny", "block", nil)
	}
}

// TestOCIPolicyFilesVerified: a policy's files in the cache that were
// changed are written again before they load; a manifest in an artifact
// that names a file outside it (here an absolute path on this machine)
// is refused, so an artifact cannot load a host file its digest does not
// cover.
func TestOCIPolicyFilesVerified(t *testing.T) {
	repo := registryRepo(t)
	plugin := multiPlugin(t)
	dir := t.TempDir()
	b, _ := os.ReadFile(plugin)
	if err := os.WriteFile(filepath.Join(dir, "gate.wasm"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	text := "[[plugins]]\nname = \"gate\"\npath = \"gate.wasm\"\n[plugins.config]\nbehave = \"allowall\"\n"
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	dig := cli(t, "policy", "push", dir, repo+":v1")
	policy := "oci://" + repo + "@" + dig
	cli(t, "check", policy)
	extracted := filepath.Join(oci.DefaultCacheDir(), "policies", strings.TrimPrefix(dig, "sha256:"), "gate.wasm")
	if err := os.WriteFile(extracted, trapWasm, 0o644); err != nil {
		t.Fatal(err)
	}
	cli(t, "check", policy)
	if sha256File(t, extracted) != sha256File(t, plugin) {
		t.Fatal("the changed file in the policy's cache directory was not written again")
	}

	// An artifact whose manifest names the plugin by an absolute path.
	outside := "[[plugins]]\nname = \"gate\"\npath = " + fmt.Sprintf("%q", plugin) + "\n[plugins.config]\nbehave = \"allowall\"\n"
	evil, err := (&oci.Client{}).PushPolicy(context.Background(), repo+":evil", "policy.toml", []byte(outside), nil)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "", "check", "oci://"+repo+"@"+evil)
	if code != 1 || !strings.Contains(errOut, "is not a file of the policy artifact") {
		t.Fatalf("outside path: exit %d stderr %q", code, errOut)
	}
	// policy push refuses to pack such a manifest in the first place.
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(outside), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "", "policy", "push", dir, repo+":v2")
	if code != 1 || !strings.Contains(errOut, "is outside") {
		t.Fatalf("policy push of an outside path: exit %d stderr %q", code, errOut)
	}
}

// TestOCIPolicyRegistryDown: a pinned policy loaded once loads again with
// its registry down; with an empty cache the load fails, saying so.
func TestOCIPolicyRegistryDown(t *testing.T) {
	addr, _ := testenv.Registry(t)
	via, stop := testenv.Proxy(t, addr)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte("[[plugins]]\nname = \"deny-all\"\nuse = \"denylist\"\n[plugins.config]\nrules = [\"tcp://*:*\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := via + "/cli/registry-down"
	dig := cli(t, "policy", "push", dir, repo+":v1")
	policy := "oci://" + repo + "@" + dig
	cli(t, "check", policy)
	stop()
	cli(t, "check", policy)
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // an empty user cache
	code, _, errOut := runCLI(t, "", "check", policy)
	if code != 1 || !strings.Contains(errOut, "not in the cache") || !strings.Contains(errOut, "connection refused") {
		t.Fatalf("registry down, empty cache: exit %d stderr %q", code, errOut)
	}
}

func TestPluginPolicyHelp(t *testing.T) {
	for _, c := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"plugin", "push"}, []string{"--insecure", "--max-size SIZE"}},
		{[]string{"plugin", "pull"}, []string{"--insecure", "--max-size SIZE", "--output FILE"}},
		{[]string{"plugin", "resolve"}, []string{"--insecure"}},
		{[]string{"policy", "push"}, []string{"--insecure", "--max-size SIZE", "--manifest NAME"}},
		{[]string{"policy", "pull"}, []string{"--insecure", "--max-size SIZE"}},
	} {
		code, out, errOut := runCLI(t, "", append(c.args, "--help")...)
		if code != 0 || errOut != "" || !strings.Contains(out, "usage: wasmgate "+strings.Join(c.args, " ")) {
			t.Errorf("%v --help: exit %d stdout %q stderr %q", c.args, code, out, errOut)
		}
		for _, f := range c.flags {
			if !strings.Contains(out, f) {
				t.Errorf("%v --help lacks %q:\n%s", c.args, f, out)
			}
		}
	}
	for _, cmd := range []string{"plugin", "policy"} {
		if code, out, _ := runCLI(t, "", cmd, "help"); code != 0 || !strings.Contains(out, "docs/distribution.md") {
			t.Errorf("%s help: exit %d stdout %q", cmd, code, out)
		}
	}
}
