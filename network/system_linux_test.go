//go:build linux

package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitFd waits up to 5 s for events on s's descriptor, like the host's
// poll_oneoff does.
func waitFd(t testing.TB, s Socket, events int16) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(s.Fd()), Events: events}}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := unix.Poll(fds, 100)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if n > 0 {
			return
		}
	}
	t.Fatalf("fd %d not ready for %#x after 5 s", s.Fd(), events)
}

func mustSocket(t testing.TB, n Network, p Proto, f Family) Socket {
	t.Helper()
	s, err := n.Socket(context.Background(), p, f)
	if err != nil {
		t.Fatalf("Socket(%v, %v): %v", p, f, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// connectWait connects and waits for the non-blocking connect to finish.
func connectWait(t testing.TB, s Socket, to netip.AddrPort) {
	t.Helper()
	err := s.Connect(context.Background(), to)
	if err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("Connect(%v): %v", to, err)
	}
	waitFd(t, s, unix.POLLOUT)
	if e, err := s.GetOption(SockOptError); err != nil || e != 0 {
		t.Fatalf("SO_ERROR after connect = %v, %v", syscall.Errno(e), err)
	}
}

func acceptWait(t testing.TB, l Socket) Socket {
	t.Helper()
	for i := 0; i < 50; i++ {
		c, err := l.Accept(context.Background())
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		if !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("Accept: %v", err)
		}
		waitFd(t, l, unix.POLLIN)
	}
	t.Fatal("Accept: nothing after 50 tries")
	return nil
}

func TestSystemTCP(t *testing.T) {
	for _, fam := range []Family{IPv4, IPv6} {
		t.Run(fam.String(), func(t *testing.T) {
			ctx := context.Background()
			lo := netip.MustParseAddr("127.0.0.1")
			if fam == IPv6 {
				lo = netip.IPv6Loopback()
			}
			l := mustSocket(t, System{}, TCP, fam)
			if err := l.SetOption(SockOptReuseAddr, 1); err != nil {
				t.Fatal(err)
			}
			if err := l.Bind(ctx, netip.AddrPortFrom(lo, 0)); err != nil {
				t.Fatal(err)
			}
			if err := l.Listen(ctx, 8); err != nil {
				t.Fatal(err)
			}
			if v, err := l.GetOption(SockOptAcceptConn); err != nil || v != 1 {
				t.Errorf("SO_ACCEPTCONN = %v, %v", v, err)
			}
			la, err := l.LocalAddr()
			if err != nil || la.Addr() != lo || la.Port() == 0 {
				t.Fatalf("LocalAddr = %v, %v", la, err)
			}
			if _, err := l.Accept(ctx); !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("Accept with nothing pending = %v, want EAGAIN", err)
			}

			c := mustSocket(t, System{}, TCP, fam)
			if _, err := c.PeerAddr(); !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("PeerAddr before connect = %v", err)
			}
			connectWait(t, c, la)
			a := acceptWait(t, l)
			if pa, err := c.PeerAddr(); err != nil || pa != la {
				t.Errorf("PeerAddr = %v, %v; want %v", pa, err, la)
			}
			ca, _ := c.LocalAddr()
			if pa, err := a.PeerAddr(); err != nil || pa != ca {
				t.Errorf("accepted PeerAddr = %v, %v; want %v", pa, err, ca)
			}
			if v, err := c.GetOption(SockOptType); err != nil || v != 2 {
				t.Errorf("SO_TYPE = %v, %v", v, err)
			}

			// Recv on an empty stream: EAGAIN.
			buf := make([]byte, 16)
			if _, _, _, err := a.Recv(ctx, [][]byte{buf}, 0); !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("Recv empty = %v, want EAGAIN", err)
			}
			// writev / readv across buffers, and peek.
			n, err := c.Send(ctx, [][]byte{[]byte("hel"), nil, []byte("lo")}, netip.AddrPort{}, 0)
			if err != nil || n != 5 {
				t.Fatalf("Send = %d, %v", n, err)
			}
			if _, err := c.Send(ctx, [][]byte{[]byte("x")}, la, 0); !errors.Is(err, syscall.EISCONN) {
				t.Errorf("TCP Send with address = %v, want EISCONN", err)
			}
			waitFd(t, a, unix.POLLIN)
			b1, b2 := make([]byte, 2), make([]byte, 10)
			n, from, _, err := a.Recv(ctx, [][]byte{b1, b2}, RecvPeek)
			if err != nil || n != 5 || from.IsValid() || string(b1)+string(b2[:3]) != "hello" {
				t.Fatalf("Recv peek = %d %v %v %q %q", n, from, err, b1, b2)
			}
			n, _, _, err = a.Recv(ctx, [][]byte{buf}, RecvWaitAll)
			if err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("Recv = %q, %v", buf[:n], err)
			}
			// Shutdown write: the peer reads end of stream.
			if err := c.Shutdown(ShutWrite); err != nil {
				t.Fatal(err)
			}
			waitFd(t, a, unix.POLLIN)
			if n, _, _, err := a.Recv(ctx, [][]byte{buf}, 0); n != 0 || err != nil {
				t.Fatalf("Recv after shutdown = %d, %v; want 0, nil", n, err)
			}
			// Close is idempotent; later use is EBADF.
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close = %v", err)
			}
			if c.Fd() != -1 {
				t.Errorf("Fd after Close = %d", c.Fd())
			}
			if _, err := c.Send(ctx, [][]byte{buf}, netip.AddrPort{}, 0); !errors.Is(err, syscall.EBADF) {
				t.Errorf("Send after Close = %v", err)
			}
		})
	}
}

