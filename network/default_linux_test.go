//go:build linux

package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
	"golang.org/x/sys/unix"
)

// recorder is a Policy that records every request and decides with fn
// (allow everything when fn is nil).
type recorder struct {
	mu   sync.Mutex
	reqs []Request
	fn   func(*Request) (Verdict, error)
}

func (r *recorder) Decide(ctx context.Context, req *Request) (Verdict, error) {
	c := *req
	c.Names = slices.Clone(req.Names)
	r.mu.Lock()
	r.reqs = append(r.reqs, c)
	fn := r.fn
	r.mu.Unlock()
	if fn == nil {
		return policy.Allow("test"), nil
	}
	return fn(req)
}

// take returns the recorded requests and forgets them.
func (r *recorder) take() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func (r *recorder) setFn(fn func(*Request) (Verdict, error)) {
	r.mu.Lock()
	r.fn = fn
	r.mu.Unlock()
}

// mapResolver answers from a map and counts lookups.
type mapResolver struct {
	answers map[string][]Answer
	calls   atomic.Int32
}

func (m *mapResolver) Lookup(ctx context.Context, name string) ([]Answer, error) {
	m.calls.Add(1)
	if a, ok := m.answers[name]; ok {
		return slices.Clone(a), nil
	}
	return nil, ErrNotFound
}

var (
	testTime   = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	testLabels = map[string]string{"tenant": "a"}
	lo4        = netip.MustParseAddr("127.0.0.1")
)

func newTestDefault(rec *recorder) (*Default, *mapResolver, *fakeClock) {
	clock := &fakeClock{t: testTime}
	res := &mapResolver{answers: map[string][]Answer{
		"svc.test":   {{Addr: lo4, TTL: 30 * time.Second}},
		"other.test": {{Addr: lo4}},
		"multi.test": {
			{Addr: netip.MustParseAddr("198.51.100.10"), TTL: time.Minute},
			{Addr: netip.MustParseAddr("::ffff:198.51.100.11"), TTL: time.Minute}, // unmapped by Default
			{Addr: netip.MustParseAddr("198.51.100.10"), TTL: time.Minute},        // duplicate, decided once
			{Addr: netip.MustParseAddr("2001:db8::1")},
		},
	}}
	d := &Default{Policy: rec, Resolver: res, Guest: "app", Labels: testLabels, Now: clock.Now}
	return d, res, clock
}

// req builds the expected request, with the fields every request carries.
func req(op policy.Op, addr string, port uint16, mod ...func(*Request)) Request {
	r := Request{Op: op, Proto: op.Proto(), Port: port, Guest: "app", Labels: testLabels, TimeMs: testTime.UnixMilli()}
	if addr != "" {
		r.Addr = netip.MustParseAddr(addr)
	}
	for _, m := range mod {
		m(&r)
	}
	return r
}

func names(n ...string) func(*Request) { return func(r *Request) { r.Names = n } }
func name(n string) func(*Request)     { return func(r *Request) { r.Name = n } }
func local(ap netip.AddrPort) func(*Request) {
	return func(r *Request) { r.Local = ap }
}

func expectReqs(t *testing.T, rec *recorder, want ...Request) {
	t.Helper()
	got := rec.take()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("requests:\n got  %+v\n want %+v", got, want)
	}
}

