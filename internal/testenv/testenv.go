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
