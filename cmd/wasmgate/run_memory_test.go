package main

import (
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
