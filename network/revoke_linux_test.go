//go:build linux

package network

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
	"golang.org/x/sys/unix"
)

// revokeSetup is a guest with one socket of each kind that stands on a
// decision: a TCP connection it made, a listener, a connection it
// accepted on it, and a connected UDP socket; and the host-side peers.
type revokeSetup struct {
	d                           *Default
	rec                         *recorder
	conn, ln, accepted, udp     Socket
	connPeer, acceptedPeer      net.Conn
	udpPeer                     *net.UDPConn
	mu                          sync.Mutex
	revoked                     []Revoked
	connAddr, lnAddr, udpAddr   netip.AddrPort
	acceptedFrom                netip.AddrPort
	unconnectedUDP, boundTCPish Socket
}

func newRevokeSetup(t *testing.T) *revokeSetup {
	t.Helper()
	ctx := context.Background()
	s := &revokeSetup{rec: &recorder{}}
	s.d, _, _ = newTestDefault(s.rec)
	s.d.OnRevoke = func(r Revoked) {
		s.mu.Lock()
		s.revoked = append(s.revoked, r)
		s.mu.Unlock()
	}
	if _, err := s.d.ResolveAddresses(ctx, "svc.test"); err != nil {
		t.Fatal(err)
	}

	peer := newLoopbackTCP(t)
	s.conn = mustSocket(t, s.d, TCP, IPv4)
	s.connAddr = peer.addr()
	connectWait(t, s.conn, s.connAddr)
	s.connPeer = peer.expectOne(t)
	t.Cleanup(func() { s.connPeer.Close() })

	s.ln = mustSocket(t, s.d, TCP, IPv4)
	if err := s.ln.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if err := s.ln.Listen(ctx, 8); err != nil {
		t.Fatal(err)
	}
	s.lnAddr, _ = s.ln.LocalAddr()
	var err error
	s.acceptedPeer, err = net.Dial("tcp", s.lnAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.acceptedPeer.Close() })
	s.acceptedFrom = netip.MustParseAddrPort(s.acceptedPeer.LocalAddr().String())
	s.accepted = acceptWait(t, s.ln)

	s.udpPeer, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.udpPeer.Close() })
	s.udpAddr = netip.MustParseAddrPort(s.udpPeer.LocalAddr().String())
	s.udp = mustSocket(t, s.d, UDP, IPv4)
	if err := s.udp.Connect(ctx, s.udpAddr); err != nil {
		t.Fatal(err)
	}
	// Sockets that stand on nothing: never revoked.
	s.unconnectedUDP = mustSocket(t, s.d, UDP, IPv4)
	if err := s.unconnectedUDP.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	s.boundTCPish = mustSocket(t, s.d, TCP, IPv4)
	s.rec.take()
	return s
}

func (s *revokeSetup) takeRevoked() []Revoked {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.revoked
	s.revoked = nil
	return out
}

func isErrno(err error, want syscall.Errno) bool {
	var e syscall.Errno
	return errors.As(err, &e) && e == want
}