// TestDefaultRequests runs every op (docs/policy.md#ops) through Default and
// checks that each produces exactly one request with the right fields.
func TestDefaultRequests(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	d, _, _ := newTestDefault(rec)

	// dns.lookup, then dns.answer per distinct canonical address.
	addrs, err := d.ResolveAddresses(ctx, "Multi.TEST.")
	if err != nil {
		t.Fatal(err)
	}
	wantAddrs := []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("2001:db8::1")}
	if !slices.Equal(addrs, wantAddrs) {
		t.Fatalf("addrs = %v", addrs)
	}
	expectReqs(t, rec,
		req(policy.OpDNSLookup, "", 0, name("multi.test")),
		req(policy.OpDNSAnswer, "198.51.100.10", 0, name("multi.test")),
		req(policy.OpDNSAnswer, "198.51.100.11", 0, name("multi.test")),
		req(policy.OpDNSAnswer, "2001:db8::1", 0, name("multi.test")),
	)
	// An IP literal is not a lookup: no request, no binding.
	if a, err := d.ResolveAddresses(ctx, "::ffff:127.0.0.1"); err != nil || !slices.Equal(a, []netip.Addr{lo4}) {
		t.Fatalf("literal: %v, %v", a, err)
	}
	expectReqs(t, rec)
	if _, err := d.ResolveAddresses(ctx, "svc.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ResolveAddresses(ctx, "other.test"); err != nil {
		t.Fatal(err)
	}
	rec.take()

	// tcp.connect, with the names bound to the address, most recent first.
	peer := newLoopbackTCP(t)
	c := mustSocket(t, d, TCP, IPv4)
	connectWait(t, c, peer.addr())
	peer.expectOne(t).Close()
	expectReqs(t, rec, req(policy.OpTCPConnect, "127.0.0.1", peer.addr().Port(), names("other.test", "svc.test")))

	// tcp.bind (explicit) then tcp.listen with the actual address.
	l := mustSocket(t, d, TCP, IPv4)
	if err := l.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	expectReqs(t, rec, req(policy.OpTCPBind, "127.0.0.1", 0))
	if err := l.Listen(ctx, 8); err != nil {
		t.Fatal(err)
	}
	la, _ := l.LocalAddr()
	expectReqs(t, rec, req(policy.OpTCPListen, "127.0.0.1", la.Port()))

	// tcp.accept: peer address and the listener's local address.
	pc, err := net.Dial("tcp", la.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	acceptWait(t, l)
	pa := netip.MustParseAddrPort(pc.LocalAddr().String())
	expectReqs(t, rec, req(policy.OpTCPAccept, "127.0.0.1", pa.Port(), local(la), names("other.test", "svc.test")))

	// Listen on an unbound socket: tcp.bind of the wildcard, port 0, then
	// tcp.listen of the address the kernel chose.
	for _, fam := range []Family{IPv4, IPv6} {
		l2 := mustSocket(t, d, TCP, fam)
		if err := l2.Listen(ctx, 8); err != nil {
			t.Fatal(err)
		}
		la2, _ := l2.LocalAddr()
		wild := "0.0.0.0"
		if fam == IPv6 {
			wild = "::"
		}
		if la2.Addr().String() != wild || la2.Port() == 0 {
			t.Fatalf("implicit bind gave %v", la2)
		}
		expectReqs(t, rec, req(policy.OpTCPBind, wild, 0), req(policy.OpTCPListen, wild, la2.Port()))
	}

	// udp.bind, udp.recv.
	u := mustSocket(t, d, UDP, IPv4)
	if err := u.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	ua, _ := u.LocalAddr()
	expectReqs(t, rec, req(policy.OpUDPBind, "127.0.0.1", 0))
	pu, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pu.Close()
	pua := netip.MustParseAddrPort(pu.LocalAddr().String())
	if _, err := pu.WriteTo([]byte("hi"), net.UDPAddrFromAddrPort(ua)); err != nil {
		t.Fatal(err)
	}
	waitFd(t, u, unix.POLLIN)
	buf := make([]byte, 8)
	if n, from, _, err := u.Recv(ctx, [][]byte{buf}, 0); err != nil || string(buf[:n]) != "hi" || from != pua {
		t.Fatalf("Recv = %q from %v, %v", buf[:n], from, err)
	}
	expectReqs(t, rec, req(policy.OpUDPRecv, "127.0.0.1", pua.Port(), names("other.test", "svc.test")))

	// udp.send with names; an IPv4-mapped destination is decided as IPv4.
	if _, err := u.Send(ctx, [][]byte{[]byte("x")}, netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), pua.Port()), 0); err != nil {
		t.Fatal(err)
	}
	expectReqs(t, rec, req(policy.OpUDPSend, "127.0.0.1", pua.Port(), names("other.test", "svc.test")))

	// udp.connect with names; Send to the connected peer is not decided
	// again; Recv from it is.
	u6 := mustSocket(t, d, UDP, IPv6)
	if err := u6.Connect(ctx, pua); err != nil {
		t.Fatal(err)
	}
	expectReqs(t, rec, req(policy.OpUDPConnect, "127.0.0.1", pua.Port(), names("other.test", "svc.test")))
	if _, err := u6.Send(ctx, [][]byte{[]byte("y")}, netip.AddrPort{}, 0); err != nil {
		t.Fatal(err)
	}
	expectReqs(t, rec)
	pu.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 2 {
		if _, _, err := pu.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
	}

	// Options, addresses, shutdown and close need no decision.
	u6.GetOption(SockOptRcvBuf)
	u6.LocalAddr()
	u.Close()
	expectReqs(t, rec)
}

