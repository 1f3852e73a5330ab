package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// countingListener counts the connections its server accepted, so a test
// can tell that a denied connect never reached it.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// twoServers serves HTTP on 127.0.0.1 and 127.0.0.2 at the same port (the
// whole 127/8 is loopback on Linux) and returns the port and both
// listeners.
func twoServers(t *testing.T) (port int, allowed, denied *countingListener) {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.Host)
	})
	l1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = l1.Addr().(*net.TCPAddr).Port
	l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
	if err != nil {
		l1.Close()
		testenv.Missing(t, "a listener on 127.0.0.2 (the Linux 127/8 loopback)", err)
	}
	allowed, denied = &countingListener{Listener: l1}, &countingListener{Listener: l2}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // cleanups run last-in first-out: after the Closes below
	for _, l := range []*countingListener{allowed, denied} {
		srv := &http.Server{Handler: h}
		wg.Add(1)
		go func() { defer wg.Done(); srv.Serve(l) }()
		t.Cleanup(func() { srv.Close() })
	}
	return port, allowed, denied
}

// writeManifest writes an allowlist manifest allowing only api.e2e.test
// (a static [dns] hosts answer: 127.0.0.1) at port, and returns its path.
func writeManifest(t *testing.T, mode string, port int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.toml")
	m := fmt.Sprintf(`default = "deny"
mode = %q

[guest]
name = "e2e"
labels = { tenant = "t1" }

[dns]
hosts = { "api.e2e.test" = ["127.0.0.1"] }

[[plugins]]
name = "egress"
use = "allowlist"
[plugins.config]
rules = ["tcp://api.e2e.test:%d"]
`, mode, port)
	if err := os.WriteFile(p, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// auditRecords parses the JSON lines of out (other lines, such as the
// deny hints sharing stderr with `--audit -`, are skipped) and checks that
// each has every field of an audit record (docs/manifest.md#audit-records).
func auditRecords(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if r["msg"] == "start" { // the policy's start record (docs/manifest.md#audit-records)
			continue
		}
		for _, k := range []string{"time", "guest", "op", "proto", "addr", "port", "names", "verdict", "plugin", "reason", "cached", "duration_us"} {
			if _, ok := r[k]; !ok {
				t.Errorf("audit record lacks %q: %s", k, line)
			}
		}
		recs = append(recs, r)
	}
	return recs
}

// connects returns the tcp.connect records of recs.
func connects(recs []map[string]any) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r["op"] == "tcp.connect" {
			out = append(out, r)
		}
	}
	return out
}

// checkConnect checks one tcp.connect audit record.
func checkConnect(t *testing.T, r map[string]any, addr string, port int, verdict, plugin string, names []string) {
	t.Helper()
	var gotNames []string
	raw, ok := r["names"].([]any)
	if !ok {
		t.Errorf("names %v is not an array", r["names"])
	}
	for _, n := range raw {
		s, _ := n.(string)
		gotNames = append(gotNames, s)
	}
	if r["guest"] != "e2e" || r["proto"] != "tcp" || r["addr"] != addr || r["port"] != float64(port) ||
		r["verdict"] != verdict || r["plugin"] != plugin || fmt.Sprint(gotNames) != fmt.Sprint(names) {
		t.Errorf("audit record %v; want %s %s:%d plugin %q names %v", r, verdict, addr, port, plugin, names)
	}
	if reason, _ := r["reason"].(string); reason == "" {
		t.Errorf("audit record %v has no reason", r)
	}
}

// Enforced allowlist: the allowed name is fetched, the address the policy
// does not name is denied before any packet leaves, both are audited, and
// the user gets one hint per denied destination.
func TestRunPolicyAllowlistE2E(t *testing.T) {
	wasm := guestWasm(t, "demo")
	port, allowedL, deniedL := twoServers(t)
	manifest := writeManifest(t, "enforce", port)
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	good := fmt.Sprintf("http://api.e2e.test:%d/", port)
	bad := fmt.Sprintf("http://127.0.0.2:%d/", port)

	// The denied URL twice: the hint must still be printed once.
	code, out, errOut := runCLI(t, "", "run", "--policy", manifest, "--audit", auditPath, wasm, good, bad, bad)
	if code != 2 { // the demo guest exits with its number of failed GETs
		t.Errorf("exit %d, want 2; stdout %s stderr %s", code, out, errOut)
	}
	wantOK := fmt.Sprintf("guest: GET %s: 200 OK %q\n", good, "hello from "+strings.TrimSuffix(strings.TrimPrefix(good, "http://"), "/"))
	if !strings.Contains(out, wantOK) {
		t.Errorf("stdout %q lacks %q", out, wantOK)
	}
	if n := strings.Count(strings.ToLower(out), "connect: permission denied"); n != 2 {
		t.Errorf("stdout %q: %d permission-denied GETs, want 2", out, n)
	}
	if n := allowedL.accepted.Load(); n != 1 {
		t.Errorf("127.0.0.1 server accepted %d connections, want 1", n)
	}
	if n := deniedL.accepted.Load(); n != 0 {
		t.Errorf("127.0.0.2 server accepted %d connections, want none", n)
	}

	hint := fmt.Sprintf("wasmgate: denied tcp.connect 127.0.0.2:%d: ", port)
	if n := strings.Count(errOut, hint); n != 1 {
		t.Errorf("hint %q printed %d times, want once; stderr %q", hint, n, errOut)
	}
	rule := fmt.Sprintf(`rules = ["tcp://127.0.0.2:%d"]`+"\n", port)
	if !strings.Contains(errOut, rule) {
		t.Errorf("stderr %q does not suggest %q", errOut, rule)
	}
	if n := strings.Count(errOut, "wasmgate:"); n != 1 {
		t.Errorf("stderr has %d wasmgate lines, want only the hint: %q", n, errOut)
	}

	b, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	recs := auditRecords(t, string(b))
	conns := connects(recs)
	if len(conns) != 3 {
		t.Fatalf("%d tcp.connect audit records, want 3 (allow, deny, deny):\n%s", len(conns), b)
	}
	checkConnect(t, conns[0], "127.0.0.1", port, "allow", "egress", []string{"api.e2e.test"})
	checkConnect(t, conns[1], "127.0.0.2", port, "deny", "", nil)
	checkConnect(t, conns[2], "127.0.0.2", port, "deny", "", nil)
	// The name was looked up through the policy too (allowed by the
	// connect rule's host pattern).
	var lookups int
	for _, r := range recs {
		if r["op"] == "dns.lookup" {
			lookups++
			if r["name"] != "api.e2e.test" || r["verdict"] != "allow" || r["plugin"] != "egress" {
				t.Errorf("dns.lookup record %v", r)
			}
		}
	}
	if lookups == 0 {
		t.Errorf("no dns.lookup record:\n%s", b)
	}
}

