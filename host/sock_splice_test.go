package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
)

// End-to-end tests of the splice extension (sock_splice.go,
// sdk/socket/splice_wasip1.go) with testdata/sockguests/spliceprobe.

// spliceMode says what the sockets of a spliceNet do with Splice.
type spliceMode int

const (
	modeSplice spliceMode = iota // pass it on to System's splice, counting
	modeNone                     // no Splicer at all: the guest must copy
	modeEINVAL                   // Splicer failing with EINVAL: a host without the extension
)

// spliceNet is System with sockets that count Splice calls and the bytes
// they moved, so a test can tell which path a copy took.
type spliceNet struct {
	network.System
	mode  spliceMode
	calls atomic.Int64
	bytes atomic.Int64
}

func (n *spliceNet) Socket(ctx context.Context, proto network.Proto, fam network.Family) (network.Socket, error) {
	s, err := n.System.Socket(ctx, proto, fam)
	if err != nil {
		return nil, err
	}
	return n.wrap(s), nil
}

func (n *spliceNet) wrap(s network.Socket) network.Socket {
	p := plainSock{Socket: s, n: n}
	if n.mode == modeNone {
		return &p
	}
	return &splicingSock{p}
}

type plainSock struct {
	network.Socket
	n *spliceNet
}

func (s *plainSock) Accept(ctx context.Context) (network.Socket, error) {
	c, err := s.Socket.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return s.n.wrap(c), nil
}

type splicingSock struct{ plainSock }