func isDenied(t *testing.T, err error, op policy.Op) *DeniedError {
	t.Helper()
	var oe *OpError
	var de *DeniedError
	if !errors.Is(err, ErrDenied) || !errors.As(err, &oe) || !errors.As(err, &de) || de.Op != op {
		t.Fatalf("error %v: want *OpError{*DeniedError{Op: %s}}", err, op)
	}
	return de
}

func denyOp(op policy.Op) func(*Request) (Verdict, error) {
	return func(r *Request) (Verdict, error) {
		if r.Op == op {
			return policy.Deny("test denies " + string(op)), nil
		}
		return policy.Allow(""), nil
	}
}

// TestDefaultDeniedNeverReachesPeer proves with real loopback peers that a
// denied operation makes no system call that the peer could see, and, as a
// control, that the same operation allowed does reach it.
func TestDefaultDeniedNeverReachesPeer(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	d, _, _ := newTestDefault(rec)

	t.Run("tcp.connect", func(t *testing.T) {
		peer := newLoopbackTCP(t)
		rec.setFn(denyOp(policy.OpTCPConnect))
		c := mustSocket(t, d, TCP, IPv4)
		de := isDenied(t, c.Connect(ctx, peer.addr()), policy.OpTCPConnect)
		if de.Addr != peer.addr() || de.Reason != "test denies tcp.connect" {
			t.Errorf("DeniedError = %+v", de)
		}
		// The mapped form on an IPv6 socket is the same address: denied too.
		c6 := mustSocket(t, d, TCP, IPv6)
		mapped := netip.AddrPortFrom(netip.AddrFrom16(lo4.As16()), peer.addr().Port())
		isDenied(t, c6.Connect(ctx, mapped), policy.OpTCPConnect)
		peer.expectNone(t, 200*time.Millisecond)
		if _, err := c.PeerAddr(); !errors.Is(err, syscall.ENOTCONN) {
			t.Errorf("denied socket has a peer: %v", err)
		}
		// Control: allowed, the peer sees it (through the mapped form).
		rec.setFn(nil)
		connectWait(t, c6, mapped)
		peer.expectOne(t).Close()
	})

	t.Run("udp.send and udp.connect", func(t *testing.T) {
		pu, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pu.Close()
		to := netip.MustParseAddrPort(pu.LocalAddr().String())
		rec.setFn(func(r *Request) (Verdict, error) { return policy.Deny("no"), nil })
		u := mustSocket(t, d, UDP, IPv4)
		_, err = u.Send(ctx, [][]byte{[]byte("leak")}, to, 0)
		isDenied(t, err, policy.OpUDPSend)
		isDenied(t, u.Connect(ctx, to), policy.OpUDPConnect)
		if _, err := u.Send(ctx, [][]byte{[]byte("leak")}, netip.AddrPort{}, 0); !errors.Is(err, syscall.EDESTADDRREQ) {
			t.Errorf("Send on the unconnected socket = %v, want EDESTADDRREQ", err)
		}
		buf := make([]byte, 16)
		pu.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, from, err := pu.ReadFrom(buf); err == nil {
			t.Fatalf("peer got %q from %v", buf[:n], from)
		}
		rec.setFn(nil)
		if _, err := u.Send(ctx, [][]byte{[]byte("ok")}, to, 0); err != nil {
			t.Fatal(err)
		}
		pu.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _, err := pu.ReadFrom(buf); err != nil || string(buf[:n]) != "ok" {
			t.Fatalf("control: %q, %v", buf[:n], err)
		}
	})

	t.Run("bind and listen", func(t *testing.T) {
		rec.setFn(denyOp(policy.OpTCPBind))
		s := mustSocket(t, d, TCP, IPv4)
		isDenied(t, s.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")), policy.OpTCPBind)
		isDenied(t, s.Listen(ctx, 1), policy.OpTCPBind) // the implicit bind
		if la, _ := s.LocalAddr(); la.Port() != 0 {
			t.Fatalf("denied socket is bound to %v", la)
		}
		u := mustSocket(t, d, UDP, IPv4)
		rec.setFn(denyOp(policy.OpUDPBind))
		isDenied(t, u.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")), policy.OpUDPBind)
		if la, _ := u.LocalAddr(); la.Port() != 0 {
			t.Fatalf("denied UDP socket is bound to %v", la)
		}

		// Bind allowed, listen denied: nobody can connect.
		rec.setFn(denyOp(policy.OpTCPListen))
		if err := s.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
			t.Fatal(err)
		}
		isDenied(t, s.Listen(ctx, 1), policy.OpTCPListen)
		la, _ := s.LocalAddr()
		if c, err := net.DialTimeout("tcp", la.String(), time.Second); err == nil {
			c.Close()
			t.Fatal("connected to a socket whose listen was denied")
		}
		if v, _ := s.GetOption(SockOptAcceptConn); v != 0 {
			t.Fatal("socket listens")
		}
		rec.setFn(nil)
		if err := s.Listen(ctx, 1); err != nil {
			t.Fatal(err)
		}
		c, err := net.DialTimeout("tcp", la.String(), time.Second)
		if err != nil {
			t.Fatalf("control: %v", err)
		}
		c.Close()
	})

	t.Run("invalid before policy", func(t *testing.T) {
		rec.setFn(nil)
		rec.take()
		s := mustSocket(t, d, TCP, IPv6)
		if err := s.Connect(ctx, netip.MustParseAddrPort("[fe80::1%lo]:80")); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("zoned connect = %v", err)
		}
		if err := s.Bind(ctx, netip.AddrPort{}); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("zero bind = %v", err)
		}
		s4 := mustSocket(t, d, UDP, IPv4)
		// Port 0 is no destination: EINVAL, the policy is not asked (an
		// allow-all policy, or a rule without ports, would allow it).
		for _, to := range []string{"127.0.0.1:0", "[::1]:0", "[::ffff:127.0.0.1]:0"} {
			if err := s.Connect(ctx, netip.MustParseAddrPort(to)); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("TCP connect to %s = %v", to, err)
			}
		}
		if err := s4.Connect(ctx, netip.MustParseAddrPort("127.0.0.1:0")); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("UDP connect to port 0 = %v", err)
		}
		if _, err := s4.Send(ctx, [][]byte{nil}, netip.MustParseAddrPort("127.0.0.1:0"), 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("UDP send to port 0 = %v", err)
		}
		if _, err := s4.Send(ctx, [][]byte{nil}, netip.MustParseAddrPort("[::1]:53"), 0); !errors.Is(err, syscall.EAFNOSUPPORT) {
			t.Errorf("IPv6 to IPv4 socket = %v", err)
		}
		if _, err := s.Send(ctx, [][]byte{nil}, netip.MustParseAddrPort("[::1]:53"), 0); !errors.Is(err, syscall.EISCONN) {
			t.Errorf("TCP send with address = %v", err)
		}
		if err := s4.Listen(ctx, 1); !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Errorf("UDP listen = %v", err)
		}
		if err := s.SetOption(SockOptBindToDevice, 1); !errors.Is(err, syscall.ENOPROTOOPT) {
			t.Errorf("SO_BINDTODEVICE = %v", err)
		}
		if _, err := d.ResolveAddresses(ctx, "bad..name"); !errors.Is(err, ErrInvalidName) {
			t.Errorf("bad name = %v", err)
		}
		if _, err := d.ResolveAddresses(ctx, "fe80::1%lo"); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("zoned literal = %v", err)
		}
		expectReqs(t, rec)
	})
}

