package main

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
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/host"
	"github.com/wasmgate/wasmgate/internal/testenv"
	"golang.org/x/sys/unix"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// guestPkgs are the guests guestWasm builds, by name, as package paths
// relative to the module root.
var guestPkgs = map[string]string{
	"hello": "./testdata/guests/hello",
	"spin":  "./testdata/guests/spin",
	"probe": "./testdata/sockguests/probe",
	"demo":  "./demo/guest", // net/http over sdk/socket
}

// guestWasm builds the guests of guestPkgs for wasip1 (all of them, once
// per test binary) and returns the path of name's .wasm file.
func guestWasm(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "wasmgate-cli-test")
		if buildErr != nil {
			return
		}
		for name, pkg := range guestPkgs {
			cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, name+".wasm"), pkg)
			cmd.Dir = filepath.Join("..", "..")
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("%v\n%s", err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name+".wasm")
}

func TestMain(m *testing.M) {
	testenv.IsolateUserCache() // the CLI's default caches
	code := m.Run()
	testenv.StopRegistry() // started by the distribution tests, if any
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if multiPath != "" {
		os.RemoveAll(filepath.Dir(multiPath))
	}
	os.Exit(code)
}

// trapWasm is this module, hand-assembled:
//
//	(module (func (export "_start") unreachable))
var trapWasm = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
	0x03, 0x02, 0x01, 0x00, // func 0 has type 0
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export
	0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable, end
}

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunHello(t *testing.T) {
	wasm := guestWasm(t, "hello")
	code, out, errOut := runCLI(t, "", "run", "--env", "A=b=c", "--env", "EXIT=5", wasm, "x", "--not-a-flag")
	if code != 5 {
		t.Errorf("exit %d, want 5; stderr %s", code, errOut)
	}
	want := "hello [x --not-a-flag]\nenv A=b=c\nenv EXIT=5\n"
	if out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
}

func TestRunTimeout(t *testing.T) {
	wasm := guestWasm(t, "spin")
	warmDefaultCache(t, wasm) // so that the timeout is spent running, not compiling
	code, out, errOut := runCLI(t, "", "run", "--timeout", "5s", wasm)
	if code != exitTimeout {
		t.Errorf("exit %d, want %d; stderr %s", code, exitTimeout, errOut)
	}
	if out != "spinning\n" || !strings.Contains(errOut, "deadline exceeded") {
		t.Errorf("stdout %q stderr %q", out, errOut)
	}
}

