package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// `run --metrics` serves Prometheus metrics while the guest runs: a guest
// is denied one connect and binds its --listen socket, then waits for a
// client; a scrape at that moment shows both decisions, the open sockets,
// and passes promtool's checks.
func TestRunMetrics(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, []string{"--metrics", ":0", "--dir", dir + ":/data"},
		"dial", "127.0.0.1:9", "--", "servefile", "/data")
	s.waitOutput(t, "listening") // by then the connect was decided
	errb := &s.errb
	m := regexp.MustCompile(`metrics at (http://127\.0\.0\.1:\d+/metrics)`).FindStringSubmatch(errb.String())
	if m == nil {
		t.Fatalf("no metrics address on stderr: %s", errb.String())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	for _, want := range []string{
		`wasmgate_decisions_total{op="tcp.connect",plugin="",verdict="deny"} 1`,
		`wasmgate_decisions_total{op="tcp.bind",plugin="server",verdict="allow"} 1`,
		`wasmgate_open_sockets 1`,
		`wasmgate_bytes_total{direction="in"} 0`,
		`wasmgate_dns_queries_total{verdict="allow"} 0`,
		`wasmgate_policy_reloads_total{result="ok"} 0`,
		`wasmgate_revoked_sockets_total 0`,
		`wasmgate_quota_refusals_total{quota="connect_rate"} 0`,
		`wasmgate_throttled_seconds_total{direction="out"} 0`,
		`go_goroutines `,
	} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("scrape lacks %q:\n%s", want, grepWasmgate(text))
		}
	}
	if !regexp.MustCompile(`wasmgate_decision_duration_seconds_count\{plugin="server"\} [1-9]`).Match(text) {
		t.Errorf("no timed decision of the server plugin:\n%s", grepWasmgate(text))
	}
	if promtool, err := exec.LookPath("promtool"); err != nil {
		testenv.Missing(t, "promtool (Debian package prometheus)", err)
	} else {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(text)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, msg)
		}
	}
	// Let the guest finish.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x\n"))
	io.ReadAll(c)
	c.Close()
	if code := <-s.done; code != 1 {
		t.Errorf("exit %d, want 1 (the dial fails); stderr %s", code, errb.String())
	}
	// The server is gone with the guest.
	if _, err := http.Get(m[1]); err == nil {
		t.Error("metrics still served after the guest exited")
	}
}

func grepWasmgate(text []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "wasmgate_") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