func TestDefaultAcceptDenied(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	d, _, _ := newTestDefault(rec)
	l := mustSocket(t, d, TCP, IPv4)
	if err := l.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(ctx, 8); err != nil {
		t.Fatal(err)
	}
	la, _ := l.LocalAddr()

	bad, err := net.Dial("tcp", la.String())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	badPort := netip.MustParseAddrPort(bad.LocalAddr().String()).Port()
	rec.setFn(func(r *Request) (Verdict, error) {
		if r.Op == policy.OpTCPAccept && r.Port == badPort {
			return policy.Deny("not this one"), nil
		}
		return policy.Allow(""), nil
	})
	waitFd(t, l, unix.POLLIN)
	before := d.OpenSockets()
	if _, err := l.Accept(ctx); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("Accept with only a denied connection pending = %v, want EAGAIN", err)
	}
	if d.OpenSockets() != before {
		t.Errorf("open sockets %d -> %d", before, d.OpenSockets())
	}
	// The denied peer's connection was closed.
	bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := bad.Read(make([]byte, 1)); err == nil || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
		t.Fatalf("denied peer read %d, %v; want EOF or reset", n, err)
	}
	// An allowed connection behind it is accepted.
	good, err := net.Dial("tcp", la.String())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	a := acceptWait(t, l)
	if pa, _ := a.PeerAddr(); pa.String() != good.LocalAddr().String() {
		t.Fatalf("accepted %v, want %v", pa, good.LocalAddr())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestDefaultRecvDenied(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	d, _, _ := newTestDefault(rec)
	u := mustSocket(t, d, UDP, IPv4)
	if err := u.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	ua, _ := u.LocalAddr()
	bad, _ := net.ListenPacket("udp", "127.0.0.1:0")
	good, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer bad.Close()
	defer good.Close()
	badPort := netip.MustParseAddrPort(bad.LocalAddr().String()).Port()
	rec.setFn(func(r *Request) (Verdict, error) {
		if r.Op == policy.OpUDPRecv && r.Port == badPort {
			return policy.Deny("spoofer"), nil
		}
		return policy.Allow(""), nil
	})
	to := net.UDPAddrFromAddrPort(ua)
	for _, flags := range []RecvFlags{0, RecvPeek} {
		bad.WriteTo([]byte("SECRET1"), to)
		bad.WriteTo([]byte("SECRET2"), to)
		good.WriteTo([]byte("good"), to)
		// A Recv drops the denied datagrams queued so far and gives EAGAIN
		// until the good one is there: retry instead of guessing when all
		// three have arrived.
		buf := []byte("xxxxxxxxxxxxxxxx")
		var n int
		var from netip.AddrPort
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			n, from, _, err = u.Recv(ctx, [][]byte{buf}, flags)
			if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || string(buf[:n]) != "good" || from.String() != good.LocalAddr().String() {
			t.Fatalf("flags %d: Recv = %q from %v, %v", flags, buf[:n], from, err)
		}
		if string(buf[n:]) != "xxxxxxxxxxxx" {
			t.Fatalf("flags %d: buffer touched by a denied datagram: %q", flags, buf)
		}
		if flags&RecvPeek != 0 { // still queued: read it for real
			if n, _, _, err := u.Recv(ctx, [][]byte{buf}, 0); err != nil || string(buf[:n]) != "good" {
				t.Fatalf("after peek: %q, %v", buf[:n], err)
			}
		}
		if _, _, _, err := u.Recv(ctx, [][]byte{buf}, 0); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("flags %d: Recv after = %v, want EAGAIN", flags, err)
		}
	}
}

