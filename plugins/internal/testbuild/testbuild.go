// Package testbuild builds Go wasm plugins for tests, once per test binary,
// and shares one wazero compilation cache between them so that repeated
// compiles of the same plugin stay cheap under -race.
package testbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
	dir   string
	cache wazero.CompilationCache
)

// ModuleRoot returns the repository root (the directory holding go.mod).
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Cache returns a compilation cache shared by the whole test binary.
func Cache() wazero.CompilationCache {
	mu.Lock()
	defer mu.Unlock()
	if cache == nil {
		// On disk, so that repeated test runs skip the slow compile of Go
		// plugins (seconds under -race); in memory if that fails.
		c, err := wazero.NewCompilationCacheWithDir(testenv.CacheDir("plugins-wazero"))
		if err != nil {
			c = wazero.NewCompilationCache()
		}
		cache = c
	}
	return cache
}

// Plugin builds the plugin package at pkg (relative to the module root, e.g.
// "plugins/internal/testplugins/multi") with GOOS=wasip1 -buildmode=c-shared
// and returns the path of the .wasm file.
func Plugin(t testing.TB, pkg string) string {
	t.Helper()
	mu.Lock()
	if p, ok := built[pkg]; ok {
		mu.Unlock()
		return p
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "wasmgate-testplugins-")
		if err != nil {
			mu.Unlock()
			t.Fatal(err)
		}
		dir = d
	}
	out := filepath.Join(dir, strings.ReplaceAll(pkg, "/", "_")+".wasm")
	mu.Unlock()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building %s: no go tool in PATH: %v", pkg, err)
	}
	cmd := exec.Command(goTool, "build", "-buildmode=c-shared",
		"-trimpath", "-ldflags=-s -w", "-o", out, "./"+pkg)
	cmd.Dir = ModuleRoot()
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	mu.Lock()
	built[pkg] = out
	mu.Unlock()
	return out
}

// Plugins builds several plugin packages in parallel (each build is
// single-threaded at the link step) and returns their paths in order.
func Plugins(t testing.TB, pkgs ...string) []string {
	t.Helper()
	out := make([]string, len(pkgs))
	var wg sync.WaitGroup
	errs := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ft := &fatalCatcher{TB: t}
			func() {
				defer func() { recover() }()
				out[i] = Plugin(ft, pkg)
			}()
			errs[i] = ft.msg
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Fatal(e)
		}
	}
	return out
}

// fatalCatcher turns Fatal in a helper goroutine into a recorded message.
type fatalCatcher struct {
	testing.TB
	msg string
}

func (f *fatalCatcher) Helper() {}

func (f *fatalCatcher) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(f)
}

func (f *fatalCatcher) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// Bytes is Plugin followed by reading the file.
func Bytes(t testing.TB, pkg string) []byte {
	t.Helper()
	b, err := os.ReadFile(Plugin(t, pkg))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Cleanup removes the built plugins; call it from TestMain after m.Run.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
		built = map[string]string{}
	}
}