func (s *splicingSock) Splice(ctx context.Context, dst network.Socket, max int) (int64, network.SpliceState, error) {
	s.n.calls.Add(1)
	if s.n.mode == modeEINVAL {
		return 0, 0, syscall.EINVAL
	}
	d, ok := dst.(*splicingSock)
	if !ok {
		return 0, 0, network.ErrSpliceUnsupported
	}
	n, st, err := s.Socket.(network.Splicer).Splice(ctx, d.Socket, max)
	s.n.bytes.Add(n)
	return n, st, err
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sendAll writes data in uneven chunks (with a few pauses, so that the
// guest also meets an empty source) and half-closes.
func sendAll(c net.Conn, data []byte) error {
	sizes := []int{1, 100, 64 << 10, 3000, 1 << 20, 17}
	for i := 0; len(data) > 0; i++ {
		k := min(sizes[i%len(sizes)], len(data))
		if _, err := c.Write(data[:k]); err != nil {
			return err
		}
		data = data[k:]
		if i%5 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return c.(*net.TCPConn).CloseWrite()
}

// exchange sends data on c while reading everything back until EOF.
func exchange(t *testing.T, c net.Conn, data []byte) []byte {
	t.Helper()
	werr := make(chan error, 1)
	go func() { werr <- sendAll(c, data) }()
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading back: %v (%d of %d bytes)", err, len(got), len(data))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	return got
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: got %d bytes, want %d, first difference at %d", what, len(got), len(want), i)
}

func startSpliceGuest(t *testing.T, sn *spliceNet, args ...string) (*guestRun, *network.Default, string) {
	t.Helper()
	nw := &network.Default{Network: sn, Policy: network.PolicyFunc(allowLoopback)}
	g := startGuest(t, sockProbeWasm(t, "spliceprobe"), NewConfig().WithNetwork(nw), args...)
	addr := strings.TrimPrefix(g.out.wait(t, "listening ", 60*time.Second), "listening ")
	return g, nw, addr
}

// TestSockSpliceEcho: io.Copy(c, c) in the guest echoes 6 MiB of random
// data byte for byte through the host's splice (every byte is counted by
// the Splicer), and ends with the count and a nil error at the client's
// half-close.
func TestSockSpliceEcho(t *testing.T) {
	for _, mode := range []spliceMode{modeSplice, modeNone} {
		t.Run(fmt.Sprint("mode", mode), func(t *testing.T) {
			sn := &spliceNet{mode: mode}
			g, nw, addr := startSpliceGuest(t, sn, "echo", "127.0.0.1:0")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			data := randomBytes(t, 6<<20+12345)
			sameBytes(t, "echo", exchange(t, c, data), data)
			if line := g.out.wait(t, "copied ", 30*time.Second); line != fmt.Sprintf("copied %d <nil>", len(data)) {
				t.Fatalf("guest: %q", line)
			}
			g.finish(t)
			switch mode {
			case modeSplice:
				if sn.bytes.Load() != int64(len(data)) {
					t.Fatalf("spliced %d bytes in %d calls, want all %d", sn.bytes.Load(), sn.calls.Load(), len(data))
				}
			case modeNone:
				if sn.calls.Load() != 0 {
					t.Fatalf("%d splice calls on a network without splice", sn.calls.Load())
				}
			}
			if n := nw.OpenSockets(); n != 0 {
				t.Fatalf("%d sockets open after exit", n)
			}
		})
	}
}

// upstreamServer echoes each connection until EOF, then appends a trailer
// saying how many bytes it saw: the trailer reaches the client only if the
// proxy passed the client's half-close on to the upstream, and the
// client's ReadAll ends only if the proxy passes the upstream's on back.
func upstreamServer(t *testing.T) string {
	return serveTCP(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		n, err := io.Copy(c, c)
		fmt.Fprintf(c, "|upstream saw EOF after %d %v", n, err)
	})
}

// TestSockSpliceProxy: a guest proxy (io.Copy both ways between the client
// and an upstream, half-closes passed on) carries two connections of
// random data byte for byte; with splice, in every mode of the network:
// spliced, a network without splice (ENOTSUP: copy, per connection), and a
// host without the extension (EINVAL: copy, and asked only once per
// process).
func TestSockSpliceProxy(t *testing.T) {
	up := upstreamServer(t)
	for _, mode := range []spliceMode{modeSplice, modeNone, modeEINVAL} {
		t.Run(fmt.Sprint("mode", mode), func(t *testing.T) {
			sn := &spliceNet{mode: mode}
			g, _, addr := startSpliceGuest(t, sn, "proxy", "127.0.0.1:0", up, "2")
			var total int64
			for i := 0; i < 2; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				data := randomBytes(t, 3<<20+i*777)
				want := append(append([]byte{}, data...), fmt.Sprintf("|upstream saw EOF after %d <nil>", len(data))...)
				sameBytes(t, fmt.Sprint("proxied connection ", i), exchange(t, c, data), want)
				c.Close()
				total += int64(len(data) + len(want))
				g.out.wait(t, fmt.Sprintf("conn %d up %d <nil>", i, len(data)), 30*time.Second)
				g.out.wait(t, fmt.Sprintf("conn %d down %d <nil>", i, len(want)), 30*time.Second)
			}
			out := g.finish(t)
			if g.code != 0 || g.err != nil {
				t.Fatalf("exit %d %v:\n%s", g.code, g.err, out)
			}
			switch mode {
			case modeSplice:
				if sn.bytes.Load() != total {
					t.Fatalf("spliced %d bytes, want %d", sn.bytes.Load(), total)
				}
			case modeNone:
				if sn.calls.Load() != 0 {
					t.Fatalf("%d splice calls", sn.calls.Load())
				}
			case modeEINVAL:
				if sn.calls.Load() != 1 {
					t.Fatalf("%d splice calls on a host without splice, want exactly 1 (the probe)", sn.calls.Load())
				}
			}
		})
	}
}

// TestSockSpliceLimited: io.Copy(c, io.LimitReader(c, K)) splices exactly
// K bytes, leaves the LimitedReader's N at 0 and the rest unread.
func TestSockSpliceLimited(t *testing.T) {
	sn := &spliceNet{}
	g, _, addr := startSpliceGuest(t, sn, "echolimit", "127.0.0.1:0", fmt.Sprint(1<<20+5))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := randomBytes(t, 2<<20)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	got := make([]byte, 1<<20+5)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "limited echo", got, data[:len(got)])
	if line := g.out.wait(t, "copied ", 30*time.Second); line != fmt.Sprintf("copied %d <nil> left 0", len(got)) {
		t.Fatalf("guest: %q", line)
	}
	g.finish(t)
	if sn.bytes.Load() != int64(len(got)) {
		t.Fatalf("spliced %d, want %d", sn.bytes.Load(), len(got))
	}
}