func TestRunTrap(t *testing.T) {
	p := filepath.Join(t.TempDir(), "trap.wasm")
	if err := os.WriteFile(p, trapWasm, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "", "run", "--no-cache", p)
	if code != exitTrap {
		t.Errorf("exit %d, want %d", code, exitTrap)
	}
	for _, want := range []string{"unreachable", "wasm stack trace"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q: %s", want, errOut)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"run"}, exitUsage, "missing WASM"},
		{[]string{"run", "--bogus", "x.wasm"}, exitUsage, "bogus"},
		{[]string{"run", "--env", "NOEQUALS", "x.wasm"}, exitUsage, "want K=V"},
		{[]string{"run", "--dir", ":/x", "x.wasm"}, exitUsage, "HOST[:GUEST]"},
		{[]string{"run", "--audit", "-", "x.wasm"}, exitUsage, "--audit needs --policy"},
		{[]string{"run", "/nonexistent/x.wasm"}, exitHost, "no such file"},
	} {
		code, _, errOut := runCLI(t, "", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

func TestParseDir(t *testing.T) {
	for _, tc := range []struct {
		in, host, guest string
		ro, bad         bool
	}{
		{"/a", "/a", "/a", false, false},
		{"/a:/b", "/a", "/b", false, false},
		{"/a:/b:ro", "/a", "/b", true, false},
		{"/a:ro", "/a", "/a", true, false},
		{".:/", ".", "/", false, false},
		{"", "", "", false, true},
		{":/b", "", "", false, true},
		{"/a:", "", "", false, true},
	} {
		h, g, ro, err := parseDir(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && (h != tc.host || g != tc.guest || ro != tc.ro)) {
			t.Errorf("parseDir(%q) = %q %q %v %v", tc.in, h, g, ro, err)
		}
	}
}

// warmDefaultCache compiles the module into the default on-disk cache with
// the runtime settings host.Run uses, so a later `run` finds it compiled.
func warmDefaultCache(t *testing.T, path string) {
	t.Helper()
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Run the guest exactly as the CLI will (default cache dir, the same
	// interruption rewrite) until it writes anything, so that both the
	// rewrite cache and wazero's compilation cache hold what the timed run
	// needs.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := host.NewConfig().WithStdout(cancelWriter(cancel)).WithStderr(cancelWriter(cancel))
	if _, err := host.Run(ctx, wasm, cfg); err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
}

// cancelWriter cancels its context on the first write.
type cancelWriter context.CancelFunc

func (c cancelWriter) Write(p []byte) (int, error) {
	c()
	return len(p), nil
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SIGINT cancels the guest (exit 130) instead of killing wasmgate.
func TestRunInterrupt(t *testing.T) {
	wasm := guestWasm(t, "spin")
	warmDefaultCache(t, wasm)
	var out, errb syncBuf
	done := make(chan int)
	go func() { done <- run([]string{"run", wasm}, strings.NewReader(""), &out, &errb) }()
	deadline := time.Now().Add(time.Minute)
	for out.String() != "spinning\n" {
		if time.Now().After(deadline) {
			t.Fatal("guest did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitSignal {
			t.Errorf("exit %d, want %d; stderr %s", code, exitSignal, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("SIGINT did not stop the guest")
	}
}

// Without --policy every network operation is denied, and run says so once.
func TestRunNoPolicyDeniesNetwork(t *testing.T) {
	wasm := guestWasm(t, "probe")
	code, out, errOut := runCLI(t, "", "run", wasm, "dial", "127.0.0.1:9", "--", "dial", "127.0.0.1:9")
	if code != 1 {
		t.Errorf("exit %d, want 1 (both dials fail)", code)
	}
	if strings.Count(strings.ToLower(out), "permission denied") != 2 {
		t.Errorf("stdout %q: want two permission-denied dials", out)
	}
	if n := strings.Count(errOut, "network access denied: no --policy given"); n != 1 {
		t.Errorf("notice printed %d times; stderr %q", n, errOut)
	}
}

// nopPluginWasm is a plugin that loads and never decides, hand-assembled:
//
//	(module (func (export "decide") (result i32) i32.const 0))
var nopPluginWasm = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () -> i32
	0x03, 0x02, 0x01, 0x00, // func 0 has type 0
	0x07, 0x0a, 0x01, 0x06, 'd', 'e', 'c', 'i', 'd', 'e', 0x00, 0x00, // export
	0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x00, 0x0b, // body: i32.const 0, end
}

// filesUnder lists the regular files below dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// --no-cache leaves the on-disk caches alone, for the guest and for every
// plugin; without it both are cached.
func TestRunNoCache(t *testing.T) {
	dir := t.TempDir()
	guest, plugin := filepath.Join(dir, "trap.wasm"), filepath.Join(dir, "nop.wasm")
	manifest := filepath.Join(dir, "policy.toml")
	for p, b := range map[string][]byte{guest: trapWasm, plugin: nopPluginWasm,
		manifest: []byte("default = \"deny\"\n[[plugins]]\nname = \"nop\"\npath = \"nop.wasm\"\n")} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args   []string
		cached bool
	}{
		{[]string{"run", "--no-cache", "--policy", manifest, guest}, false},
		{[]string{"run", "--policy", manifest, guest}, true},
	} {
		cache := t.TempDir()
		t.Setenv("XDG_CACHE_HOME", cache)
		if code, _, errOut := runCLI(t, "", tc.args...); code != exitTrap {
			t.Fatalf("%v: exit %d, want %d (trap); stderr %s", tc.args, code, exitTrap, errOut)
		}
		files := filesUnder(t, cache)
		if !tc.cached && len(files) > 0 {
			t.Errorf("--no-cache wrote %q", files)
		}
		// The guest's cache is wasmgate/wazero/ (host.Config), the
		// plugins' is wasmgate/ (plugins.Options).
		var guestCached, pluginCached bool
		for _, f := range files {
			rel, _ := filepath.Rel(cache, f)
			inGuest := strings.HasPrefix(rel, filepath.Join("wasmgate", "wazero")+string(filepath.Separator))
			guestCached = guestCached || inGuest
			pluginCached = pluginCached || !inGuest
		}
		if tc.cached && (!guestCached || !pluginCached) {
			t.Errorf("without --no-cache: guest cached %v, plugin cached %v: %q", guestCached, pluginCached, files)
		}
	}
}

// serverRun is a `wasmgate run` of the probe guest as a server on a
// --listen socket, under an allowlist that allows binding it and
// accepting connections from loopback.
type serverRun struct {
	port      int
	out, errb syncBuf
	done      chan int // the exit code
}

// startServer runs `wasmgate run --policy ... --listen 127.0.0.1:PORT
// FLAGS... probe GUESTARGS...` in the background on a free port.
func startServer(t *testing.T, flags []string, guestArgs ...string) *serverRun {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return startServerOn(t, fmt.Sprintf("127.0.0.1:%d", port), port, flags, guestArgs...)
}

// startServerOn is startServer with the --listen argument given: an
// address with the port, or "fd:N" for a listener at port.
func startServerOn(t *testing.T, listen string, port int, flags []string, guestArgs ...string) *serverRun {
	t.Helper()
	wasm := guestWasm(t, "probe")
	s := &serverRun{port: port, done: make(chan int, 1)}
	manifest := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`default = "deny"
[[plugins]]
name = "server"
use = "allowlist"
[plugins.config]
rules = ["bind tcp://127.0.0.1:%d", "accept tcp://127.0.0.1"]
`, s.port)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "--policy", manifest, "--listen", listen}, flags...)
	args = append(append(args, wasm), guestArgs...)
	go func() { s.done <- run(args, strings.NewReader(""), &s.out, &s.errb) }()
	return s
}

// waitOutput waits until the guest's stdout contains want.
func (s *serverRun) waitOutput(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(s.out.String(), want); time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-s.done:
			t.Fatalf("exit %d before %q: stdout %s stderr %s", code, want, s.out.String(), s.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q; stdout %s stderr %s", want, s.out.String(), s.errb.String())
		}
	}
}

// --dir and --listen through the CLI: the guest takes one connection on
// the listener the host opened, writes what it read into the read-write
// preopen, answers with a file from it, and cannot write the read-only one.
func TestRunDirAndListen(t *testing.T) {
	rw, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(rw, "in.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, []string{"--dir", rw + ":/data", "--dir", ro + ":/ro:ro"},
		"servefile", "/data", "--", "writefile", "/ro/x.txt", "x")
	s.waitOutput(t, "listening")
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("from the client\n")); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(c)
	if err != nil || string(reply) != "from the host\n" {
		t.Errorf("reply %q, %v", reply, err)
	}
	if code := <-s.done; code != 1 {
		t.Errorf("exit %d, want 1 (the write to /ro fails); stderr %s", code, s.errb.String())
	}
	if got, err := os.ReadFile(filepath.Join(rw, "got.txt")); err != nil || string(got) != "from the client\n" {
		t.Errorf("got.txt: %q, %v", got, err)
	}
	if !strings.Contains(s.out.String(), "[1] error: open /ro/x.txt: Read-only file system") {
		t.Errorf("stdout %q: want the write to the read-only preopen refused", s.out.String())
	}
	if _, err := os.Stat(filepath.Join(ro, "x.txt")); !os.IsNotExist(err) {
		t.Errorf("a file appeared in the read-only preopen: %v", err)
	}
}

// TestRunListenFd: `--listen fd:N` hands the guest the listening socket
// the process inherited at fd N (socket activation), decided like a
// --listen socket; fds that are not an inherited TCP listener are refused
// with a message that says so.
func TestRunListenFd(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A raw duplicate that no *os.File owns: run closes it, and no
	// finalizer may close the number again later (it would hit whatever
	// descriptor the number went to next: once, a later test's listener).
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	rw := t.TempDir()
	if err := os.WriteFile(filepath.Join(rw, "in.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServerOn(t, fmt.Sprintf("fd:%d", fd), l.Addr().(*net.TCPAddr).Port, []string{"--dir", rw + ":/data"}, "servefile", "/data")
	s.waitOutput(t, "listening")
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("from the client\n")); err != nil {
		t.Fatal(err)
	}
	if reply, err := io.ReadAll(c); err != nil || string(reply) != "from the host\n" {
		t.Errorf("reply %q, %v: the guest did not serve the inherited listener", reply, err)
	}
	if code := <-s.done; code != 0 {
		t.Errorf("exit %d; stderr %s", code, s.errb.String())
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Errorf("fd %d is still open after the run: the inherited descriptor leaks", fd)
	}

	wasm := guestWasm(t, "hello")
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeR.Close()
	defer pipeW.Close()
	pipeFd, err := syscall.Dup(int(pipeR.Fd())) // run closes it
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ arg, want string }{
		{"fd:x", "want fd:N"},
		{"fd:1", "want fd:N"},
		{fmt.Sprintf("fd:%d", pipeFd), "not a listening socket"},
		{"fd:1000000", "not a listening socket"},
	} {
		code, _, errOut := runCLI(t, "", "run", "--listen", c.arg, wasm)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("--listen %s: exit %d, stderr %q; want usage error with %q", c.arg, code, errOut, c.want)
		}
	}
}
