//go:build linux

package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/internal/testenv"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// plainNetwork is System with sockets that offer only the Socket
// interface (no acceptPeer), like a Network from outside this package.
type plainNetwork struct{ System }

type plainSocket struct{ Socket }

func (n plainNetwork) Socket(ctx context.Context, proto Proto, family Family) (Socket, error) {
	s, err := n.System.Socket(ctx, proto, family)
	if err != nil {
		return nil, err
	}
	return plainSocket{s}, nil
}

func (s plainSocket) Accept(ctx context.Context) (Socket, error) {
	c, err := s.Socket.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return plainSocket{c}, nil
}

// The peer that tcp.accept decides is the connecting socket's address,
// port included, whether it comes with the connection (accept4, System)
// or from PeerAddr (any other Network); IPv4, IPv6, and IPv4 reaching an
// IPv6 listener (unmapped).
func TestAcceptRequestPeer(t *testing.T) {
	v4 := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	cases := []struct {
		name   string
		family Family
		dial   netip.Addr
	}{
		{"ipv4", IPv4, v4},
		{"ipv6", IPv6, netip.IPv6Loopback()},
		{"ipv4-on-ipv6", IPv6, v4},
	}
	for _, base := range []struct {
		name string
		nw   Network
	}{{"system", nil}, {"plain", plainNetwork{}}} {
		for _, tc := range cases {
			t.Run(base.name+"/"+tc.name, func(t *testing.T) {
				testAcceptPeer(t, base.nw, tc.family, tc.dial)
			})
		}
	}
}

func testAcceptPeer(t *testing.T, base Network, fam Family, dial netip.Addr) {
	ctx := context.Background()
	var mu sync.Mutex
	var reqs []Request
	d := &Default{Network: base, Policy: PolicyFunc(func(_ context.Context, r *Request) (Verdict, error) {
		if r.Op == policy.OpTCPAccept {
			mu.Lock()
			reqs = append(reqs, *r)
			mu.Unlock()
		}
		return policy.Allow("test"), nil
	})}
	l, err := d.Socket(ctx, TCP, fam)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bindAddr := netip.IPv4Unspecified()
	if fam == IPv6 {
		bindAddr = netip.IPv6Unspecified()
	}
	if err := l.Bind(ctx, netip.AddrPortFrom(bindAddr, 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(ctx, 8); err != nil {
		t.Fatal(err)
	}
	la, err := l.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	var want []netip.AddrPort
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", netip.AddrPortFrom(dial, la.Port()).String())
		if err != nil {
			if dial.Is6() {
				testenv.Missing(t, "IPv6 loopback", err)
			}
			t.Fatal(err)
		}
		defer c.Close()
		me := netip.MustParseAddrPort(c.LocalAddr().String())
		want = append(want, netip.AddrPortFrom(me.Addr().Unmap(), me.Port()))
		var a Socket
		for deadline := time.Now().Add(5 * time.Second); ; {
			a, err = l.Accept(ctx)
			if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		if pa, err := a.PeerAddr(); err != nil || pa != want[i] {
			t.Errorf("accepted PeerAddr = %v, %v; want %v", pa, err, want[i])
		}
		a.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != len(want) {
		t.Fatalf("%d tcp.accept requests, want %d", len(reqs), len(want))
	}
	for i, r := range reqs {
		if got := netip.AddrPortFrom(r.Addr, r.Port); got != want[i] {
			t.Errorf("request %d: peer %v, want %v", i, got, want[i])
		}
		if r.Local != la {
			t.Errorf("request %d: Local %v, want %v", i, r.Local, la)
		}
	}
	if n := d.OpenSockets(); n != 1 {
		t.Errorf("%d sockets open, want 1 (the listener)", n)
	}
}

// A Network whose Accept breaks the contract (nil socket, nil error) is
// refused, not dereferenced.
func TestAcceptNilSocket(t *testing.T) {
	d := &Default{Network: nilAcceptNetwork{}, Policy: PolicyFunc(func(context.Context, *Request) (Verdict, error) {
		return policy.Allow("test"), nil
	})}
	l, err := d.Socket(context.Background(), TCP, IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := l.Accept(context.Background()); c != nil || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Accept = %v, %v; want EINVAL", c, err)
	}
	l.Close()
	if n := d.OpenSockets(); n != 0 {
		t.Fatalf("%d sockets open after a refused accept", n)
	}
}

type nilAcceptNetwork struct{ System }

type nilAcceptSocket struct{ Socket }

func (nilAcceptNetwork) Socket(ctx context.Context, proto Proto, family Family) (Socket, error) {
	s, err := System{}.Socket(ctx, proto, family)
	if err != nil {
		return nil, err
	}
	return nilAcceptSocket{s}, nil
}

func (nilAcceptSocket) LocalAddr() (netip.AddrPort, error) {
	return netip.MustParseAddrPort("127.0.0.1:1"), nil
}

func (nilAcceptSocket) Accept(context.Context) (Socket, error) { return nil, nil }

// BenchmarkDefaultAccept: one tcp.accept decision and the accept itself
// (loopback connections already queued; dialing and closing are not
// timed), with the peer from accept4 (system) or from PeerAddr (plain).
//
//	go test -run XXX -bench DefaultAccept ./network/
func BenchmarkDefaultAccept(b *testing.B) {
	for _, base := range []struct {
		name string
		nw   Network
	}{{"system", nil}, {"plain", plainNetwork{}}} {
		b.Run(base.name, func(b *testing.B) {
			ctx := context.Background()
			d := &Default{Network: base.nw, Policy: PolicyFunc(func(context.Context, *Request) (Verdict, error) {
				return policy.Allow("bench"), nil
			})}
			l, err := d.Socket(ctx, TCP, IPv4)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			if err := l.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
				b.Fatal(err)
			}
			if err := l.Listen(ctx, 128); err != nil {
				b.Fatal(err)
			}
			la, _ := l.LocalAddr()
			const batch = 64
			conns := make([]net.Conn, 0, batch)
			accepted := make([]Socket, 0, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				b.StopTimer()
				n := min(batch, b.N-done)
				for range n {
					c, err := net.Dial("tcp4", la.String())
					if err != nil {
						b.Fatal(err)
					}
					conns = append(conns, c)
				}
				b.StartTimer()
				for len(accepted) < n {
					a, err := l.Accept(ctx)
					if errors.Is(err, syscall.EAGAIN) {
						continue
					}
					if err != nil {
						b.Fatal(err)
					}
					accepted = append(accepted, a)
				}
				b.StopTimer()
				for _, a := range accepted {
					a.Close()
				}
				for _, c := range conns {
					c.Close()
				}
				conns, accepted = conns[:0], accepted[:0]
				done += n
				b.StartTimer()
			}
		})
	}
}