func TestSystemConnectRefused(t *testing.T) {
	// A port nobody listens on: bind one, note it, close it.
	tmp := mustSocket(t, System{}, TCP, IPv4)
	if err := tmp.Bind(context.Background(), netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	addr, _ := tmp.LocalAddr()
	tmp.Close()

	c := mustSocket(t, System{}, TCP, IPv4)
	err := c.Connect(context.Background(), addr)
	if err == nil {
		t.Fatal("connect to a closed port succeeded")
	}
	if errors.Is(err, syscall.EINPROGRESS) {
		waitFd(t, c, unix.POLLOUT)
		e, gerr := c.GetOption(SockOptError)
		if gerr != nil || syscall.Errno(e) != syscall.ECONNREFUSED {
			t.Fatalf("SO_ERROR = %v, %v; want ECONNREFUSED", syscall.Errno(e), gerr)
		}
		if e, _ := c.GetOption(SockOptError); e != 0 {
			t.Errorf("SO_ERROR not cleared: %v", syscall.Errno(e))
		}
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Connect = %v", err)
	}
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != "connect" || oe.Net != "tcp" {
		t.Errorf("error %#v is not a connect *OpError", err)
	}
}

func TestSystemUDP(t *testing.T) {
	ctx := context.Background()
	r := mustSocket(t, System{}, UDP, IPv4)
	if err := r.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	ra, _ := r.LocalAddr()
	// An IPv6 socket sending to an IPv4 address (as IPv4-mapped).
	s := mustSocket(t, System{}, UDP, IPv6)
	if n, err := s.Send(ctx, [][]byte{[]byte("0123456789")}, ra, 0); err != nil || n != 10 {
		t.Fatalf("Send = %d, %v", n, err)
	}
	sa, _ := s.LocalAddr()
	waitFd(t, r, unix.POLLIN)
	small := make([]byte, 4)
	n, from, out, err := r.Recv(ctx, [][]byte{small}, RecvPeek)
	if err != nil || n != 4 || out != RecvTruncated || from.Addr() != netip.MustParseAddr("127.0.0.1") || from.Port() != sa.Port() {
		t.Fatalf("Recv peek = %d %v %v %v", n, from, out, err)
	}
	big := make([]byte, 64)
	n, _, out, err = r.Recv(ctx, [][]byte{big}, 0)
	if err != nil || n != 10 || out != 0 || string(big[:n]) != "0123456789" {
		t.Fatalf("Recv = %d %q %v %v", n, big[:n], out, err)
	}
	if _, _, _, err := r.Recv(ctx, [][]byte{big}, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("Recv on empty = %v", err)
	}
	if v, err := r.GetOption(SockOptType); err != nil || v != 1 {
		t.Errorf("SO_TYPE = %v, %v", v, err)
	}
	// Connected UDP: Send without address.
	if err := s.Connect(ctx, ra); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, [][]byte{[]byte("x")}, netip.AddrPort{}, 0); err != nil {
		t.Fatal(err)
	}
	if pa, err := s.PeerAddr(); err != nil || pa != ra {
		t.Errorf("PeerAddr = %v, %v (want unmapped %v)", pa, err, ra)
	}
	// An IPv4 socket cannot take an IPv6 address.
	if err := r.Connect(ctx, netip.MustParseAddrPort("[::1]:53")); !errors.Is(err, syscall.EAFNOSUPPORT) {
		t.Errorf("IPv4 socket connect to ::1 = %v", err)
	}
	if err := r.Listen(ctx, 1); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("UDP Listen = %v", err)
	}
}

