package host

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Benchmarks of the socket path. The guest side is testdata/sockguests/
// probe's echoserve (sdk/socket listener, one goroutine per connection,
// io.Copy); "native" is the same loop compiled for the host. Variants:
// -noninterruptible (close-on-context-done off, the stand-in for the
// planned cheap interrupt check), -buf64k (an explicit 64 KiB read/write
// loop on both sides, no splice), guest-c (testdata/sockguests/cserver, a
// C guest with no runtime: what the host path itself costs).
//
// server-cpu-ns/op is the CPU time of the server's own threads (the
// guest's one thread; the native connection's locked thread), measured
// from /proc; cpu-ns/op is the whole process (client too).
//
//	go test -run XXX -bench 'BenchmarkSock(EchoThroughput|ConnectEcho|IdleCPU)' -benchtime 2s -count 5 ./host/

// echoServer is a running echo server: its address, and the CPU time its
// server-side threads have used so far (see threadCPU).
type echoServer struct {
	addr string
	cpu  func() time.Duration
}

// threadCPU returns the CPU time thread tid of this process has used
// (/proc schedstat, nanoseconds), or 0 if it cannot be read.
func threadCPU(tid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	ns, _ := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns)
}

// guestEcho starts the probe's echo server and returns it. interruptible
// is Config.WithCloseOnContextDone; off, it approximates the cost of the
// planned interrupt-check rewriting pass (a cheap global check instead of
// wazero's exit to Go at every loop back-edge). bufSize > 0 makes the guest
// copy with an explicit buffer of that size instead of io.Copy.
//
// The guest runs on one goroutine locked to its OS thread, so that thread's
// CPU time is the server's: wasm code and every host call it makes.
func guestEcho(b *testing.B, interruptible bool, bufSize int) echoServer {
	b.Helper()
	args := []string{"probe", "echoserve", "127.0.0.1:0", "-1"}
	if bufSize > 0 {
		args = append(args, strconv.Itoa(bufSize))
	}
	return startEchoGuest(b, probeWasm(b), interruptible, args...)
}

// cGuestEcho starts testdata/sockguests/cserver's echoloop: a C guest
// (no runtime to speak of) serving one blocking connection at a time with
// a 64 KiB buffer. It shows what the host itself costs.
func cGuestEcho(b *testing.B) echoServer {
	b.Helper()
	return startEchoGuest(b, cGuest(b, "cserver"), false, "cserver", "echoloop")
}

// startEchoGuest runs wasm with args until the benchmark ends and waits
// for its "[0] listening ADDR" line.
func startEchoGuest(b *testing.B, wasm []byte, interruptible bool, args ...string) echoServer {
	b.Helper()
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	return runGuestServer(b, "[0] listening ", func(ctx context.Context, out *lines) {
		Run(ctx, wasm, NewConfig().WithNetwork(nw).WithArgs(args...).
			WithStdout(out).WithStderr(out).WithCompilationCacheDir(sockCacheDir).
			WithCloseOnContextDone(interruptible))
	})
}

// runGuestServer runs a guest server (run) on a locked thread, whose CPU
// time is the server's, until the benchmark ends, and waits for the
// output line prefix+ADDR.
func runGuestServer(b *testing.B, prefix string, run func(ctx context.Context, out *lines)) echoServer {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := newLines()
	done := make(chan struct{})
	var tid atomic.Int64
	go func() {
		defer close(done)
		runtime.LockOSThread()
		tid.Store(int64(syscall.Gettid()))
		run(ctx, out)
	}()
	b.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(out.String(), "\n") {
			if a, ok := strings.CutPrefix(l, prefix); ok {
				return echoServer{addr: a, cpu: func() time.Duration { return threadCPU(int(tid.Load())) }}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("guest server did not start: %s", out.String())
	return echoServer{}
}

// nativeEcho is the same echo server in the host process: io.Copy, which
// on Linux splices socket to socket through a pipe (the bytes never reach
// user space), or, with bufSize > 0, the guest's explicit read/write loop.
// With measure, each connection's goroutine is locked to its own thread so
// that the server's CPU time can be read (one thread per connection: use it
// only for the single-connection throughput benchmark).
func nativeEcho(b *testing.B, bufSize int, measure bool) echoServer {
	b.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var tids []int
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if measure {
					runtime.LockOSThread()
					mu.Lock()
					tids = append(tids, syscall.Gettid())
					mu.Unlock()
				}
				if bufSize > 0 {
					copyBuf(c, bufSize)
				} else {
					io.Copy(c, c)
				}
			}()
		}
	}()
	if !measure {
		return echoServer{addr: ln.Addr().String()}
	}
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