func TestDefaultNameBinding(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	d, res, clock := newTestDefault(rec)
	d.NameTTL = 2 * time.Minute
	if _, err := d.ResolveAddresses(ctx, "svc.test"); err != nil { // TTL 30 s
		t.Fatal(err)
	}
	clock.Advance(10 * time.Second)
	if _, err := d.ResolveAddresses(ctx, "other.test"); err != nil { // no TTL: NameTTL
		t.Fatal(err)
	}
	if got := d.NamesFor(lo4); !slices.Equal(got, []string{"other.test", "svc.test"}) {
		t.Fatalf("NamesFor = %v", got)
	}
	if got := d.NamesFor(netip.MustParseAddr("::ffff:127.0.0.1")); len(got) != 2 {
		t.Fatalf("NamesFor(mapped) = %v", got)
	}
	clock.Advance(20 * time.Second) // svc.test bound at t0 for 30 s: expired
	if got := d.NamesFor(lo4); !slices.Equal(got, []string{"other.test"}) {
		t.Fatalf("after 30 s NamesFor = %v", got)
	}
	// Re-resolving refreshes and moves the name to the front.
	if _, err := d.ResolveAddresses(ctx, "svc.test"); err != nil {
		t.Fatal(err)
	}
	if got := d.NamesFor(lo4); !slices.Equal(got, []string{"svc.test", "other.test"}) {
		t.Fatalf("after refresh NamesFor = %v", got)
	}
	clock.Advance(2 * time.Minute)
	if got := d.NamesFor(lo4); got != nil {
		t.Fatalf("after 2 min NamesFor = %v", got)
	}
	// A connect after expiry carries no names.
	rec.take()
	s := mustSocket(t, d, UDP, IPv4)
	if err := s.Connect(ctx, netip.MustParseAddrPort("127.0.0.1:9")); err != nil {
		t.Fatal(err)
	}
	if r := rec.take(); len(r) != 1 || r[0].Names != nil || r[0].TimeMs != clock.Now().UnixMilli() {
		t.Fatalf("requests %+v", r)
	}

	// A denied lookup never reaches the resolver; denied answers are
	// dropped and not bound; all denied is ErrDenied.
	calls := res.calls.Load()
	rec.setFn(denyOp(policy.OpDNSLookup))
	_, err := d.ResolveAddresses(ctx, "svc.test")
	isDenied(t, err, policy.OpDNSLookup)
	if res.calls.Load() != calls {
		t.Fatal("resolver called after a denied lookup")
	}
	rec.setFn(func(r *Request) (Verdict, error) {
		if r.Op == policy.OpDNSAnswer && r.Addr.Is4() {
			return policy.Deny("v4 answers denied"), nil
		}
		return policy.Allow(""), nil
	})
	got, err := d.ResolveAddresses(ctx, "multi.test")
	if err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("2001:db8::1")}) {
		t.Fatalf("filtered answers = %v, %v", got, err)
	}
	if n := d.NamesFor(netip.MustParseAddr("198.51.100.10")); n != nil {
		t.Fatalf("denied answer bound: %v", n)
	}
	if n := d.NamesFor(netip.MustParseAddr("2001:db8::1")); !slices.Equal(n, []string{"multi.test"}) {
		t.Fatalf("allowed answer not bound: %v", n)
	}
	_, err = d.ResolveAddresses(ctx, "svc.test")
	de := isDenied(t, err, policy.OpDNSAnswer)
	if de.Name != "svc.test" {
		t.Errorf("DeniedError = %+v", de)
	}
	rec.setFn(nil)
	if _, err := d.ResolveAddresses(ctx, "nx.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown name = %v", err)
	}
}

