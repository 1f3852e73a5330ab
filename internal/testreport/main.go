// Command testreport reads `go test -json` on stdin and prints a short
// report: one line per package, the full output of every failed test, and
// at the end every skipped test with its reason. It exits 1 when a test or
// package failed, when the input ends before every package reported, or,
// under CI (CI or WASMGATE_REQUIRE_TOOLCHAINS set), when a test skipped for
// any reason but an unsupported platform (internal/testenv.Unsupported):
// CI installs every toolchain and feature the tests need, so any other skip
// hides a test that did not run.
//
//	go test -race -json ./... | go run ./internal/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type result struct {
	pkg, test string
	why       string // skip reason or failure output
}

type report struct {
	out      map[string]*strings.Builder // by package + "\x00" + test
	started  map[string]bool             // packages with a start event
	finished map[string]bool
	fails    []result
	skips    []result
	pkgFails []result
}

func main() {
	code, err := run(os.Stdin, os.Stdout, testenv.CI())
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(in io.Reader, w io.Writer, ci bool) (int, error) {
	r := &report{out: map[string]*strings.Builder{}, started: map[string]bool{}, finished: map[string]bool{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(w, "%s\n", line) // not test2json: build errors and the like
			continue
		}
		r.add(w, &e)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return r.finish(w, ci), nil
}

func (r *report) add(w io.Writer, e *event) {
	key := e.Package + "\x00" + e.Test
	switch e.Action {
	case "start":
		r.started[e.Package] = true
	case "output":
		b := r.out[key]
		if b == nil {
			b = new(strings.Builder)
			r.out[key] = b
		}
		b.WriteString(e.Output)
	case "pass", "fail", "skip":
		// test2json reports a test's result when it sees the "--- FAIL"
		// line, before the messages printed under it: keep collecting,
		// and read the output at the end.
		if e.Action == "pass" {
			delete(r.out, key)
		}
		if e.Test == "" {
			r.finished[e.Package] = true
			fmt.Fprintf(w, "%-4s %s %.1fs\n", map[string]string{"pass": "ok", "fail": "FAIL", "skip": "--"}[e.Action], e.Package, e.Elapsed)
			if e.Action == "fail" {
				r.pkgFails = append(r.pkgFails, result{e.Package, "", ""})
			}
			return
		}
		switch e.Action {
		case "fail":
			r.fails = append(r.fails, result{e.Package, e.Test, ""})
		case "skip":
			r.skips = append(r.skips, result{e.Package, e.Test, ""})
		}
	}
}

// skipReason is what a skipped test logged, without the framing lines.
func skipReason(out string) string {
	var why []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		// "file_test.go:12: reason" -> "reason"
		if i := strings.Index(t, ".go:"); i >= 0 {
			if j := strings.Index(t[i+4:], ": "); j >= 0 {
				t = t[i+4+j+2:]
			}
		}
		why = append(why, t)
	}
	if len(why) == 0 {
		return "(no reason given)"
	}
	return strings.Join(why, " / ")
}

// output is everything printed for a test (or, with test "", for its
// package outside any test).
func (r *report) output(pkg, test string) string {
	if b := r.out[pkg+"\x00"+test]; b != nil {
		return b.String()
	}
	return ""
}

func (r *report) finish(w io.Writer, ci bool) int {
	code := 0
	for _, f := range r.fails {
		fmt.Fprintf(w, "\n=== FAIL %s %s\n%s", f.pkg, f.test, r.output(f.pkg, f.test))
		code = 1
	}
	for _, f := range r.pkgFails {
		if !hasTestFail(r.fails, f.pkg) {
			fmt.Fprintf(w, "\n=== FAIL %s (package)\n%s", f.pkg, r.output(f.pkg, ""))
		}
		code = 1
	}
	for i := range r.skips {
		r.skips[i].why = skipReason(r.output(r.skips[i].pkg, r.skips[i].test))
	}
	var unfinished []string
	for p := range r.started {
		if !r.finished[p] {
			unfinished = append(unfinished, p)
		}
	}
	sort.Strings(unfinished)
	for _, p := range unfinished {
		fmt.Fprintf(w, "\n=== FAIL %s: no result (the test binary died?)\n", p)
		code = 1
	}
	if len(r.skips) > 0 {
		fmt.Fprintf(w, "\nskipped tests (%d):\n", len(r.skips))
		bad := 0
		for _, s := range r.skips {
			mark := " "
			if !strings.HasPrefix(s.why, testenv.UnsupportedPrefix) {
				mark = "!"
				bad++
			}
			fmt.Fprintf(w, "%s %s %s: %s\n", mark, s.pkg, s.test, s.why)
		}
		if bad > 0 && ci {
			fmt.Fprintf(w, "%d tests marked ! skipped under CI for a reason other than an unsupported platform: CI must run them\n", bad)
			code = 1
		}
	}
	if code == 0 {
		fmt.Fprintf(w, "\nall tests passed (%d packages)\n", len(r.finished))
	}
	return code
}

func hasTestFail(fails []result, pkg string) bool {
	for _, f := range fails {
		if f.pkg == pkg {
			return true
		}
	}
	return false
}
