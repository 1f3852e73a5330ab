package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/testenv"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Guests of the socket tests are built once per test binary and the
// wazero compilation cache is shared on disk, so that only the first test
// pays for compiling an 11 MB Go guest.

var (
	sockGuestOnce sync.Once
	sockProbe     []byte // testdata/sockguests/probe: TCP, UDP, DNS
	sockWebProbe  []byte // testdata/sockguests/webprobe: net/http
	sockGuestErr  error
	sockCacheDir  = testenv.CacheDir("host-sock-wazero")
)

// buildSockGuests builds the Go guests once per test binary and compiles
// them into the shared on-disk cache with a non-race helper
// (testdata/sockguests/precompile): under -race, wazero's own compiler is
// slow enough to dominate the package's test time.
func buildSockGuests(t testing.TB) {
	t.Helper()
	sockGuestOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wasmgate-sockguests")
		if err != nil {
			sockGuestErr = err
			return
		}
		var paths []string
		for _, g := range []string{"probe", "webprobe"} {
			out := filepath.Join(dir, g+".wasm")
			cmd := exec.Command("go", "build", "-o", out, "../testdata/sockguests/"+g)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				sockGuestErr = fmt.Errorf("go build %s: %v\n%s", g, err, b)
				return
			}
			paths = append(paths, out)
		}
		cmd := exec.Command("go", "test", "-count=1", "../testdata/sockguests/precompile")
		cmd.Env = append(os.Environ(), "WASMGATE_PRECOMPILE_CACHE="+sockCacheDir,
			"WASMGATE_PRECOMPILE_FILES="+strings.Join(paths, string(filepath.ListSeparator)))
		if b, err := cmd.CombinedOutput(); err != nil {
			sockGuestErr = fmt.Errorf("precompile: %v\n%s", err, b)
			return
		}
		if sockProbe, err = os.ReadFile(paths[0]); err != nil {
			sockGuestErr = err
			return
		}
		sockWebProbe, sockGuestErr = os.ReadFile(paths[1])
		os.RemoveAll(dir)
	})
	if sockGuestErr != nil {
		t.Fatalf("building the socket test guests: %v", sockGuestErr)
	}
}

func probeWasm(t testing.TB) []byte    { buildSockGuests(t); return sockProbe }
func webProbeWasm(t testing.TB) []byte { buildSockGuests(t); return sockWebProbe }

var cGuestMu sync.Mutex

