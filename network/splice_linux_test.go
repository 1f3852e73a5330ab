//go:build linux

package network

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// splicePair returns a socket of n connected to a Go peer on loopback, and
// the peer.
func splicePair(t *testing.T, n Network, l *loopbackTCP) (Socket, net.Conn) {
	t.Helper()
	s := mustSocket(t, n, TCP, IPv4)
	connectWait(t, s, l.addr())
	c := l.expectOne(t)
	t.Cleanup(func() { c.Close() })
	return s, c
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// spliceUntilEOF splices src to dst until the end of src, waiting as the
// states say, and returns the bytes moved.
func spliceUntilEOF(t *testing.T, src, dst Socket) int64 {
	t.Helper()
	var total int64
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		n, st, err := src.(Splicer).Splice(context.Background(), dst, 0)
		if err != nil {
			t.Fatalf("Splice after %d bytes: %v", total, err)
		}
		total += n
		switch st {
		case SpliceEOF:
			return total
		case SpliceSrcBlocked:
			waitFd(t, src, unix.POLLIN)
		case SpliceDstBlocked:
			waitFd(t, dst, unix.POLLOUT)
		}
	}
	t.Fatal("splice did not finish")
	return 0
}

// TestSystemSplice moves 5 MiB between two System sockets byte for byte,
// reports SrcBlocked on an empty source and EOF at the end, and frees its
// pipe at EOF.
func TestSystemSplice(t *testing.T) {
	l := newLoopbackTCP(t)
	a, pa := splicePair(t, System{}, l)
	b, pb := splicePair(t, System{}, l)
	n, st, err := a.(Splicer).Splice(context.Background(), b, 0)
	if err != nil || n != 0 || st != SpliceSrcBlocked {
		t.Fatalf("empty source: %d %v %v", n, st, err)
	}
	data := randBytes(t, 5<<20+3)
	go func() {
		pa.Write(data)
		pa.(*net.TCPConn).CloseWrite()
	}()
	got := make(chan []byte, 1)
	go func() {
		pb.SetReadDeadline(time.Now().Add(time.Minute))
		buf, _ := io.ReadAll(pb)
		got <- buf
	}()
	if total := spliceUntilEOF(t, a, b); total != int64(len(data)) {
		t.Fatalf("spliced %d, want %d", total, len(data))
	}
	b.Shutdown(ShutWrite)
	if g := <-got; !bytes.Equal(g, data) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(g), len(data))
	}
	if a.(*systemSocket).pipe != nil || a.(*systemSocket).hasPipe.Load() {
		t.Fatal("pipe not freed at EOF")
	}
	// After EOF: EOF again, with a fresh pipe that is freed again.
	if n, st, err := a.(Splicer).Splice(context.Background(), b, 0); n != 0 || st != SpliceEOF || err != nil {
		t.Fatalf("after EOF: %d %v %v", n, st, err)
	}
}

// TestSystemSpliceEcho splices a socket into itself.
func TestSystemSpliceEcho(t *testing.T) {
	l := newLoopbackTCP(t)
	a, pa := splicePair(t, System{}, l)
	data := randBytes(t, 3<<20)
	go func() {
		pa.Write(data)
		pa.(*net.TCPConn).CloseWrite()
	}()
	got := make(chan []byte, 1)
	go func() {
		pa.SetReadDeadline(time.Now().Add(time.Minute))
		buf, _ := io.ReadAll(pa)
		got <- buf
	}()
	spliceUntilEOF(t, a, a)
	a.Shutdown(ShutWrite)
	if g := <-got; !bytes.Equal(g, data) {
		t.Fatalf("echo: %d bytes that differ from the %d sent", len(g), len(data))
	}
}

// TestSystemSplicePending: bytes a splice read but could not write stay
// the source's, in order: a Recv (peeking first) returns them right after
// what reached the destination, and Close frees the pipe with bytes in it
// (no descriptor left behind).
func TestSystemSplicePending(t *testing.T) {
	fds := func() int {
		des, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			testenv.Missing(t, "/proc/self/fd", err)
		}
		return len(des)
	}
	l := newLoopbackTCP(t)
	a, pa := splicePair(t, System{}, l)
	b, pb := splicePair(t, System{}, l)
	base := fds()
	data := randBytes(t, 16<<20)
	go pa.Write(data) // more than b's buffers and pb's can hold
	var total int64
	for {
		n, st, err := a.(Splicer).Splice(context.Background(), b, 0)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if st == SpliceDstBlocked {
			break
		}
		if st == SpliceSrcBlocked {
			waitFd(t, a, unix.POLLIN)
		}
	}
	pending := a.(*systemSocket).pipe.pending
	if pending == 0 {
		t.Fatal("nothing pending after DstBlocked")
	}
	if fds() != base+2 {
		t.Fatalf("%d descriptors, want the pipe's 2 more than %d", fds(), base)
	}
	// pb reads exactly what was spliced.
	pb.SetReadDeadline(time.Now().Add(time.Minute))
	head := make([]byte, total)
	if _, err := io.ReadFull(pb, head); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(head, data[:total]) {
		t.Fatal("destination got other bytes")
	}
	peek := make([]byte, 100)
	n, _, _, err := a.Recv(context.Background(), [][]byte{peek}, RecvPeek)
	if err != nil || n != 100 || !bytes.Equal(peek, data[total:total+100]) {
		t.Fatalf("peek: %d %v", n, err)
	}
	buf := make([]byte, 1000)
	n, _, _, err = a.Recv(context.Background(), [][]byte{buf[:10], buf[10:]}, 0)
	if err != nil || n == 0 || !bytes.Equal(buf[:n], data[total:total+int64(n)]) {
		t.Fatalf("recv after splice: %d %v", n, err)
	}
	if got := a.(*systemSocket).pipe.pending; got != pending-n {
		t.Fatalf("pending %d after reading %d of %d", got, n, pending)
	}
	a.Close()
	if fds() != base-1 {
		t.Fatalf("%d descriptors after Close, want %d", fds(), base-1)
	}
	if _, _, err := a.(Splicer).Splice(context.Background(), b, 0); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("Splice after Close: %v", err)
	}
}