func TestBindingTableBounded(t *testing.T) {
	var tb bindingTable
	now := testTime
	for i := range MaxBindings + 500 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		tb.bind(fmt.Sprintf("n%d.test", i), a, now.Add(time.Hour), now)
	}
	if len(tb.pairs) != MaxBindings || tb.order.Len() != MaxBindings {
		t.Fatalf("table holds %d/%d pairs", len(tb.pairs), tb.order.Len())
	}
	// The oldest were evicted, the newest kept.
	if n := tb.names(netip.AddrFrom4([4]byte{10, 0, 0, 0}), now); n != nil {
		t.Errorf("oldest still bound: %v", n)
	}
	last := MaxBindings + 499
	if n := tb.names(netip.AddrFrom4([4]byte{10, 0, byte(last >> 8), byte(last)}), now); len(n) != 1 {
		t.Errorf("newest not bound: %v", n)
	}
	// Expired pairs go before live ones.
	var tb2 bindingTable
	tb2.bind("old.test", lo4, now.Add(time.Second), now)
	for i := range MaxBindings - 1 {
		tb2.bind(fmt.Sprintf("n%d.test", i), netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), now.Add(time.Hour), now)
	}
	tb2.bind("new.test", lo4, now.Add(time.Hour), now.Add(time.Minute))
	if len(tb2.pairs) != MaxBindings {
		t.Fatalf("pairs = %d", len(tb2.pairs))
	}
	if n := tb2.names(netip.AddrFrom4([4]byte{10, 1, 0, 0}), now); len(n) != 1 {
		t.Errorf("a live pair was evicted instead of the expired one")
	}
}

