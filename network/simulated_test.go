package network

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestSimulatedThroughDefault runs a guest's whole life through Default on
// a Simulated network and checks the decisions, as `wasmgate decide` does.
func TestSimulatedThroughDefault(t *testing.T) {
	ctx := context.Background()
	sim := &Simulated{}
	var got []string
	d := &Default{Network: sim, Policy: PolicyFunc(func(ctx context.Context, r *Request) (Verdict, error) {
		got = append(got, string(r.Op)+" "+netip.AddrPortFrom(r.Addr, r.Port).String()+" "+r.Local.String())
		if r.Port == 666 {
			return policy.Deny("evil"), nil
		}
		return policy.Allow(""), nil
	})}
	expect := func(want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("decisions %q, want %q", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("decisions %q, want %q", got, want)
			}
		}
		got = nil
	}

	// Listen on an unbound socket: implicit bind decided, then listen.
	l, _ := d.Socket(ctx, TCP, IPv6)
	if err := l.Listen(ctx, 8); err != nil {
		t.Fatal(err)
	}
	la, _ := l.LocalAddr()
	if la.Addr() != netip.IPv6Unspecified() || la.Port() < 49152 {
		t.Fatalf("listener at %v", la)
	}
	expect("tcp.bind [::]:0 invalid AddrPort", "tcp.listen "+la.String()+" invalid AddrPort")

	// Two connections arrive (one over IPv4, to the dual-stack wildcard);
	// the denied one is invisible.
	if err := sim.Dial(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), la.Port()), netip.MustParseAddrPort("203.0.113.9:666")); err != nil {
		t.Fatal(err)
	}
	if err := sim.Dial(la, netip.MustParseAddrPort("[::ffff:203.0.113.9]:5555")); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pa, _ := c.PeerAddr(); pa != netip.MustParseAddrPort("203.0.113.9:5555") {
		t.Fatalf("accepted %v", pa)
	}
	if _, err := l.Accept(ctx); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("second Accept = %v", err)
	}
	expect("tcp.accept 203.0.113.9:666 "+la.String(), "tcp.accept 203.0.113.9:5555 "+la.String())
	if d.OpenSockets() != 2 {
		t.Fatalf("open = %d", d.OpenSockets())
	}

	// UDP: bind, receive (one denied, dropped), send, connect.
	u, _ := d.Socket(ctx, UDP, IPv4)
	if err := u.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:5353")); err != nil {
		t.Fatal(err)
	}
	sim.Deliver(netip.MustParseAddrPort("127.0.0.1:5353"), netip.MustParseAddrPort("192.0.2.1:666"), []byte("bad"))
	sim.Deliver(netip.MustParseAddrPort("127.0.0.1:5353"), netip.MustParseAddrPort("192.0.2.1:53"), []byte("good!"))
	buf := make([]byte, 4)
	n, from, out, err := u.Recv(ctx, [][]byte{buf}, 0)
	if err != nil || string(buf[:n]) != "good" || out != RecvTruncated || from.Port() != 53 {
		t.Fatalf("Recv = %q %v %v %v", buf[:n], from, out, err)
	}
	if _, _, _, err := u.Recv(ctx, [][]byte{buf}, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("Recv = %v", err)
	}
	if _, err := u.Send(ctx, [][]byte{[]byte("x")}, netip.MustParseAddrPort("192.0.2.53:53"), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Connect(ctx, netip.MustParseAddrPort("192.0.2.53:666")); !errors.Is(err, ErrDenied) {
		t.Fatalf("Connect = %v", err)
	}
	expect("udp.bind 127.0.0.1:5353 invalid AddrPort", "udp.recv 192.0.2.1:666 invalid AddrPort",
		"udp.recv 192.0.2.1:53 invalid AddrPort", "udp.send 192.0.2.53:53 invalid AddrPort",
		"udp.connect 192.0.2.53:666 invalid AddrPort")

	// Closing releases the binding: the port can be bound again.
	u.Close()
	u2, _ := d.Socket(ctx, UDP, IPv4)
	if err := u2.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:5353")); err != nil {
		t.Fatal(err)
	}
	u3, _ := d.Socket(ctx, UDP, IPv4)
	if err := u3.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:5353")); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("double bind = %v", err)
	}
	if u3.Fd() != -1 {
		t.Fatal("simulated socket has an fd")
	}
}

func allowAllPolicy() Policy {
	return PolicyFunc(func(context.Context, *Request) (Verdict, error) { return policy.Allow(""), nil })
}

