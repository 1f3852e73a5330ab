package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunMaxMemory: --max-memory caps the guest's memory (the grow guest
// sees memory.grow return -1 and exits 3), sizes take K/M/G suffixes, and
// a bad size is a usage error.
func TestRunMaxMemory(t *testing.T) {
	grow := filepath.Join("..", "..", "testdata", "guests", "grow", "grow.wasm")
	for _, tc := range []struct {
		size string
		want int
	}{
		{"", 0},
		{"64M", 3},      // 1024 pages: the guest needs 1025
		{"65MiB", 0},    // 1040 pages
		{"67174400", 0}, // exactly 1025 pages
		{"67174399", 3}, // rounded down to 1024
		{"1G", 0},
		{"4G", 0},
		{"5G", exitUsage},
		{"64k", exitUsage}, // lower-case suffixes are not sizes
		{"1K", exitUsage},  // below one page
		{"lots", exitUsage},
	} {
		args := []string{"run"}
		if tc.size != "" {
			args = append(args, "--max-memory", tc.size)
		}
		code, _, errOut := runCLI(t, "", append(args, grow)...)
		if code != tc.want {
			t.Errorf("--max-memory %q: exit %d, want %d; stderr %s", tc.size, code, tc.want, errOut)
		}
		if tc.want == exitUsage && !strings.Contains(errOut, "--max-memory") {
			t.Errorf("--max-memory %q: stderr %q does not name the flag", tc.size, errOut)
		}
	}
}

// TestRunListenReport: --listen-report writes the bound address of every
// --listen socket (the real port for :0), in order, before the guest
// runs; "-" writes them to stderr; without --listen it is a usage error.
func TestRunListenReport(t *testing.T) {
	wasm := guestWasm(t, "hello")
	dir := t.TempDir()
	manifest := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(manifest, []byte(`default = "deny"
[[plugins]]
name = "server"
use = "allowlist"
[plugins.config]
rules = ["bind tcp://127.0.0.1", "bind tcp://[::1]"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "listening")
	code, _, errOut := runCLI(t, "", "run", "--policy", manifest, "--listen", "127.0.0.1:0", "--listen", "[::1]:0",
		"--listen-report", report, wasm)
	if code != 0 {
		t.Fatalf("exit %d; stderr %s", code, errOut)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("report %q: want two lines", b)
	}
	for i, prefix := range []string{"127.0.0.1:", "[::1]:"} {
		if !strings.HasPrefix(lines[i], prefix) || strings.HasSuffix(lines[i], ":0") {
			t.Errorf("report line %d: %q, want %s and the bound port", i, lines[i], prefix)
		}
	}

	code, _, errOut = runCLI(t, "", "run", "--policy", manifest, "--listen", "127.0.0.1:0", "--listen-report", "-", wasm)
	if code != 0 || !strings.HasPrefix(errOut, "127.0.0.1:") {
		t.Errorf("--listen-report -: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "", "run", "--listen-report", report, wasm)
	if code != exitUsage || !strings.Contains(errOut, "--listen-report needs --listen") {
		t.Errorf("--listen-report without --listen: exit %d, stderr %q", code, errOut)
	}
	// An unwritable report stops the run before the guest starts.
	code, out, errOut := runCLI(t, "", "run", "--policy", manifest, "--listen", "127.0.0.1:0",
		"--listen-report", filepath.Join(dir, "no", "such", "dir"), wasm, "ran")
	if code == 0 || out != "" || !strings.Contains(errOut, "listen report") {
		t.Errorf("unwritable report: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// The manifest's [limits] max_memory caps the guest like --max-memory,
// which wins when both are given.
func TestRunManifestMaxMemory(t *testing.T) {
	grow := filepath.Join("..", "..", "testdata", "guests", "grow", "grow.wasm")
	manifest := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(manifest, []byte("default = \"deny\"\n[limits]\nmax_memory = \"64MiB\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "", "run", "--policy", manifest, grow); code != 3 {
		t.Errorf("max_memory 64MiB: exit %d, want 3 (the guest's grow failed); stderr %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "", "run", "--policy", manifest, "--max-memory", "65MiB", grow); code != 0 {
		t.Errorf("--max-memory 65MiB over max_memory 64MiB: exit %d, want 0; stderr %s", code, errOut)
	}
}