// Revalidate asks every standing decision again, with its original op,
// address, names and listener, and revokes what is now denied: the guest's
// next call on a revoked connection fails with ECONNRESET, on a revoked
// listener with ECONNABORTED, the peers see the end, and OnRevoke hears of
// each once. What stays allowed keeps working.
func TestDefaultRevalidate(t *testing.T) {
	ctx := context.Background()
	s := newRevokeSetup(t)

	// Everything still allowed: nothing revoked, four decisions asked.
	if n := s.d.Revalidate(ctx); n != 0 {
		t.Fatalf("Revalidate revoked %d under the same policy", n)
	}
	got := s.rec.take()
	slices.SortFunc(got, func(a, b Request) int { return int(opBitOrder(a.Op)) - int(opBitOrder(b.Op)) })
	want := []Request{
		req(policy.OpTCPConnect, "127.0.0.1", s.connAddr.Port(), names("svc.test")),
		req(policy.OpTCPListen, "127.0.0.1", s.lnAddr.Port()),
		req(policy.OpTCPAccept, "127.0.0.1", s.acceptedFrom.Port(), local(s.lnAddr), names("svc.test")),
		req(policy.OpUDPConnect, "127.0.0.1", s.udpAddr.Port(), names("svc.test")),
	}
	slices.SortFunc(want, func(a, b Request) int { return int(opBitOrder(a.Op)) - int(opBitOrder(b.Op)) })
	if len(got) != len(want) {
		t.Fatalf("revalidation asked %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i].Op != want[i].Op || got[i].Addr != want[i].Addr || got[i].Port != want[i].Port ||
			!slices.Equal(got[i].Names, want[i].Names) || got[i].Local != want[i].Local || got[i].Guest != "app" {
			t.Errorf("revalidation request %d: %+v, want %+v", i, got[i], want[i])
		}
	}

	// The new policy denies the accepted connection only.
	s.rec.setFn(denyOp(policy.OpTCPAccept))
	if n := s.d.Revalidate(ctx); n != 1 {
		t.Fatalf("revoked %d, want 1 (the accepted connection)", n)
	}
	rv := s.takeRevoked()
	if len(rv) != 1 || rv[0].Request.Op != policy.OpTCPAccept || rv[0].Errno != syscall.ECONNRESET || rv[0].Denied == nil || rv[0].Request.Local != s.lnAddr {
		t.Fatalf("OnRevoke got %+v", rv)
	}
	buf := make([]byte, 8)
	if _, _, _, err := s.accepted.Recv(ctx, [][]byte{buf}, 0); !isErrno(err, syscall.ECONNRESET) {
		t.Errorf("Recv on the revoked connection: %v, want ECONNRESET", err)
	}
	if _, err := s.accepted.Send(ctx, [][]byte{[]byte("x")}, netip.AddrPort{}, 0); !isErrno(err, syscall.ECONNRESET) {
		t.Errorf("Send on the revoked connection: %v, want ECONNRESET", err)
	}
	s.acceptedPeer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.acceptedPeer.Read(buf); err != io.EOF {
		t.Errorf("the revoked connection's peer read %v, want EOF", err)
	}
	// The others still work.
	if _, err := s.connPeer.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	waitFd(t, s.conn, unix.POLLIN)
	if n, _, _, err := s.conn.Recv(ctx, [][]byte{buf}, 0); err != nil || string(buf[:n]) != "hi" {
		t.Errorf("the connection still allowed: %q %v", buf[:n], err)
	}

	// Everything denied: the other three go, the revoked one is not
	// revoked again, the sockets that stand on nothing stay.
	s.rec.setFn(func(*Request) (Verdict, error) { return policy.Deny("closed down"), nil })
	if n := s.d.Revalidate(ctx); n != 3 {
		t.Fatalf("revoked %d, want 3", n)
	}
	rv = s.takeRevoked()
	var ops []string
	for _, r := range rv {
		ops = append(ops, string(r.Request.Op))
		want := syscall.ECONNRESET
		if r.Request.Op == policy.OpTCPListen {
			want = syscall.ECONNABORTED
		}
		if r.Errno != want || r.Denied.Reason != "closed down" {
			t.Errorf("revoked %+v", r)
		}
	}
	slices.Sort(ops)
	if !slices.Equal(ops, []string{"tcp.connect", "tcp.listen", "udp.connect"}) {
		t.Errorf("revoked %v", ops)
	}
	if _, _, _, err := s.conn.Recv(ctx, [][]byte{buf}, 0); !isErrno(err, syscall.ECONNRESET) {
		t.Errorf("Recv on the revoked connection: %v", err)
	}
	if _, err := s.ln.Accept(ctx); !isErrno(err, syscall.ECONNABORTED) {
		t.Errorf("Accept on the revoked listener: %v, want ECONNABORTED", err)
	}
	if c, err := net.DialTimeout("tcp", s.lnAddr.String(), 5*time.Second); err == nil {
		c.Close()
		t.Errorf("the revoked listener still takes connections")
	}
	if _, err := s.udp.Send(ctx, [][]byte{[]byte("x")}, netip.AddrPort{}, 0); !isErrno(err, syscall.ECONNRESET) {
		t.Errorf("Send on the revoked UDP socket: %v", err)
	}
	if _, _, _, err := s.udp.Recv(ctx, [][]byte{buf}, 0); !isErrno(err, syscall.ECONNRESET) {
		t.Errorf("Recv on the revoked UDP socket: %v", err)
	}
	if err := s.boundTCPish.Connect(ctx, s.connAddr); !errors.Is(err, ErrDenied) {
		t.Errorf("a new connect under the new policy: %v, want denied", err)
	}
	if n := s.d.Revalidate(ctx); n != 0 {
		t.Errorf("a third Revalidate revoked %d", n)
	}
	// Closing frees the slots; nothing is left standing.
	for _, c := range []Socket{s.conn, s.ln, s.accepted, s.udp} {
		c.Close()
	}
	s.d.mu.Lock()
	left := len(s.d.standing)
	s.d.mu.Unlock()
	if left != 0 {
		t.Errorf("%d sockets still standing after close", left)
	}
}

// opBitOrder orders ops as policy.Ops does.
func opBitOrder(op policy.Op) int { return slices.Index(policy.Ops, op) }

// A connect decided by the old policy while Revalidate runs (its decision
// was in flight, so the revalidation's snapshot missed it) is decided
// again as it is established, and revoked: none escapes.
func TestDefaultRevalidateRace(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	d, _, _ := newTestDefault(rec)
	var revoked []Revoked
	var mu sync.Mutex
	d.OnRevoke = func(r Revoked) { mu.Lock(); revoked = append(revoked, r); mu.Unlock() }
	peer := newLoopbackTCP(t)
	inDecision, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var denyNow sync.Mutex // held: allow (the old policy)
	deny := false
	rec.setFn(func(r *Request) (Verdict, error) {
		denyNow.Lock()
		dny := deny
		denyNow.Unlock()
		if dny {
			return policy.Deny("new policy"), nil
		}
		once.Do(func() { close(inDecision); <-release })
		return policy.Allow("old policy"), nil
	})
	c := mustSocket(t, d, TCP, IPv4)
	errc := make(chan error, 1)
	go func() { errc <- c.Connect(ctx, peer.addr()) }()
	<-inDecision
	denyNow.Lock()
	deny = true
	denyNow.Unlock()
	if n := d.Revalidate(ctx); n != 0 {
		t.Fatalf("Revalidate found %d sockets; the connect was not established yet", n)
	}
	close(release)
	if err := <-errc; err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("connect: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(revoked) != 1 || revoked[0].Request.Op != policy.OpTCPConnect {
		t.Fatalf("revoked %+v, want the connect", revoked)
	}
	if _, _, _, err := c.Recv(ctx, [][]byte{make([]byte, 4)}, 0); !isErrno(err, syscall.ECONNRESET) {
		t.Errorf("Recv: %v, want ECONNRESET", err)
	}
}

// Connects racing with a policy flip and Revalidate (run with -race):
// once the new policy denies everything, every connection that was
// allowed, whenever its decision was made, ends up revoked, and OnRevoke
// hears of each exactly once.
func TestDefaultRevalidateConcurrent(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	d, _, _ := newTestDefault(rec)
	var revokedN atomic.Int32
	d.OnRevoke = func(Revoked) { revokedN.Add(1) }
	var denyAll atomic.Bool
	rec.setFn(func(*Request) (Verdict, error) {
		if denyAll.Load() {
			return policy.Deny("new"), nil
		}
		return policy.Allow("old"), nil
	})
	peer := newLoopbackTCP(t)
	defer func() { // the peer's side
		for {
			select {
			case c := <-peer.conns:
				c.Close()
			default:
				return
			}
		}
	}()
	const workers = 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	var allowed []*guardedSocket
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for denials := 0; denials < 5; {
				s, err := d.Socket(ctx, TCP, IPv4)
				if err != nil {
					t.Error(err)
					return
				}
				t.Cleanup(func() { s.Close() })
				err = s.Connect(ctx, peer.addr())
				switch {
				case errors.Is(err, ErrDenied):
					denials++
				case err == nil || errors.Is(err, syscall.EINPROGRESS):
					mu.Lock()
					allowed = append(allowed, s.(*guardedSocket))
					mu.Unlock()
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	// Revalidations under the old policy while connects go on, then the
	// flip with more of them.
	for n := 0; n < 40; {
		d.Revalidate(ctx)
		mu.Lock()
		n = len(allowed)
		mu.Unlock()
	}
	denyAll.Store(true)
	for range 10 {
		d.Revalidate(ctx)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(allowed) == 0 {
		t.Fatal("no connect was allowed before the flip")
	}
	for i, g := range allowed {
		if g.revoked.Load() == 0 {
			t.Errorf("allowed connection %d of %d was never revoked", i, len(allowed))
		}
	}
	if n := int(revokedN.Load()); n != len(allowed) {
		t.Errorf("OnRevoke called %d times for %d revoked connections", n, len(allowed))
	}
}