func TestDefaultPolicyFailsClosed(t *testing.T) {
	ctx := context.Background()
	peer := newLoopbackTCP(t)
	for _, tt := range []struct {
		name   string
		policy Policy
		reason string
		plugin string
	}{
		{"nil", nil, "no policy: all network access is denied", ""},
		{"error", PolicyFunc(func(context.Context, *Request) (Verdict, error) {
			return policy.Allow("but broken"), errors.New("boom")
		}), "policy error: boom", ""},
		{"zero verdict", PolicyFunc(func(context.Context, *Request) (Verdict, error) { return Verdict{}, nil }), `verdict ""`, ""},
		{"abstain", PolicyFunc(func(context.Context, *Request) (Verdict, error) { return policy.Abstain(), nil }), "every plugin abstained", ""},
		{"unknown verdict", PolicyFunc(func(context.Context, *Request) (Verdict, error) {
			return Verdict{Verdict: "ALLOW"}, nil
		}), `verdict "ALLOW"`, ""},
		{"explainer", explainer{}, "egress says no", "egress"},
		{"panic", PolicyFunc(func(context.Context, *Request) (Verdict, error) { panic("oops") }), "policy error: policy panicked: oops", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := &Default{Policy: tt.policy}
			s := mustSocket(t, d, TCP, IPv4)
			de := isDenied(t, s.Connect(ctx, peer.addr()), policy.OpTCPConnect)
			if de.Reason != tt.reason || de.Plugin != tt.plugin {
				t.Errorf("DeniedError = %+v", de)
			}
		})
	}
	peer.expectNone(t, 100*time.Millisecond)
}

type explainer struct{}

func (explainer) Decide(ctx context.Context, r *Request) (Verdict, error) {
	return policy.Allow("Decide must not be used when DecideExplain exists"), nil
}

func (explainer) DecideExplain(ctx context.Context, r *Request) (Decision, error) {
	return Decision{Verdict: policy.Deny("egress says no"), Plugin: "egress"}, nil
}

