//go:build linux

package network

import (
	"context"
	"net/netip"
	"testing"
)

// nopNet is a Network whose sockets do nothing and succeed at once, so
// that a benchmark of Default over it measures Default's own work: the
// decisions' bookkeeping, the counters and the quota checks.
type nopNet struct{}

func (nopNet) ResolveAddresses(ctx context.Context, name string) ([]netip.Addr, error) {
	return nil, ErrNotFound
}

func (nopNet) Socket(ctx context.Context, p Proto, f Family) (Socket, error) {
	return &nopSock{p: p, f: f}, nil
}

type nopSock struct {
	p Proto
	f Family
}

func (s *nopSock) Proto() Proto                                        { return s.p }
func (s *nopSock) Family() Family                                      { return s.f }
func (s *nopSock) Bind(ctx context.Context, a netip.AddrPort) error    { return nil }
func (s *nopSock) Connect(ctx context.Context, a netip.AddrPort) error { return nil }
func (s *nopSock) Listen(ctx context.Context, backlog int) error       { return nil }
func (s *nopSock) Accept(ctx context.Context) (Socket, error)          { return &nopSock{p: s.p, f: s.f}, nil }
func (s *nopSock) Recv(ctx context.Context, bufs [][]byte, fl RecvFlags) (int, netip.AddrPort, RecvResult, error) {
	return len(bufs[0]), netip.AddrPort{}, 0, nil
}
func (s *nopSock) Send(ctx context.Context, bufs [][]byte, to netip.AddrPort, fl SendFlags) (int, error) {
	return len(bufs[0]), nil
}
func (s *nopSock) Shutdown(how ShutdownHow) error      { return nil }
func (s *nopSock) GetOption(o SockOption) (int, error) { return 0, nil }
func (s *nopSock) SetOption(o SockOption, v int) error { return nil }
func (s *nopSock) LocalAddr() (netip.AddrPort, error) {
	return netip.MustParseAddrPort("127.0.0.1:1"), nil
}
func (s *nopSock) PeerAddr() (netip.AddrPort, error) {
	return netip.MustParseAddrPort("127.0.0.1:2"), nil
}
func (s *nopSock) Fd() int      { return -1 }
func (s *nopSock) Close() error { return nil }

// BenchmarkGuardConnect is Default's own cost of socket + connect + close
// (the base network does nothing; the policy allows at once).
func BenchmarkGuardConnect(b *testing.B) {
	d := &Default{Network: nopNet{}, Policy: PolicyFunc(allowAll)}
	benchGuardConnect(b, d)
}

func benchGuardConnect(b *testing.B, d *Default) {
	ctx := context.Background()
	to := netip.MustParseAddrPort("127.0.0.1:80")
	b.ReportAllocs()
	for b.Loop() {
		s, err := d.Socket(ctx, TCP, IPv4)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Connect(ctx, to); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkGuardSend and BenchmarkGuardRecv are Default's own cost of one
// stream send / receive.
func BenchmarkGuardSend(b *testing.B) {
	benchGuardIO(b, &Default{Network: nopNet{}, Policy: PolicyFunc(allowAll)}, true)
}

func BenchmarkGuardRecv(b *testing.B) {
	benchGuardIO(b, &Default{Network: nopNet{}, Policy: PolicyFunc(allowAll)}, false)
}

func benchGuardIO(b *testing.B, d *Default, send bool) {
	ctx := context.Background()
	s, err := d.Socket(ctx, TCP, IPv4)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Connect(ctx, netip.MustParseAddrPort("127.0.0.1:80")); err != nil {
		b.Fatal(err)
	}
	bufs := [][]byte{make([]byte, 512)}
	b.ReportAllocs()
	for b.Loop() {
		if send {
			s.Send(ctx, bufs, netip.AddrPort{}, 0)
		} else {
			s.Recv(ctx, bufs, 0)
		}
	}
}
