package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// TestTestCommand runs `wasmgate test` on passing, failing and bad cases
// files: golden output, plus the structure the docs promise (FILE:LINE of
// each failing case, the summary line, the exit status).
func TestTestCommand(t *testing.T) {
	const policy = "../../testdata/test/policy.toml"
	for _, c := range []struct {
		files    []string
		code     int
		summary  string
		failures []string // FILE:LINE on stdout
		bad      []string // FILE:LINE on stderr
	}{
		{files: []string{"pass"}, code: 0, summary: "5 passed, 0 failed"},
		{files: []string{"fail"}, code: 1, summary: "1 passed, 2 failed", failures: []string{"fail.jsonl:1:", "fail.jsonl:3:"}},
		{files: []string{"bad"}, code: 2, summary: "1 passed, 0 failed", bad: []string{"bad.jsonl:2:", "bad.jsonl:3:", "bad.jsonl:4:", "bad.jsonl:5:", "bad.jsonl:6:"}},
		{files: []string{"pass", "fail"}, code: 1, summary: "6 passed, 2 failed", failures: []string{"fail.jsonl:1:", "fail.jsonl:3:"}},
	} {
		name := strings.Join(c.files, "+")
		t.Run(name, func(t *testing.T) {
			args := []string{"test", "--policy", policy}
			for _, f := range c.files {
				args = append(args, "../../testdata/test/"+f+".jsonl")
			}
			var stdout, stderr bytes.Buffer
			code := run(args, nil, &stdout, &stderr)
			testenv.Golden(t, "../../testdata/test/"+name+".golden",
				fmt.Sprintf("%s--- exit %d\n--- stderr\n%s", stdout.String(), code, stderr.String()), *updateGolden)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if last := lines[len(lines)-1]; last != c.summary {
				t.Errorf("last line %q, want %q", last, c.summary)
			}
			var fails []string
			for _, l := range lines {
				if i := strings.Index(l, ": FAIL "); i >= 0 {
					fails = append(fails, filepath.Base(l[:i+1]))
				}
			}
			if strings.Join(fails, " ") != strings.Join(c.failures, " ") {
				t.Errorf("failing cases %q, want %q", fails, c.failures)
			}
			for _, b := range c.bad {
				if !strings.Contains(stderr.String(), b) {
					t.Errorf("stderr does not name %s:\n%s", b, stderr.String())
				}
			}
		})
	}
}

func TestTestCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"test"},
		{"test", "--policy", "../../testdata/test/policy.toml"},
		{"test", "x.jsonl"},
		{"test", "--bogus"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, nil, &stdout, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "wasmgate test: ") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"test", "--policy", "../../testdata/test/policy.toml", filepath.Join(t.TempDir(), "none.jsonl")}, nil, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "none.jsonl") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr.String())
	}
	// A manifest that cannot be loaded: exit 1, as check and decide.
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[[plugins]]\nname = 1\n"), 0o644)
	stderr.Reset()
	if code := run([]string{"test", "--policy", bad, "../../testdata/test/pass.jsonl"}, nil, &stdout, &stderr); code != 1 {
		t.Errorf("bad manifest: exit %d, stderr %q", code, stderr.String())
	}
}