// TestSystemSpliceResetAfterProgress: a reset met after some bytes moved
// is reported by the next call, not lost, and the bytes are counted.
func TestSystemSpliceResetAfterProgress(t *testing.T) {
	for _, viaRecv := range []bool{false, true} {
		l := newLoopbackTCP(t)
		a, pa := splicePair(t, System{}, l)
		b, pb := splicePair(t, System{}, l)
		pa.Write([]byte("last words"))
		pa.(*net.TCPConn).SetLinger(0)
		pa.Close()
		waitFd(t, a, unix.POLLIN)
		time.Sleep(50 * time.Millisecond) // let the reset arrive too
		n, st, err := a.(Splicer).Splice(context.Background(), b, 0)
		if err != nil || n != 10 || st != SpliceProgress {
			t.Fatalf("first call: %d %v %v", n, st, err)
		}
		buf := make([]byte, 10)
		pb.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(pb, buf); err != nil || string(buf) != "last words" {
			t.Fatalf("%q %v", buf, err)
		}
		if viaRecv {
			_, _, _, err = a.Recv(context.Background(), [][]byte{buf}, 0)
		} else {
			_, _, err = a.(Splicer).Splice(context.Background(), b, 0)
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("viaRecv=%v: %v, want ECONNRESET", viaRecv, err)
		}
	}
}

// TestSpliceUnsupported: pairs that cannot be spliced say so with
// ErrSpliceUnsupported; Default splices between its own stream sockets
// only.
func TestSpliceUnsupported(t *testing.T) {
	l := newLoopbackTCP(t)
	ctx := context.Background()
	a, _ := splicePair(t, System{}, l)
	u := mustSocket(t, System{}, UDP, IPv4)
	for _, tc := range []struct {
		name     string
		src, dst Socket
	}{
		{"udp source", u, a},
		{"udp destination", a, u},
	} {
		if _, _, err := tc.src.(Splicer).Splice(ctx, tc.dst, 0); !errors.Is(err, ErrSpliceUnsupported) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	allow := PolicyFunc(allowAll)
	d1, d2 := &Default{Policy: allow}, &Default{Policy: allow}
	g1, pg1 := splicePair(t, d1, l)
	g1b, pg1b := splicePair(t, d1, l)
	g2, _ := splicePair(t, d2, l)
	if _, _, err := g1.(Splicer).Splice(ctx, g2, 0); !errors.Is(err, ErrSpliceUnsupported) {
		t.Errorf("another guest's socket: %v", err)
	}
	if _, _, err := g1.(Splicer).Splice(ctx, a, 0); !errors.Is(err, ErrSpliceUnsupported) {
		t.Errorf("a socket outside the guest: %v", err)
	}
	gu := mustSocket(t, d1, UDP, IPv4)
	if _, _, err := g1.(Splicer).Splice(ctx, gu, 0); !errors.Is(err, ErrSpliceUnsupported) {
		t.Errorf("udp: %v", err)
	}
	// Between two sockets of one guest it works.
	pg1.Write([]byte("through the guard"))
	pg1.(*net.TCPConn).CloseWrite()
	spliceUntilEOF(t, g1, g1b)
	g1b.Shutdown(ShutWrite)
	pg1b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(pg1b); err != nil || string(b) != "through the guard" {
		t.Fatalf("%q %v", b, err)
	}
}

// BenchmarkSystemSplice: one direction, 64 KiB writes spliced from one
// System socket to another (the host cost of a guest proxy's copy).
func BenchmarkSystemSplice(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 2)
	go func() {
		for i := 0; i < 2; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	l := &loopbackTCP{ln: ln, conns: conns}
	var src, dst Socket
	for _, s := range []*Socket{&src, &dst} {
		*s = mustSocket(b, System{}, TCP, IPv4)
		connectWait(b, *s, l.addr())
	}
	pa, pb := <-conns, <-conns
	defer pa.Close()
	defer pb.Close()
	go io.Copy(io.Discard, pb)
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := pa.Write(chunk); err != nil {
				return
			}
		}
		pa.(*net.TCPConn).CloseWrite()
	}()
	var total int64
	for total < int64(b.N)*int64(len(chunk)) {
		n, st, err := src.(Splicer).Splice(context.Background(), dst, 0)
		if err != nil {
			b.Fatal(err)
		}
		total += n
		switch st {
		case SpliceSrcBlocked:
			waitFd(b, src, unix.POLLIN)
		case SpliceDstBlocked:
			waitFd(b, dst, unix.POLLOUT)
		case SpliceEOF:
			return
		}
	}
}
