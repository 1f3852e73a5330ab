package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// The official WebAssembly WASI test suite (prebuilt wasm32-wasip1
// programs) run through `wasmgate run` exactly as a user would, by the
// wasmgate binary built from this package: every program must pass. (A
// separate process rather than run() in this test binary: under -race,
// compiling the 72 modules in process takes minutes instead of seconds.) The suite is not part of this repository; it is
// looked for as shared/wasi-testsuite beside the repository or one of its
// parent directories (../shared/wasi-testsuite in CI), or where
// WASI_TESTSUITE points. Without it the test skips, except under CI
// (CI=true, or WASMGATE_REQUIRE_TOOLCHAINS set), where it fails.

// wasiSuitePrograms is how many programs the suite this project pins
// holds (its README: 12 AssemblyScript, 14 C, 46 Rust).
const wasiSuitePrograms = 72

// wasiSpec is a test's NAME.json (the suite's README documents the keys).
type wasiSpec struct {
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	Root     string            `json:"root"`
	ExitCode *int              `json:"exit_code"`
	Stdout   *string           `json:"stdout"`
	Stderr   *string           `json:"stderr"`
}

func TestWASITestsuite(t *testing.T) {
	dir, pinned := wasiSuiteDir(t)
	progs, err := filepath.Glob(filepath.Join(dir, "*", "*.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(progs)
	if pinned && len(progs) != wasiSuitePrograms {
		t.Fatalf("%s holds %d programs, want %d: the suite changed; update wasiSuitePrograms and README's Known limits", dir, len(progs), wasiSuitePrograms)
	}
	if len(progs) == 0 {
		t.Fatalf("no */*.wasm programs under %s", dir)
	}
	bin := filepath.Join(t.TempDir(), "wasmgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Compiled guests are cached between runs, outside the user's cache.
	env := append(os.Environ(), "XDG_CACHE_HOME="+testenv.CacheDir("wasi-testsuite"))
	t.Logf("running %d programs of %s", len(progs), dir)
	for _, prog := range progs {
		name := filepath.Base(filepath.Dir(prog)) + "/" + strings.TrimSuffix(filepath.Base(prog), ".wasm")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runWASITest(t, bin, env, prog)
		})
	}
}

// wasiSuiteDir finds the suite, or skips (fails under CI). pinned reports
// whether it is the copy this project pins (not a WASI_TESTSUITE override).
func wasiSuiteDir(t *testing.T) (dir string, pinned bool) {
	if d := os.Getenv("WASI_TESTSUITE"); d != "" {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("WASI_TESTSUITE=%s: %v", d, err)
		}
		return d, false
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for d := root; ; d = filepath.Dir(d) {
		cand := filepath.Join(filepath.Dir(d), "shared", "wasi-testsuite")
		if fi, err := os.Stat(cand); err == nil && fi.IsDir() {
			return cand, true
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	msg := "the WASI test suite is not here: looked for shared/wasi-testsuite beside " + root +
		" and its parent directories; set WASI_TESTSUITE=DIR to point at a copy"
	testenv.Missing(t, "the WASI test suite", errors.New(msg))
	return "", false
}

// runWASITest runs one program as the suite's own runner does: argv after
// argv[0] and the whole environment from the spec (the guest inherits
// nothing), its root fixtures copied afresh and preopened as "/", stdin an
// empty closed pipe; the exit code must match and stdout/stderr start with
// what the spec gives.
func runWASITest(t *testing.T, bin string, env []string, prog string) {
	var spec wasiSpec
	if b, err := os.ReadFile(strings.TrimSuffix(prog, ".wasm") + ".json"); err == nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			t.Fatalf("%s.json: %v", strings.TrimSuffix(prog, ".wasm"), err)
		}
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	args := []string{"run", "--timeout", "2m"}
	if spec.Root != "" {
		root := filepath.Join(t.TempDir(), "root")
		if err := copyTree(filepath.Join(filepath.Dir(prog), spec.Root), root); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--dir", root+":/")
	}
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--env", k+"="+spec.Env[k])
	}
	args = append(append(args, prog), spec.Args...)

	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stdin, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	defer stdin.Close()
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}

	want := 0
	if spec.ExitCode != nil {
		want = *spec.ExitCode
	}
	var problems []string
	if code != want {
		problems = append(problems, fmt.Sprintf("exit code %d, want %d", code, want))
	}
	if spec.Stdout != nil && !strings.HasPrefix(stdout.String(), *spec.Stdout) {
		problems = append(problems, fmt.Sprintf("stdout %q, want it to start with %q", stdout.String(), *spec.Stdout))
	}
	if spec.Stderr != nil && !strings.HasPrefix(stderr.String(), *spec.Stderr) {
		problems = append(problems, fmt.Sprintf("stderr does not start with %q", *spec.Stderr))
	}
	if len(problems) > 0 {
		t.Errorf("wasmgate %s\n%s\nstderr:\n%s", strings.Join(args, " "), strings.Join(problems, "\n"), stderr.String())
	}
}

// copyTree copies the fixture directory src to dst, files and directories
// made writable by their owner (the suite's runner copies the same way; the
// shared copy may be read-only).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case de.IsDir():
			return os.MkdirAll(target, 0o755)
		case de.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case de.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return fmt.Errorf("%s: unexpected file type %v in fixtures", p, de.Type())
	})
}
