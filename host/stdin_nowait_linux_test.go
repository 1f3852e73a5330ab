//go:build linux

package host

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// noBlock runs f and fails the test if it has not returned within 5 s: a
// read that should not block did.
func noBlock(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

func TestReadNowaitPipe(t *testing.T) {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil { // blocking mode, like an inherited stdin
		t.Fatal(err)
	}
	r := os.NewFile(uintptr(p[0]), "r") // owns p[0] from here on
	defer r.Close()
	if !nowaitCapable(r) {
		t.Fatal("a pipe is not nowait-capable")
	}
	var n int
	var err error
	noBlock(t, "read of an empty blocking pipe", func() { n, err = readNowait(p[0], [][]byte{make([]byte, 8)}) })
	if errors.Is(err, errNowaitUnsupported) {
		testenv.Unsupported(t, "kernel without RWF_NOWAIT for pipes")
	}
	if n != 0 || !errors.Is(err, syscall.EAGAIN) || !isEAGAIN(err) {
		t.Fatalf("empty pipe: %d, %v; want EAGAIN", n, err)
	}

	if _, err := syscall.Write(p[1], []byte("hello world")); err != nil {
		t.Fatal(err)
	}
	a, b := make([]byte, 4), make([]byte, 16)
	noBlock(t, "read of a pipe with data", func() { n, err = readNowait(p[0], [][]byte{a, nil, b}) })
	if err != nil || n != 11 || string(a) != "hell" || string(b[:7]) != "o world" {
		t.Fatalf("got %d, %v, %q %q", n, err, a, b[:7])
	}
	// One read only: less data than asked is returned as is.
	if _, err := syscall.Write(p[1], []byte("x")); err != nil {
		t.Fatal(err)
	}
	noBlock(t, "short read", func() { n, err = readNowait(p[0], [][]byte{make([]byte, 64)}) })
	if n != 1 || err != nil {
		t.Fatalf("short read: %d, %v", n, err)
	}
	syscall.Close(p[1])
	noBlock(t, "read at EOF", func() { n, err = readNowait(p[0], [][]byte{make([]byte, 8)}) })
	if n != 0 || err != nil {
		t.Fatalf("EOF: %d, %v; want 0, nil", n, err)
	}
}

func TestReadNowaitSocket(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[1])
	f := os.NewFile(uintptr(fds[0]), "s")
	defer f.Close()
	if !nowaitCapable(f) {
		t.Fatal("a socket is not nowait-capable")
	}
	var n int
	noBlock(t, "read of an empty socket", func() { n, err = readNowait(fds[0], [][]byte{make([]byte, 8)}) })
	if errors.Is(err, errNowaitUnsupported) {
		testenv.Unsupported(t, "kernel without RWF_NOWAIT for sockets")
	}
	if n != 0 || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("empty socket: %d, %v; want EAGAIN", n, err)
	}
	if _, err := syscall.Write(fds[1], []byte("ab")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	noBlock(t, "read of a socket with data", func() { n, err = readNowait(fds[0], [][]byte{buf}) })
	if n != 2 || err != nil || string(buf[:2]) != "ab" {
		t.Fatalf("got %d, %v, %q", n, err, buf[:n])
	}
	// A TCP loopback connection is a socket too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cf, err := c.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	if !nowaitCapable(cf) {
		t.Fatal("a TCP socket is not nowait-capable")
	}
}

func TestReadNowaitOtherFiles(t *testing.T) {
	// Regular files, directories and character devices keep the probe
	// path (see stdin_nowait_linux.go for why).
	reg := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(reg, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{reg, os.DevNull, filepath.Dir(reg)} {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if nowaitCapable(f) {
			t.Errorf("%s: nowait-capable, want not", name)
		}
		f.Close()
	}
	// A terminal refuses the flag: the caller is told to fall back.
	if pt, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0); err == nil {
		defer pt.Close()
		fd, _ := hostFd(pt)
		var n int
		noBlock(t, "read of a terminal", func() { n, err = readNowait(fd, [][]byte{make([]byte, 8)}) })
		if !errors.Is(err, errNowaitUnsupported) && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EIO) {
			t.Fatalf("terminal: %d, %v", n, err)
		}
	}
	// A closed descriptor is an error, not "unsupported".
	if _, err := readNowait(-1, [][]byte{make([]byte, 8)}); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("bad fd: %v, want EBADF", err)
	}
}