// cGuest compiles testdata/sockguests/NAME/main.c with clang for
// wasm32-wasi. Without clang the test is skipped, unless
// WASMGATE_REQUIRE_TOOLCHAINS is set (CI), where it fails.
func cGuest(t testing.TB, name string) []byte {
	t.Helper()
	cGuestMu.Lock()
	defer cGuestMu.Unlock()
	if _, err := exec.LookPath("clang"); err != nil {
		testenv.Missing(t, "clang", err)
	}
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command("clang", "--target=wasm32-wasi", "-O1", "-o", out,
		filepath.Join("..", "testdata", "sockguests", name, "main.c"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lines collects a guest's stdout and lets a test wait for a line.
type lines struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	all  []string
	cond chan struct{}
}

func newLines() *lines { return &lines{cond: make(chan struct{}, 1)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	for {
		s := l.buf.String()
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		l.all = append(l.all, s[:i])
		l.buf.Next(i + 1)
	}
	l.mu.Unlock()
	select {
	case l.cond <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n") + l.buf.String()
}

// wait returns the first line starting with prefix, waiting up to d.
func (l *lines) wait(t *testing.T, prefix string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		l.mu.Lock()
		for _, s := range l.all {
			if strings.HasPrefix(s, prefix) {
				l.mu.Unlock()
				return s
			}
		}
		l.mu.Unlock()
		select {
		case <-l.cond:
		case <-deadline:
			t.Fatalf("no line %q within %v; output so far:\n%s", prefix, d, l.String())
		}
	}
}

// guestRun is a guest running in the background.
// guestDeadline bounds one guest run in the socket tests.
const guestDeadline = 5 * time.Minute

type guestRun struct {
	out    *lines
	done   chan struct{}
	code   int
	err    error
	cancel context.CancelFunc
}

func startGuest(t *testing.T, wasm []byte, cfg *Config, args ...string) *guestRun {
	t.Helper()
	// Generous: the deadline includes compiling the guest, which is slow
	// under -race with a cold cache on a busy machine (CI); it only has to
	// catch a hang.
	ctx, cancel := context.WithTimeout(context.Background(), guestDeadline)
	g := &guestRun{out: newLines(), done: make(chan struct{}), cancel: cancel}
	cfg = cfg.WithArgs(append([]string{"guest"}, args...)...).
		WithStdout(g.out).WithStderr(g.out).WithCompilationCacheDir(sockCacheDir)
	go func() {
		defer close(g.done)
		g.code, g.err = Run(ctx, wasm, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		<-g.done
	})
	return g
}

// finish waits for the guest to exit and returns its output.
func (g *guestRun) finish(t *testing.T) string {
	t.Helper()
	select {
	case <-g.done:
	case <-time.After(guestDeadline + 10*time.Second):
		t.Fatalf("guest did not finish; output:\n%s", g.out.String())
	}
	return g.out.String()
}

func runGuest(t *testing.T, wasm []byte, cfg *Config, args ...string) (string, int) {
	t.Helper()
	g := startGuest(t, wasm, cfg, args...)
	out := g.finish(t)
	if g.err != nil {
		t.Fatalf("run: %v\n%s", g.err, out)
	}
	return out, g.code
}

// allowLoopback is a policy that allows everything on loopback addresses
// and names, and denies the rest. Tests never reach beyond loopback.
func allowLoopback(ctx context.Context, req *network.Request) (network.Verdict, error) {
	if req.Addr.IsValid() && !req.Addr.Unmap().IsLoopback() && !req.Addr.IsUnspecified() {
		return network.Verdict{Verdict: policy.ActionDeny, Reason: "not loopback"}, nil
	}
	return network.Verdict{Verdict: policy.ActionAllow}, nil
}

// openFds counts this process's open file descriptors.
func openFds(t testing.TB) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		testenv.Missing(t, "/proc/self/fd", err)
	}
	return len(des)
}

var sockProbes sync.Map // guest name -> func() ([]byte, error)

// sockProbeWasm builds testdata/sockguests/NAME once per test binary and
// precompiles it into the shared cache (see buildSockGuests).
func sockProbeWasm(t testing.TB, name string) []byte {
	t.Helper()
	f, _ := sockProbes.LoadOrStore(name, sync.OnceValues(func() ([]byte, error) {
		dir, err := os.MkdirTemp("", "wasmgate-"+name)
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, name+".wasm")
		cmd := exec.Command("go", "build", "-o", out, "../testdata/sockguests/"+name)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", name, err, b)
		}
		cmd = exec.Command("go", "test", "-count=1", "../testdata/sockguests/precompile")
		cmd.Env = append(os.Environ(), "WASMGATE_PRECOMPILE_CACHE="+sockCacheDir, "WASMGATE_PRECOMPILE_FILES="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("precompile %s: %v\n%s", name, err, b)
		}
		return os.ReadFile(out)
	}))
	wasm, err := f.(func() ([]byte, error))()
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// cacheFiles lists the files of an on-disk compilation cache.
func cacheFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files[p] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// The precompile step fills the cache with exactly what host.Run looks up,
// in both interruption modes: running the guests afterwards (under -race
// here) compiles nothing new.
func TestPrecompileWarmsCache(t *testing.T) {
	wasms := [][]byte{probeWasm(t), webProbeWasm(t)}
	before := cacheFiles(t, sockCacheDir)
	for _, wasm := range wasms {
		for _, interrupt := range []bool{true, false} {
			cfg := NewConfig().WithCompilationCacheDir(sockCacheDir).WithCloseOnContextDone(interrupt).
				WithStdout(io.Discard).WithStderr(io.Discard)
			if _, err := Run(context.Background(), wasm, cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The rewrite cache is keyed on the executable too (startup.go), so
	// this test binary rewrites again (milliseconds); the compile, which
	// is what takes minutes under -race, must be cached.
	for f := range cacheFiles(t, sockCacheDir) {
		if !before[f] && !strings.Contains(f, rewriteCacheSubdir) {
			t.Errorf("running a precompiled guest compiled %s", f)
		}
	}
}

// tcpEcho starts a native TCP echo server on 127.0.0.1 for the test and
// returns its address.
func tcpEcho(t *testing.T) string {
	return serveTCP(t, func(c net.Conn) { io.Copy(c, c) })
}

// serveTCP serves each connection to a new listener on 127.0.0.1 with
// handle, on its own goroutine, and closes it after; the listener closes
// with the test. It returns the listener's address.
func serveTCP(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}