func TestDefaultMaxSockets(t *testing.T) {
	ctx := context.Background()
	d := &Default{Policy: PolicyFunc(func(context.Context, *Request) (Verdict, error) { return policy.Allow(""), nil }), MaxSockets: 3}
	l := mustSocket(t, d, TCP, IPv4)
	if err := l.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(ctx, 8); err != nil {
		t.Fatal(err)
	}
	la, _ := l.LocalAddr()
	s2 := mustSocket(t, d, UDP, IPv4)
	c, err := net.Dial("tcp", la.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := acceptWait(t, l) // the third
	if d.OpenSockets() != 3 {
		t.Fatalf("open = %d", d.OpenSockets())
	}
	if _, err := d.Socket(ctx, UDP, IPv4); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("fourth socket: %v", err)
	}
	c2, err := net.Dial("tcp", la.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	waitFd(t, l, unix.POLLIN)
	if _, err := l.Accept(ctx); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("accept over the limit: %v", err)
	}
	// Closing frees a slot, once however often it is closed; the pending
	// connection was left queued and is accepted now.
	a.Close()
	a.Close()
	s2.Close()
	if d.OpenSockets() != 1 {
		t.Fatalf("open = %d after closes", d.OpenSockets())
	}
	acceptWait(t, l)
	if _, err := d.Socket(ctx, UDP, IPv4); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Socket(ctx, UDP, IPv4); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("over the limit again: %v", err)
	}
}

// TestDefaultHammer uses one Default from many goroutines at once (run it
// with -race): lookups, binding reads, sockets, sends and receives.
func TestDefaultHammer(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	d, _, clock := newTestDefault(rec)
	d.MaxSockets = 64
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	to := netip.MustParseAddrPort(sink.LocalAddr().String())
	var wg sync.WaitGroup
	// One error per goroutine at most: each returns on its first error, so
	// a systematic failure ends the test instead of blocking a send.
	const goroutines = 8
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				host := []string{"svc.test", "other.test", "multi.test"}[(g+i)%3]
				if _, err := d.ResolveAddresses(ctx, host); err != nil {
					errs <- err
					return
				}
				d.NamesFor(lo4)
				if g == 0 {
					clock.Advance(time.Second)
				}
				s, err := d.Socket(ctx, UDP, IPv4)
				if err != nil {
					errs <- err
					return
				}
				if _, err := s.Send(ctx, [][]byte{[]byte("h")}, to, 0); err != nil {
					s.Close()
					errs <- err
					return
				}
				s.Recv(ctx, [][]byte{make([]byte, 4)}, 0)
				s.Close()
				s.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d.OpenSockets() != 0 {
		t.Errorf("open sockets = %d", d.OpenSockets())
	}
}

func allowAll(context.Context, *Request) (Verdict, error) { return policy.Allow(""), nil }

// benchConnect measures socket + connect + close against a loopback
// listener that accepts and drops connections.
func benchConnect(b *testing.B, n Network) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	to := netip.MustParseAddrPort(ln.Addr().String())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := n.Socket(ctx, TCP, IPv4)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Connect(ctx, to); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
			b.Fatal(err)
		}
		// A non-blocking connect: wait until it has completed, so that
		// each iteration measures a whole connect.
		pfd := []unix.PollFd{{Fd: int32(s.Fd()), Events: unix.POLLOUT}}
		if _, err := unix.Poll(pfd, 10_000); err != nil {
			b.Fatal(err)
		}
		if e, err := unix.GetsockoptInt(s.Fd(), unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
			b.Fatalf("connect: %v %v", syscall.Errno(e), err)
		}
		s.SetOption(SockOptLinger, 0) // RST on close: no TIME_WAIT pile-up
		s.Close()
	}
}

func BenchmarkConnectSystem(b *testing.B) { benchConnect(b, System{}) }

func BenchmarkConnectDefault(b *testing.B) {
	benchConnect(b, &Default{Policy: PolicyFunc(allowAll)})
}

// benchSendTo measures the per-datagram cost of udp.send decisions.
func benchSendTo(b *testing.B, n Network) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	to := netip.MustParseAddrPort(pc.LocalAddr().String())
	ctx := context.Background()
	s, err := n.Socket(ctx, UDP, IPv4)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	msg := [][]byte{[]byte("x")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Send(ctx, msg, to, 0); err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.ENOBUFS) {
			b.Fatal(err)
		}
	}
}

func BenchmarkSendToSystem(b *testing.B) { benchSendTo(b, System{}) }

func BenchmarkSendToDefault(b *testing.B) {
	benchSendTo(b, &Default{Policy: PolicyFunc(allowAll)})
}
