package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHelp: `COMMAND --help` (and -h) prints a real usage on stdout and
// exits 0, with every flag in the two-dash form the README uses.
func TestHelp(t *testing.T) {
	for _, c := range []struct {
		cmd   string
		want  []string // in the usage
		flags []string
	}{
		{"run", []string{"usage: wasmgate run [FLAGS] WASM [ARGS...]", "Exit status"},
			[]string{"--policy FILE", "--audit FILE", "--dir HOST[:GUEST][:ro]", "--env K=V", "--listen ADDR", "--timeout DUR", "--no-cache", "--log-level LEVEL"}},
		{"check", []string{"usage: wasmgate check [--log-level LEVEL] FILE", "describe and validate", "exits 1"},
			[]string{"--log-level LEVEL"}},
		{"decide", []string{"usage: wasmgate decide --policy FILE", "line N"},
			[]string{"--policy FILE", "--audit FILE", "--log-level LEVEL"}},
		{"test", []string{"usage: wasmgate test --policy FILE", `"expect"`, "N passed, N failed"},
			[]string{"--policy FILE", "--log-level LEVEL"}},
	} {
		for _, h := range []string{"--help", "-h"} {
			code, out, errOut := runCLI(t, "", c.cmd, h)
			if code != 0 || errOut != "" {
				t.Errorf("%s %s: exit %d, stderr %q", c.cmd, h, code, errOut)
			}
			if strings.Count(out, "\n") < 5 {
				t.Errorf("%s %s: usage too short: %q", c.cmd, h, out)
			}
			for _, w := range append(c.want, c.flags...) {
				if !strings.Contains(out, w) {
					t.Errorf("%s %s: usage lacks %q:\n%s", c.cmd, h, w, out)
				}
			}
			if m := regexp.MustCompile(`(?m)^\s+-[a-z]`).FindString(out); m != "" {
				t.Errorf("%s %s: one-dash flag %q in\n%s", c.cmd, h, m, out)
			}
		}
	}
	// After WASM, --help is the guest's argument.
	code, out, _ := runCLI(t, "", "run", guestWasm(t, "hello"), "--help")
	if code != 0 || !strings.HasPrefix(out, "hello [--help]") {
		t.Errorf("guest --help: exit %d, stdout %q", code, out)
	}
}

// TestErrorPrefix: an error is prefixed with the command once and names
// the file it is about.
func TestErrorPrefix(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "app.wasm")
	os.WriteFile(bad, []byte("not wasm"), 0o644)
	code, _, errOut := runCLI(t, "", "run", "--no-cache", bad)
	if want := "wasmgate run: " + bad + ": compile: invalid magic number\n"; code != exitHost || errOut != want {
		t.Errorf("exit %d, stderr %q, want %q", code, errOut, want)
	}
	for _, args := range [][]string{
		{"run", "--bogus", bad},
		{"check", "--bogus"},
		{"decide", "--bogus"},
		{"test", "--bogus"},
	} {
		code, _, errOut := runCLI(t, "", args...)
		if code != 2 || strings.Count(errOut, "wasmgate") != 2 || !strings.HasPrefix(errOut, "wasmgate "+args[0]+": flag provided but not defined: -bogus\n") {
			// (twice: the prefix and the --help pointer)
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// TestDecideErrorLine: decide's error lines say which input line.
func TestDecideErrorLine(t *testing.T) {
	in := `{"op":"connect","proto":"tcp","addr":"127.0.0.1","port":443}` + "\n\n" + `{"op":"teleport"}` + "\n" + `{` + "\n"
	code, out, errOut := runCLI(t, in, "decide", "--policy", "../../testdata/test/policy.toml")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 2 || len(lines) != 3 || !strings.HasPrefix(lines[1], `{"error":"line 3: unknown op`) || !strings.HasPrefix(lines[2], `{"error":"line 4: bad JSON`) {
		t.Errorf("exit %d, stdout %s, stderr %s", code, out, errOut)
	}
}
