// Package testenv holds what wasmgate's tests share about their
// environment: whether they run under CI, where compiled code is cached
// between runs, and how a test says it cannot run here.
//
// The rule for skips: a test may skip only when an optional toolchain or
// platform feature is absent, and CI (CI or WASMGATE_REQUIRE_TOOLCHAINS set)
// turns a missing toolchain into a failure. A platform that cannot have a
// feature at all skips with Unsupported, whose reason starts with
// UnsupportedPrefix; internal/testreport fails a CI run on any other skip.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// UnsupportedPrefix starts the reason of every skip that CI accepts.
const UnsupportedPrefix = "unsupported platform: "

// CI reports whether missing toolchains and features must fail tests
// instead of skipping them: the CI variable (set by .ci/run and by most CI
// systems) or WASMGATE_REQUIRE_TOOLCHAINS.
func CI() bool {
	return os.Getenv("CI") != "" || os.Getenv("WASMGATE_REQUIRE_TOOLCHAINS") != ""
}

// Missing ends a test that needs something absent from this machine (a
// toolchain, a server binary, a loopback feature): a skip on a developer's
// machine, a failure under CI, where .ci/run installs everything.
func Missing(t testing.TB, what string, err error) {
	t.Helper()
	if CI() {
		t.Fatalf("%s is required under CI: %v", what, err)
	}
	t.Skipf("%s not available: %v (CI fails here)", what, err)
}

// Unsupported skips a test for something this platform cannot have; CI
// accepts such skips.
func Unsupported(t testing.TB, why string) {
	t.Helper()
	t.Skip(UnsupportedPrefix + why)
}

// CacheDir returns a directory that compiled modules are cached in across
// test runs: $WASMGATE_TEST_CACHE/name, or name under a wasmgate-test-cache
// directory in os.TempDir(). Never the user's own cache.
func CacheDir(name string) string {
	base := os.Getenv("WASMGATE_TEST_CACHE")
	if base == "" {
		base = filepath.Join(os.TempDir(), "wasmgate-test-cache")
	}
	return filepath.Join(base, name)
}

// IsolateUserCache points the user cache directory (os.UserCacheDir) of
// this test process and the processes it starts at CacheDir("user"), so
// that code which defaults to ~/.cache/wasmgate writes there and stays warm
// between runs, but never in the user's own cache. It keeps the Go build
// cache where it was, so builds of guests stay warm too. Call it from
// TestMain before m.Run.
func IsolateUserCache() {
	if os.Getenv("GOCACHE") == "" {
		if out, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
			if gc := strings.TrimSpace(string(out)); gc != "" && gc != "off" {
				os.Setenv("GOCACHE", gc)
			}
		}
	}
	dir := CacheDir("user")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", dir) // Linux and the other Unixes but Darwin
	os.Setenv("LocalAppData", dir)   // Windows
	os.Setenv("HOME", dir)           // Darwin: $HOME/Library/Caches
}

// Golden compares got with the golden file at path. With update set (the
// tests' -update flag) it rewrites the file when they differ and logs what
// changed, so that a reviewer sees every blessed change in the test log and
// the diff; the comparison is always with the file as it was before the
// test ran. A golden file that cannot be read fails the test (run with
// -update to create it).
func Golden(t testing.TB, path, got string, update bool) {
	t.Helper()
	want, err := os.ReadFile(path)
	if err != nil && !(update && os.IsNotExist(err)) {
		t.Fatalf("golden file: %v (run the test with -update to create it)", err)
	}
	if got == string(want) {
		return
	}
	if update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("updating golden file: %v", err)
		}
		t.Logf("updated %s; review the change:\n%s", path, lineDiff(string(want), got))
		return
	}
	t.Errorf("output differs from %s (rerun with -update to accept, then review the diff):\n%s--- got\n%s", path, lineDiff(string(want), got), got)
}

// lineDiff lists the lines only in was (-) and only in now (+).
func lineDiff(was, now string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.SplitAfter(s, "\n") {
			m[l]++
		}
		return m
	}
	w, n := count(was), count(now)
	var b strings.Builder
	for _, l := range strings.SplitAfter(was, "\n") {
		if n[l] > 0 {
			n[l]--
		} else if l != "" {
			b.WriteString("- " + strings.TrimSuffix(l, "\n") + "\n")
		}
	}
	for _, l := range strings.SplitAfter(now, "\n") {
		if w[l] > 0 {
			w[l]--
		} else if l != "" {
			b.WriteString("+ " + strings.TrimSuffix(l, "\n") + "\n")
		}
	}
	return b.String()
}
