package network

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenBacklog is the accept-queue size the kernel gave a listening
// socket: TCP_INFO reports it as tcpi_sacked in the LISTEN state.
func listenBacklog(t testing.TB, fd int) int {
	t.Helper()
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		t.Fatal(err)
	}
	return int(ti.Sacked)
}

// TestSystemListenBacklog: a huge or negative backlog becomes the system's
// maximum (net.core.somaxconn), a small one is kept.
func TestSystemListenBacklog(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ ask, want int }{
		{math.MaxInt32, maxListenBacklog()},
		{70000, maxListenBacklog()},
		{-1, maxListenBacklog()},
		{16, 16},
	} {
		s := mustSocket(t, System{}, TCP, IPv4)
		if err := s.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(ctx, tc.ask); err != nil {
			t.Fatal(err)
		}
		if got := listenBacklog(t, s.Fd()); got != tc.want {
			t.Errorf("Listen(%d): backlog %d, want %d", tc.ask, got, tc.want)
		}
		s.Close()
	}
}

// TestRefusePending: every pending connection (up to max) is reset; the
// clients see ECONNRESET, not EOF; later ones are untouched.
func TestRefusePending(t *testing.T) {
	ctx := context.Background()
	d := &Default{Policy: PolicyFunc(allowAll), MaxSockets: 1}
	l := mustSocket(t, d, TCP, IPv4)
	defer l.Close()
	if err := l.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(ctx, 64); err != nil {
		t.Fatal(err)
	}
	la, _ := l.LocalAddr()
	var cs []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", la.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	waitFd(t, l, unix.POLLIN)
	if _, err := l.Accept(ctx); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("accept at MaxSockets: %v", err)
	}
	r, ok := l.(Refuser)
	if !ok {
		t.Fatal("a Default TCP socket over System is no Refuser")
	}
	if n := r.RefusePending(3); n != 3 {
		t.Fatalf("refused %d, want 3", n)
	}
	if n := r.RefusePending(100); n != 2 {
		t.Fatalf("refused %d, want the 2 left", n)
	}
	if n := r.RefusePending(100); n != 0 {
		t.Fatalf("refused %d with nothing pending", n)
	}
	if d.OpenSockets() != 1 {
		t.Fatalf("open = %d: refusing took slots", d.OpenSockets())
	}
	for i, c := range cs {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client %d: %v, want a reset", i, err)
		}
	}
}
