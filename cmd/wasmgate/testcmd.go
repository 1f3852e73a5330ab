package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/wasmgate/wasmgate/plugins"
)

// cmdTest implements `wasmgate test --policy FILE CASES.jsonl...`: every
// non-blank line of a cases file is a `decide` input line plus "expect"
// (the verdict wanted: "allow", "deny" or "would_deny") and optionally
// "reason" (a substring the verdict's reason must contain). Each file is
// one simulated guest, run through the same decider as `wasmgate decide`
// (docs/manifest.md, "wasmgate test").
//
// Failing cases are printed on stdout as FILE:LINE with what was wanted and
// what was decided, then "N passed, N failed". Exit 0 when all passed, 1
// when a case failed, 2 on bad input (a line that is not a valid case,
// an unreadable file, bad flags) — bad lines are reported on stderr naming
// FILE:LINE and the other cases still run.
func cmdTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wasmgate test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "policy manifest `FILE` (required)")
	logLevel := logLevelFlag(fs)
	setUsage(fs, "wasmgate test --policy FILE [--log-level LEVEL] CASES.jsonl...", testUsage)
	if err := parseFlags(fs, args, stdout); err != nil {
		return flagExit(err)
	}
	if *policyPath == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "wasmgate test: want --policy FILE and at least one CASES.jsonl\nRun 'wasmgate test --help' for usage.")
		return 2
	}
	logs := newPluginLogs(stderr, *logLevel)
	defer logs.Close()
	ctx := context.Background()
	p, err := loadPolicy(ctx, *policyPath, plugins.Options{Logger: logs.Logger()})
	if err != nil {
		fmt.Fprintf(stderr, "wasmgate test: %v\n", err)
		return 1
	}
	defer p.Close(ctx)
	var passed, failed int
	bad := false
	for _, path := range fs.Args() {
		p, f, err := runCases(ctx, newDecider(p), path, stdout, stderr)
		passed += p
		failed += f
		if err != nil {
			bad = true
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	switch {
	case bad:
		return 2
	case failed > 0:
		return 1
	}
	return 0
}

const testUsage = `Each line of a cases file is a decide input line plus "expect" ("allow", "deny"
or "would_deny") and optionally "reason" (a substring of the reason), e.g.
  {"op":"connect","proto":"tcp","addr":"192.0.2.1","port":443,"expect":"allow"}
  {"op":"resolve","host":"evil.test","expect":"deny","reason":"not allowed"}
Failing cases are printed with FILE:LINE, then "N passed, N failed". Each file is
one simulated guest (docs/manifest.md, "wasmgate test").
Exit 0: all passed; 1: a case failed; 2: bad input (named by FILE:LINE on stderr).
`

// testCase is the part of a cases line that is not a decide input.
type testCase struct {
	expect string
	reason *string
}

// splitCase takes "expect" and "reason" out of a cases line and returns the
// rest, a decide input line.
func splitCase(line []byte) (testCase, []byte, error) {
	var tc testCase
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return tc, nil, fmt.Errorf("bad JSON: %v", err)
	}
	if m == nil {
		return tc, nil, errors.New("bad JSON: not an object")
	}
	raw, ok := m["expect"]
	if !ok {
		return tc, nil, errors.New(`missing "expect" ("allow", "deny" or "would_deny")`)
	}
	if err := json.Unmarshal(raw, &tc.expect); err != nil || (tc.expect != "allow" && tc.expect != "deny" && tc.expect != "would_deny") {
		return tc, nil, fmt.Errorf(`"expect" is %s, want "allow", "deny" or "would_deny"`, raw)
	}
	if raw, ok := m["reason"]; ok {
		var r string
		if err := json.Unmarshal(raw, &r); err != nil {
			return tc, nil, fmt.Errorf(`"reason" is %s, want a string`, raw)
		}
		tc.reason = &r
	}
	delete(m, "expect")
	delete(m, "reason")
	rest, err := json.Marshal(m)
	return tc, rest, err
}

// runCases runs one cases file on s. err is non-nil when the file had bad
// input (already reported on stderr).
func runCases(ctx context.Context, s *decider, path string, stdout, stderr io.Writer) (passed, failed int, err error) {
	defer s.drop()
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "wasmgate test: %v\n", err)
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	var bad error
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		tc, in, err := splitCase(line)
		var out *output
		if err == nil {
			out, err = s.line(ctx, in)
		}
		if err != nil {
			fmt.Fprintf(stderr, "wasmgate test: %s:%d: %v\n", path, n, err)
			bad = err
			continue
		}
		if out.Verdict == tc.expect && (tc.reason == nil || strings.Contains(out.Reason, *tc.reason)) {
			passed++
			continue
		}
		failed++
		want := tc.expect
		if tc.reason != nil {
			want += fmt.Sprintf(" (reason containing %q)", *tc.reason)
		}
		got := out.Verdict
		if out.Plugin != nil && *out.Plugin != "" {
			got += " by " + *out.Plugin
		}
		fmt.Fprintf(stdout, "%s:%d: FAIL %s\n  want %s\n  got  %s (reason %q)\n", path, n, line, want, got, out.Reason)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "wasmgate test: %s:%d: reading: %v\n", path, n+1, err)
		bad = err
	}
	return passed, failed, bad
}
