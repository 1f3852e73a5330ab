package host

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// Test guests are built once per test binary into a temporary directory,
// reusing the Go build cache; compiled machine code is shared through an
// on-disk compilation cache in the same directory.

var (
	guestDir     string
	guestMu      sync.Mutex
	guestBuilt   = map[string][]byte{}
	guestErrs    = map[string]error{}
	testCacheDir string
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "wasmgate-host-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	guestDir = d
	// The compilation cache outlives the test binary so that repeated
	// runs (and -race runs) skip recompiling the big Go guests; Config's
	// default cache goes to a test directory too.
	testenv.IsolateUserCache()
	testCacheDir = testenv.CacheDir("host-wazero")
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// goGuest builds testdata/guests/<name> with GOOS=wasip1 and returns the
// wasm bytes.
func hostGoGuest(t testing.TB, name string) []byte {
	t.Helper()
	guestMu.Lock()
	defer guestMu.Unlock()
	if b, ok := guestBuilt[name]; ok {
		return b
	}
	if err, ok := guestErrs[name]; ok {
		t.Fatal(err)
	}
	out := filepath.Join(guestDir, name+".wasm")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/guests/"+name)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		guestErrs[name] = fmt.Errorf("build guest %s: %v\n%s", name, err, msg)
		t.Fatal(guestErrs[name])
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	guestBuilt[name] = b
	return b
}

// cGuest compiles testdata/guests/<name>/main.c with clang for wasm32-wasi.
// It skips when clang or wasi-libc is missing, unless
// WASMGATE_REQUIRE_TOOLCHAINS is set (CI), where it fails.
func hostCGuest(t testing.TB, name string) []byte {
	t.Helper()
	guestMu.Lock()
	defer guestMu.Unlock()
	if b, ok := guestBuilt["c/"+name]; ok {
		return b
	}
	clang, err := exec.LookPath("clang")
	if err != nil {
		testenv.Missing(t, "clang", err)
	}
	out := filepath.Join(guestDir, name+"-c.wasm")
	src := filepath.Join(repoRoot(t), "testdata", "guests", name, "main.c")
	// Debian's wasi-libc installs into clang's default wasm32-wasi sysroot,
	// so no --sysroot is needed there.
	cmd := exec.Command(clang, "--target=wasm32-wasi", "-O1", "-o", out, src)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build C guest %s: %v\n%s", name, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	guestBuilt["c/"+name] = b
	return b
}

// runGuest runs wasm with cfg (plus the shared cache and captured stdio)
// and returns exit code, stdout, stderr.
func hostRunGuest(t testing.TB, wasm []byte, cfg *Config, timeout time.Duration) (int, string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cfg = cfg.WithCompilationCacheDir(testCacheDir)
	if cfg.stdout == nil {
		cfg = cfg.WithStdout(&out)
	}
	if cfg.stderr == nil {
		cfg = cfg.WithStderr(&errb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	code, err := Run(ctx, wasm, cfg)
	return code, out.String(), errb.String(), err
}

func diffLines(t *testing.T, got, want string) {
	t.Helper()
	g := strings.Split(strings.TrimRight(got, "\n"), "\n")
	w := strings.Split(strings.TrimRight(want, "\n"), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("line %d:\n got: %s\nwant: %s", i+1, gl, wl)
		}
	}
}
