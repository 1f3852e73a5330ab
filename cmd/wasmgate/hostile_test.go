package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// runBounded runs the CLI and fails the test if it takes more than d (a
// hang on a FIFO, a TOML bomb) instead of waiting for the test timeout.
func runBounded(t *testing.T, d time.Duration, args ...string) (int, string) {
	t.Helper()
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		code := run(args, strings.NewReader(""), &stdout, &stderr)
		done <- result{code, stderr.String()}
	}()
	select {
	case r := <-done:
		return r.code, r.stderr
	case <-time.After(d):
		t.Fatalf("wasmgate %s: still running after %v", strings.Join(args, " "), d)
		return 0, ""
	}
}

// TestCLIRefusesFIFOs: a FIFO given as the manifest, as a plugin path or
// as the guest module makes check and run fail at once with "not a
// regular file", where they used to block forever opening it.
func TestCLIRefusesFIFOs(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		testenv.Missing(t, "mkfifo", err)
	}
	withPlugin := filepath.Join(dir, "plugin.toml")
	os.WriteFile(withPlugin, []byte("default = \"deny\"\n\n[[plugins]]\nname = \"p\"\npath = \"fifo\"\n"), 0o644)
	guest := filepath.Join(dir, "guest.wasm") // never compiled: the policy fails first
	os.WriteFile(guest, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", fifo}, fifo + ": " + fifo + ": not a regular file (a FIFO)"},
		{[]string{"check", withPlugin}, withPlugin + ":5: plugins[1].path: cannot read plugin: " + fifo + ": not a regular file (a FIFO)"},
		{[]string{"run", "--policy", fifo, guest}, fifo + ": not a regular file (a FIFO)"},
		{[]string{"run", "--policy", withPlugin, guest}, "plugins[1].path: cannot read plugin: " + fifo + ": not a regular file (a FIFO)"},
		{[]string{"run", fifo}, fifo + ": not a regular file (a FIFO)"},
		{[]string{"decide", "--policy", fifo}, fifo + ": not a regular file (a FIFO)"},
	} {
		code, stderr := runBounded(t, 10*time.Second, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("wasmgate %s: exit %d, stderr:\n%s\nwant %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}

// tomlBomb is a manifest of n nested inline tables: 70 KB took 8.6 s and
// 4.2 GB in the TOML decoder.
func tomlBomb(n int) string {
	return "default = \"deny\"\nx = " + strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n) + "\n"
}

// TestCheckRefusesTOMLBomb: `wasmgate check` refuses a 70 KB TOML bomb in
// well under a second, naming the line, and so do run and decide.
func TestCheckRefusesTOMLBomb(t *testing.T) {
	dir := t.TempDir()
	bomb := filepath.Join(dir, "bomb.toml")
	src := tomlBomb(70_000 / 4)
	os.WriteFile(bomb, []byte(src), 0o644)
	if len(src) < 70_000 {
		t.Fatalf("bomb of %d bytes", len(src))
	}
	want := bomb + ":2: nested deeper than 32 levels"
	for _, args := range [][]string{
		{"check", bomb},
		{"run", "--policy", bomb, bomb},
		{"decide", "--policy", bomb},
	} {
		start := time.Now()
		code, stderr := runBounded(t, 20*time.Second, args...)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("wasmgate %s: %v", args[0], d)
		}
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("wasmgate %s: exit %d, stderr:\n%.300s\nwant %q", args[0], code, stderr, want)
		}
	}
}