// BenchmarkDefaultOverhead measures the decision path of Default alone
// (a Simulated network makes no system calls).
func BenchmarkDefaultOverhead(b *testing.B) {
	ctx := context.Background()
	to := netip.MustParseAddrPort("192.0.2.1:443")
	b.Run("Connect", func(b *testing.B) {
		d := &Default{Network: &Simulated{}, Policy: allowAllPolicy()}
		b.ReportAllocs()
		for b.Loop() {
			s, _ := d.Socket(ctx, TCP, IPv4)
			if err := s.Connect(ctx, to); err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("ConnectSimulatedOnly", func(b *testing.B) {
		n := &Simulated{}
		b.ReportAllocs()
		for b.Loop() {
			s, _ := n.Socket(ctx, TCP, IPv4)
			if err := s.Connect(ctx, to); err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("SendTo", func(b *testing.B) {
		d := &Default{Network: &Simulated{}, Policy: allowAllPolicy()}
		s, _ := d.Socket(ctx, UDP, IPv4)
		msg := [][]byte{[]byte("x")}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Send(ctx, msg, to, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SendToWithNames", func(b *testing.B) {
		d := &Default{Network: &Simulated{}, Policy: allowAllPolicy(), Resolver: DNSResolver{
			Hosts: map[string][]netip.Addr{"api.example.test": {to.Addr()}, "cdn.example.test": {to.Addr()}}}}
		d.ResolveAddresses(ctx, "api.example.test")
		d.ResolveAddresses(ctx, "cdn.example.test")
		s, _ := d.Socket(ctx, UDP, IPv4)
		msg := [][]byte{[]byte("x")}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Send(ctx, msg, to, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Resolve", func(b *testing.B) {
		d := &Default{Network: &Simulated{}, Policy: allowAllPolicy(), Resolver: DNSResolver{
			Hosts: map[string][]netip.Addr{"api.example.test": {to.Addr(), netip.MustParseAddr("2001:db8::1")}}}}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.ResolveAddresses(ctx, "api.example.test"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDefaultMaxAnswers: a huge answer is cut to MaxAnswers before any
// decision.
func TestDefaultMaxAnswers(t *testing.T) {
	var many []netip.Addr
	for i := range 300 {
		many = append(many, netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
	}
	decisions := 0
	d := &Default{
		Network:  &Simulated{},
		Resolver: DNSResolver{Hosts: map[string][]netip.Addr{"big.test": many}},
		Policy: PolicyFunc(func(ctx context.Context, r *Request) (Verdict, error) {
			decisions++
			return policy.Allow(""), nil
		}),
	}
	got, err := d.ResolveAddresses(context.Background(), "big.test")
	if err != nil || len(got) != MaxAnswers || decisions != 1+MaxAnswers {
		t.Fatalf("got %d addresses, %d decisions, %v", len(got), decisions, err)
	}
}

// TestDefaultFloodBounded: one Recv or Accept drops at most maxSkips denied
// datagrams or connections, then says EAGAIN; the next call goes on.
func TestDefaultFloodBounded(t *testing.T) {
	ctx := context.Background()
	sim := &Simulated{}
	d := &Default{Network: sim, Policy: PolicyFunc(func(ctx context.Context, r *Request) (Verdict, error) {
		if r.Port == 666 {
			return policy.Deny("flood"), nil
		}
		return policy.Allow(""), nil
	})}
	u, _ := d.Socket(ctx, UDP, IPv4)
	at := netip.MustParseAddrPort("127.0.0.1:5000")
	if err := u.Bind(ctx, at); err != nil {
		t.Fatal(err)
	}
	l, _ := d.Socket(ctx, TCP, IPv4)
	if err := l.Bind(ctx, at); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(ctx, 1); err != nil {
		t.Fatal(err)
	}
	bad := netip.MustParseAddrPort("192.0.2.1:666")
	for range maxSkips + 10 {
		sim.Deliver(at, bad, []byte("x"))
		sim.Dial(at, bad)
	}
	sim.Deliver(at, netip.MustParseAddrPort("192.0.2.1:53"), []byte("ok"))
	sim.Dial(at, netip.MustParseAddrPort("192.0.2.1:53"))
	buf := make([]byte, 4)
	if _, _, _, err := u.Recv(ctx, [][]byte{buf}, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("first Recv = %v, want EAGAIN", err)
	}
	if n, _, _, err := u.Recv(ctx, [][]byte{buf}, 0); err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("second Recv = %q, %v", buf[:n], err)
	}
	if _, err := l.Accept(ctx); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("first Accept = %v, want EAGAIN", err)
	}
	if c, err := l.Accept(ctx); err != nil {
		t.Fatalf("second Accept = %v", err)
	} else if pa, _ := c.PeerAddr(); pa.Port() != 53 {
		t.Fatalf("accepted %v", pa)
	}
}