// Report mode: nothing is denied, the connect the policy would deny goes
// through and is audited as would_deny (here on stderr with --audit -).
func TestRunPolicyReportModeE2E(t *testing.T) {
	wasm := guestWasm(t, "demo")
	port, allowedL, deniedL := twoServers(t)
	manifest := writeManifest(t, "report", port)
	good := fmt.Sprintf("http://api.e2e.test:%d/", port)
	bad := fmt.Sprintf("http://127.0.0.2:%d/", port)

	code, out, errOut := runCLI(t, "", "run", "--policy", manifest, "--audit", "-", wasm, good, bad)
	if code != 0 {
		t.Errorf("exit %d, want 0; stdout %s stderr %s", code, out, errOut)
	}
	if n := strings.Count(out, ": 200 OK "); n != 2 {
		t.Errorf("stdout %q: %d successful GETs, want 2", out, n)
	}
	if allowedL.accepted.Load() != 1 || deniedL.accepted.Load() != 1 {
		t.Errorf("servers accepted %d and %d connections, want 1 and 1", allowedL.accepted.Load(), deniedL.accepted.Load())
	}
	if strings.Contains(errOut, "wasmgate: denied") {
		t.Errorf("report mode printed a deny hint: %q", errOut)
	}
	conns := connects(auditRecords(t, errOut))
	if len(conns) != 2 {
		t.Fatalf("%d tcp.connect audit records, want 2:\n%s", len(conns), errOut)
	}
	checkConnect(t, conns[0], "127.0.0.1", port, "allow", "egress", []string{"api.e2e.test"})
	checkConnect(t, conns[1], "127.0.0.2", port, "would_deny", "", nil)
}

// A bad manifest stops run before the guest starts, listing every
// problem with its key, with check's exit code.
func TestRunPolicyBadManifest(t *testing.T) {
	wasm := guestWasm(t, "hello")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	m := `default = "maybe"

[[plugins]]
name = "egress"
use = "allowlist"
timeout = "soon"
`
	if err := os.WriteFile(bad, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.jsonl")
	code, out, errOut := runCLI(t, "", "run", "--policy", bad, "--audit", auditPath, wasm)
	if code != exitManifest {
		t.Errorf("exit %d, want %d", code, exitManifest)
	}
	if out != "" {
		t.Errorf("the guest ran: stdout %q", out)
	}
	for _, want := range []string{bad + ":", "default", "plugins[1].timeout"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	// A manifest that does not exist is the same kind of error.
	code, out, errOut = runCLI(t, "", "run", "--policy", filepath.Join(dir, "missing.toml"), wasm)
	if code != exitManifest || out != "" || !strings.Contains(errOut, "missing.toml") {
		t.Errorf("missing manifest: exit %d stdout %q stderr %q", code, out, errOut)
	}
}

// engine = "native" through the CLI: the built-in allowlist, compiled into
// wasmgate, allows the guest's connection to the echo server and denies
// the one to port 9, with the allowlist's own reason.
func TestRunNativeEngine(t *testing.T) {
	wasm := guestWasm(t, "probe")
	srv := newEchoServer(t)
	dir := t.TempDir()
	manifest, auditPath := filepath.Join(dir, "policy.toml"), filepath.Join(dir, "audit.jsonl")
	writeFile(t, manifest, strings.Replace(echoManifest(srv.port, true, ""), `use = "allowlist"`, "use = \"allowlist\"\nengine = \"native\"", 1))
	r := startRun(t, func() { srv.stop.Store(true) }, "--policy", manifest, "--audit", auditPath,
		wasm, "dial", "127.0.0.1:9", "--", "echoloop", fmt.Sprintf("127.0.0.1:%d", srv.port), "3")
	r.waitOut(t, "] echo ", 2)
	srv.stop.Store(true)
	if code := r.wait(t); code != 1 {
		t.Errorf("exit %d, want 1 (the dial to port 9 is denied); stderr:\n%s", code, r.errb.String())
	}
	var allowed, denied int
	for _, d := range auditOf(t, auditPath, "decision") {
		if d["op"] != "tcp.connect" {
			continue
		}
		switch {
		case d["verdict"] == "allow" && d["plugin"] == "egress" && strings.HasPrefix(fmt.Sprint(d["reason"]), "allowed by rule"):
			allowed++
		case d["verdict"] == "deny" && d["port"] == float64(9):
			denied++
		default:
			t.Errorf("record %v", d)
		}
	}
	if allowed != 1 || denied != 1 {
		t.Errorf("%d allowed and %d denied connects, want 1 and 1", allowed, denied)
	}
}