func TestSystemOptions(t *testing.T) {
	tcp := mustSocket(t, System{}, TCP, IPv4)
	udp := mustSocket(t, System{}, UDP, IPv6)
	for _, tt := range []struct {
		opt SockOption
		set int
	}{
		{SockOptReuseAddr, 1}, {SockOptKeepAlive, 1}, {SockOptOOBInline, 1},
		{SockOptDontRoute, 1}, {SockOptTCPNoDelay, 1}, {SockOptRcvLowat, 16},
		{SockOptSndBuf, 65536}, {SockOptRcvBuf, 65536}, {SockOptLinger, 3}, {SockOptLinger, -1},
	} {
		if err := tcp.SetOption(tt.opt, tt.set); err != nil {
			t.Errorf("SetOption(%d, %d): %v", tt.opt, tt.set, err)
			continue
		}
		if v, err := tcp.GetOption(tt.opt); err != nil || v != tt.set {
			t.Errorf("GetOption(%d) = %d, %v; want %d", tt.opt, v, err, tt.set)
		}
	}
	if err := tcp.SetOption(SockOptLinger, 1000); err != nil {
		t.Fatal(err)
	}
	if v, _ := tcp.GetOption(SockOptLinger); v != maxLingerSeconds {
		t.Errorf("linger not capped: %d", v)
	}
	if err := udp.SetOption(SockOptBroadcast, 1); err != nil {
		t.Error(err)
	}
	for _, opt := range []SockOption{SockOptType, SockOptError, SockOptAcceptConn, SockOptRcvTimeo, SockOptSndTimeo, SockOptBindToDevice, 200} {
		if err := tcp.SetOption(opt, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
			t.Errorf("SetOption(%d) = %v, want ENOPROTOOPT", opt, err)
		}
	}
	for _, opt := range []SockOption{SockOptRcvTimeo, SockOptSndTimeo, SockOptBindToDevice, 200} {
		if _, err := tcp.GetOption(opt); !errors.Is(err, syscall.ENOPROTOOPT) {
			t.Errorf("GetOption(%d) = %v, want ENOPROTOOPT", opt, err)
		}
	}
	if _, err := udp.GetOption(SockOptTCPNoDelay); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Errorf("UDP TCP_NODELAY = %v", err)
	}
	if err := tcp.Shutdown(7); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Shutdown(7) = %v", err)
	}
}

func TestSystemSocketErrors(t *testing.T) {
	if _, err := (System{}).Socket(context.Background(), TCP, 5); !errors.Is(err, syscall.EAFNOSUPPORT) {
		t.Errorf("family 5: %v", err)
	}
	if _, err := (System{}).Socket(context.Background(), 9, IPv4); !errors.Is(err, syscall.EPROTONOSUPPORT) {
		t.Errorf("proto 9: %v", err)
	}
}

func TestSystemResolveLiteral(t *testing.T) {
	got, err := System{}.ResolveAddresses(context.Background(), "::ffff:127.0.0.1")
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := (System{}).ResolveAddresses(context.Background(), "fe80::1%lo"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("zoned literal: %v", err)
	}
	got, err = System{}.ResolveAddresses(context.Background(), "localhost")
	if err != nil || len(got) == 0 || !got[0].IsLoopback() {
		t.Fatalf("localhost: %v, %v", got, err)
	}
}

// loopbackTCP is a real listener (Go's net) that records connections.
type loopbackTCP struct {
	ln    net.Listener
	conns chan net.Conn
}

func newLoopbackTCP(t testing.TB) *loopbackTCP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &loopbackTCP{ln: ln, conns: make(chan net.Conn, 1024)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-l.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return l
}

func (l *loopbackTCP) addr() netip.AddrPort { return netip.MustParseAddrPort(l.ln.Addr().String()) }

// expectNone fails if a connection arrives within d.
func (l *loopbackTCP) expectNone(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case c := <-l.conns:
		t.Fatalf("listener saw a connection from %v", c.RemoteAddr())
	case <-time.After(d):
	}
}

func (l *loopbackTCP) expectOne(t testing.TB) net.Conn {
	t.Helper()
	select {
	case c := <-l.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("listener saw no connection")
	}
	return nil
}

// TestSystemCloseWhileInUse closes sockets while other goroutines use
// them (run with -race): every call either works or fails with EBADF.
// TestSystemCloseWaitsForUse checks that no call reaches a reused
// descriptor number.
func TestSystemCloseWhileInUse(t *testing.T) {
	ctx := context.Background()
	for range 20 {
		s, err := System{}.Socket(ctx, UDP, IPv4)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 4)
		for range 4 {
			go func() {
				buf := make([]byte, 8)
				for range 200 {
					_, _, _, err := s.Recv(ctx, [][]byte{buf}, 0)
					if err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EBADF) {
						done <- err
						return
					}
					s.LocalAddr()
					s.Fd()
				}
				done <- nil
			}()
		}
		s.Close()
		for range 4 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Close waits for a call that holds the descriptor: until the call ends
// the number stays open, so no new socket can get it and the call cannot
// reach someone else's socket.
func TestSystemCloseWaitsForUse(t *testing.T) {
	ctx := context.Background()
	s, err := System{}.Socket(ctx, UDP, IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	inUse, release := make(chan int), make(chan struct{})
	var first atomic.Bool
	testHookUse = func(fd int) {
		if first.CompareAndSwap(false, true) {
			inUse <- fd
			<-release
		}
	}
	defer func() { testHookUse = nil }()
	recvDone := make(chan error)
	go func() {
		_, _, _, err := s.Recv(ctx, [][]byte{make([]byte, 8)}, 0)
		recvDone <- err
	}()
	fd := <-inUse
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	for range 20 {
		select {
		case <-closed:
			t.Fatal("Close returned while a call held the descriptor")
		default:
		}
		n, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(n)
		if n == fd {
			t.Fatalf("descriptor %d was reused while a call held it", fd)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if err := <-recvDone; err != nil && !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("the call that held the descriptor: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Recv(ctx, [][]byte{make([]byte, 8)}, 0); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Recv after Close: %v, want EBADF", err)
	}
}
