package host

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Benchmarks of the socket path. The guest side is testdata/sockguests/
// probe's echoserve (sdk/socket listener, one goroutine per connection,
// io.Copy); "native" is the same loop compiled for the host.
//
//	go test -run XXX -bench BenchmarkSock -benchtime 2s ./host/

// guestEcho starts the probe's echo server and returns its address.
func guestEcho(b *testing.B) string {
	b.Helper()
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	wasm := probeWasm(b)
	ctx, cancel := context.WithCancel(context.Background())
	out := newLines()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, wasm, NewConfig().WithNetwork(nw).WithArgs("probe", "echoserve", "127.0.0.1:0", "-1").
			WithStdout(out).WithStderr(out).WithCompilationCacheDir(sockCacheDir))
	}()
	b.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(out.String(), "\n") {
			if a, ok := strings.CutPrefix(l, "[0] listening "); ok {
				return a
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("guest echo server did not start: %s", out.String())
	return ""
}

// nativeEcho is the same echo server in the host process.
func nativeEcho(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func benchThroughput(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	in := make([]byte, 64<<10)
	done := make(chan error, 1)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
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

// BenchmarkSockEchoThroughput: 64 KiB writes through an echo server, read
// back concurrently (MB/s counts one direction).
func BenchmarkSockEchoThroughput(b *testing.B) {
	b.Run("guest", func(b *testing.B) { benchThroughput(b, guestEcho(b)) })
	b.Run("native", func(b *testing.B) { benchThroughput(b, nativeEcho(b)) })
}

func benchConnectEcho(b *testing.B, addr string) {
	msg := make([]byte, 100)
	in := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
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
	b.Run("guest", func(b *testing.B) { benchConnectEcho(b, guestEcho(b)) })
	b.Run("native", func(b *testing.B) { benchConnectEcho(b, nativeEcho(b)) })
}

// BenchmarkSockIdleCPU reports the host CPU the process uses while a
// guest sits blocked in accept, next to the same process with no guest
// (the difference is the guest's idle cost; poll_oneoff blocks in ppoll,
// so it should be ~0). Unit: CPU milliseconds per wall second.
func BenchmarkSockIdleCPU(b *testing.B) {
	measure := func(b *testing.B) {
		time.Sleep(200 * time.Millisecond) // let start-up settle
		b.ResetTimer()
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		start := time.Now()
		for i := 0; i < b.N; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		wall := time.Since(start)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		b.ReportMetric(float64(cpu.Microseconds())/1000/wall.Seconds(), "cpu-ms/s")
	}
	b.Run("guest-in-accept", func(b *testing.B) { guestEcho(b); measure(b) })
	b.Run("no-guest", measure)
}

// BenchmarkSockPolicyConnect: socket + connect + close on loopback through
// network.System (no checks) and through network.Default with a Go
// PolicyFunc, i.e. the policy overhead of one connect.
func BenchmarkSockPolicyConnect(b *testing.B) {
	addr := netip.MustParseAddrPort(nativeEcho(b))
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