// TestSockSpliceReset: a client that resets the connection while the
// guest splices (its echo blocked on a full destination) makes the
// guest's io.Copy return an error instead of hanging.
func TestSockSpliceReset(t *testing.T) {
	sn := &spliceNet{}
	g, _, addr := startSpliceGuest(t, sn, "echo", "127.0.0.1:0")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// Send without reading until the guest's echo can no longer write,
	// then reset.
	fillUntilSpliced(t, c, sn, 3*time.Second)
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	line := g.out.wait(t, "copied ", 60*time.Second)
	if strings.HasSuffix(line, " <nil>") {
		t.Fatalf("reset connection: %q, want an error", line)
	}
	g.finish(t)
}

// TestSockSpliceNoFdLeak: a guest stopped in the middle of a splice
// (bytes pending in the host's pipe, its echo waiting for a full
// destination) leaves no host descriptor behind: sockets and pipe are
// closed.
func TestSockSpliceNoFdLeak(t *testing.T) {
	sockProbeWasm(t, "spliceprobe") // built before the baseline is taken
	base := openFds(t)
	sn := &spliceNet{}
	g, nw, addr := startSpliceGuest(t, sn, "echo", "127.0.0.1:0")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fillUntilSpliced(t, c, sn, 2*time.Second)
	g.cancel()
	g.finish(t)
	c.Close()
	waitFds(t, base)
	if n := nw.OpenSockets(); n != 0 {
		t.Fatalf("%d sockets open after cancel", n)
	}
}

// startProxyGuest runs spliceprobe's proxy (one connection) in front of
// upstream on nw, on a locked thread whose CPU time is the server's.
func startProxyGuest(b *testing.B, nw network.Network, upstream string) echoServer {
	b.Helper()
	wasm := sockProbeWasm(b, "spliceprobe")
	return runGuestServer(b, "listening ", func(ctx context.Context, out *lines) {
		Run(ctx, wasm, NewConfig().WithNetwork(&network.Default{Network: nw, Policy: network.PolicyFunc(allowLoopback)}).
			WithArgs("spliceprobe", "proxy", "127.0.0.1:0", upstream, "1").
			WithStdout(out).WithStderr(out).WithCompilationCacheDir(sockCacheDir))
	})
}

// nativeProxy is the same proxy in the host process: io.Copy both ways
// (which splices), each direction on its own locked thread.
func nativeProxy(b *testing.B, upstream string) echoServer {
	b.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var tids []int
	locked := func() {
		runtime.LockOSThread()
		mu.Lock()
		tids = append(tids, syscall.Gettid())
		mu.Unlock()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				locked()
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				go func() {
					locked()
					io.Copy(up, c)
					up.(*net.TCPConn).CloseWrite()
				}()
				io.Copy(c, up)
			}()
		}
	}()
	return echoServer{addr: ln.Addr().String(), cpu: func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		var sum time.Duration
		for _, t := range tids {
			sum += threadCPU(t)
		}
		return sum
	}}
}

// BenchmarkSockProxyThroughput: 64 KiB writes through a proxy in front of
// a native echo server (MB/s counts one direction; the proxy carries each
// byte twice). server-cpu-ns/op is the proxy's own CPU time: the guest's
// thread with the host's splice ("guest"), with its pooled copy on a
// network without splice ("guest-copy"), and native io.Copy ("native",
// which splices).
//
//	go test -run XXX -bench BenchmarkSockProxyThroughput -benchtime 2s -count 5 ./host/
func BenchmarkSockProxyThroughput(b *testing.B) {
	up := nativeEcho(b, 0, false).addr
	b.Run("guest", func(b *testing.B) { benchThroughput(b, startProxyGuest(b, network.System{}, up)) })
	b.Run("guest-copy", func(b *testing.B) { benchThroughput(b, startProxyGuest(b, &spliceNet{mode: modeNone}, up)) })
	b.Run("native", func(b *testing.B) { benchThroughput(b, nativeProxy(b, up)) })
}

// fillUntilSpliced writes to c without reading for d, until the guest's
// echo can no longer write back, and checks that the guest spliced.
func fillUntilSpliced(t *testing.T, c net.Conn, sn *spliceNet, d time.Duration) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(d))
	chunk := make([]byte, 256<<10)
	for {
		if _, err := c.Write(chunk); err != nil {
			break
		}
	}
	if sn.calls.Load() == 0 {
		t.Fatal("the guest never spliced")
	}
}