// copyBuf echoes c with plain reads and writes of at most size bytes, as
// the probe's echoserve does with a buffer size.
func copyBuf(c net.Conn, size int) {
	buf := make([]byte, size)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func benchThroughput(b *testing.B, srv echoServer) {
	c, err := net.Dial("tcp", srv.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// A stalled server fails the benchmark instead of hanging it (seen
	// once with the native splicing server on a loaded machine).
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	buf := make([]byte, 64<<10)
	in := make([]byte, 64<<10)
	done := make(chan error, 1)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	defer reportServerCPU(b, srv)()
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := io.ReadFull(c, in); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// reportCPU starts measuring the process's CPU time (user + system, all
// threads: client, server and guest together); the returned function
// reports it per operation as "cpu-ns/op". Wall time on a shared machine
// mostly measures the neighbours; CPU time is the cost we control.
func reportCPU(b *testing.B) func() {
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	return func() {
		var after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	}
}

// reportServerCPU starts measuring the server's CPU time; the returned
// function reports it per operation as "server-cpu-ns/op" (nothing when
// the server's threads are not known).
func reportServerCPU(b *testing.B, srv echoServer) func() {
	if srv.cpu == nil {
		return func() {}
	}
	before := srv.cpu()
	return func() {
		b.ReportMetric(float64(srv.cpu()-before)/float64(b.N), "server-cpu-ns/op")
	}
}

// BenchmarkSockEchoThroughput: 64 KiB writes through an echo server, read
// back concurrently (MB/s counts one direction). server-cpu-ns/op is the
// server's own CPU time per 64 KiB; cpu-ns/op adds the client's.
//
// "native" is io.Copy, which splices (zero-copy) and which no wasm guest
// can match: a guest must copy every byte into its memory and back out.
// The -buf64k variants run the same explicit 64 KiB read/write loop on both
// sides, the like-for-like comparison of the data path.
func BenchmarkSockEchoThroughput(b *testing.B) {
	b.Run("guest", func(b *testing.B) { benchThroughput(b, guestEcho(b, true, 0)) })
	b.Run("guest-noninterruptible", func(b *testing.B) { benchThroughput(b, guestEcho(b, false, 0)) })
	b.Run("guest-noninterruptible-buf64k", func(b *testing.B) { benchThroughput(b, guestEcho(b, false, 64<<10)) })
	b.Run("guest-c-buf64k", func(b *testing.B) { benchThroughput(b, cGuestEcho(b)) })
	b.Run("native", func(b *testing.B) { benchThroughput(b, nativeEcho(b, 0, true)) })
	b.Run("native-buf64k", func(b *testing.B) { benchThroughput(b, nativeEcho(b, 64<<10, true)) })
}

func benchConnectEcho(b *testing.B, srv echoServer) {
	addr := srv.addr
	msg := make([]byte, 100)
	in := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	defer reportServerCPU(b, srv)()
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkSockConnectEcho: connect, 100 B echo, close, one at a time (the
// guest side decides tcp.accept with a Go PolicyFunc for each).
func BenchmarkSockConnectEcho(b *testing.B) {
	b.Run("guest", func(b *testing.B) { benchConnectEcho(b, guestEcho(b, true, 0)) })
	b.Run("guest-noninterruptible", func(b *testing.B) { benchConnectEcho(b, guestEcho(b, false, 0)) })
	b.Run("guest-c", func(b *testing.B) { benchConnectEcho(b, cGuestEcho(b)) })
	b.Run("native", func(b *testing.B) { benchConnectEcho(b, nativeEcho(b, 0, false)) })
}

// BenchmarkSockIdleCPU reports the host CPU the process uses while a
// guest sits blocked in accept, next to the same process with no guest
// (the difference is the guest's idle cost; poll_oneoff blocks in ppoll,
// so it should be ~0), and, exactly, the CPU of the guest's own thread
// (guest-cpu-ms/s). Unit: CPU milliseconds per wall second.
func BenchmarkSockIdleCPU(b *testing.B) {
	measure := func(b *testing.B, srv echoServer) {
		time.Sleep(200 * time.Millisecond) // let start-up settle
		b.ResetTimer()
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		var guestBefore time.Duration
		if srv.cpu != nil {
			guestBefore = srv.cpu()
		}
		start := time.Now()
		for i := 0; i < b.N; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		wall := time.Since(start)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		b.ReportMetric(float64(cpu.Microseconds())/1000/wall.Seconds(), "cpu-ms/s")
		if srv.cpu != nil {
			g := srv.cpu() - guestBefore
			b.ReportMetric(float64(g.Microseconds())/1000/wall.Seconds(), "guest-cpu-ms/s")
		}
	}
	b.Run("guest-in-accept", func(b *testing.B) { measure(b, guestEcho(b, true, 0)) })
	b.Run("guest-in-accept-noninterruptible", func(b *testing.B) { measure(b, guestEcho(b, false, 0)) })
	b.Run("no-guest", func(b *testing.B) { measure(b, echoServer{}) })
}

// BenchmarkSockPolicyConnect: socket + connect + close on loopback through
// network.System (no checks) and through network.Default with a Go
// PolicyFunc, i.e. the policy overhead of one connect.
func BenchmarkSockPolicyConnect(b *testing.B) {
	addr := netip.MustParseAddrPort(nativeEcho(b, 0, false).addr)
	allow := network.PolicyFunc(func(ctx context.Context, req *network.Request) (network.Verdict, error) {
		return policy.Allow("bench"), nil
	})
	for _, tc := range []struct {
		name string
		nw   network.Network
	}{
		{"system", network.System{}},
		{"default+policyfunc", &network.Default{Policy: allow}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				s, err := tc.nw.Socket(ctx, network.TCP, network.IPv4)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Connect(ctx, addr); err != nil && err != syscall.EINPROGRESS && !strings.Contains(err.Error(), "in progress") {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}
