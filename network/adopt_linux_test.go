package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestAdoptListener: only a listening TCP socket (Multipath TCP, Go's
// default for net.Listen, included) is adopted, as a duplicate that
// accepts its connections; a connection, a UDP socket or a UNIX listener
// is ENOTSOCK, and the caller's socket is never closed.
func TestAdoptListener(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := System{}.AdoptListener(ctx, ln.(*net.TCPListener))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LocalAddr(); got.String() != ln.Addr().String() || s.Proto() != TCP || s.Family() != IPv4 {
		t.Errorf("adopted %v %v %v, want tcp ip4 %s", s.Proto(), s.Family(), got, ln.Addr())
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var a Socket
	for a == nil {
		a, err = s.Accept(ctx)
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			t.Fatal(err)
		}
	}
	a.Close()
	s.Close()
	if _, err := ln.(*net.TCPListener).SyscallConn(); err != nil {
		t.Errorf("the caller's listener: %v", err)
	}

	conn := c.(*net.TCPConn)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	ux, err := net.Listen("unix", t.TempDir()+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ux.Close()
	for name, l := range map[string]syscall.Conn{"connection": conn, "udp": udp.(*net.UDPConn), "unix": ux.(*net.UnixListener)} {
		if s, err := (System{}).AdoptListener(ctx, l); !errors.Is(err, syscall.ENOTSOCK) {
			t.Errorf("%s: adopted (%v, %v), want ENOTSOCK", name, s, err)
		}
	}
}

// TestDefaultAdoptListener: Default decides tcp.bind and tcp.listen of the
// listener's address, a denial closes only the duplicate, and the adopted
// socket counts against MaxSockets.
func TestDefaultAdoptListener(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := netip.MustParseAddrPort(ln.Addr().String())
	var ops []policy.Op
	allow := true
	d := &Default{MaxSockets: 1, Policy: PolicyFunc(func(ctx context.Context, r *Request) (Verdict, error) {
		if r.Addr != want.Addr() || r.Port != want.Port() {
			t.Errorf("%s decided for %v:%d, want %s", r.Op, r.Addr, r.Port, want)
		}
		ops = append(ops, r.Op)
		if !allow && r.Op == policy.OpTCPListen {
			return policy.Deny("no"), nil
		}
		return policy.Allow(""), nil
	})}
	s, err := d.AdoptListener(ctx, ln.(*net.TCPListener))
	if err != nil || len(ops) != 2 || ops[0] != policy.OpTCPBind || ops[1] != policy.OpTCPListen {
		t.Fatalf("adopt: %v, decided %v; want tcp.bind, tcp.listen", err, ops)
	}
	if _, err := d.AdoptListener(ctx, ln.(*net.TCPListener)); !errors.Is(err, syscall.EMFILE) {
		t.Errorf("second adopt at MaxSockets 1: %v, want EMFILE", err)
	}
	s.Close()
	allow = false
	var de *DeniedError
	if _, err := d.AdoptListener(ctx, ln.(*net.TCPListener)); !errors.As(err, &de) {
		t.Errorf("denied adopt: %v, want a DeniedError", err)
	}
	if n := d.OpenSockets(); n != 0 {
		t.Errorf("%d sockets open after a denied adopt", n)
	}
	if _, err := (&Default{Network: noAdopter{}}).AdoptListener(ctx, ln.(*net.TCPListener)); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("over a Network that cannot adopt: %v, want EOPNOTSUPP", err)
	}
}

type noAdopter struct{ Network }
