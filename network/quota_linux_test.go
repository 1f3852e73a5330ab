//go:build linux

package network

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// quotaDefault is a Default allowing everything, with quotas q, a quota
// clock the test moves, and the refusals recorded.
type quotaRec struct {
	mu   sync.Mutex
	refs []QuotaRefusal
}

func (r *quotaRec) add(q QuotaRefusal) {
	r.mu.Lock()
	r.refs = append(r.refs, q)
	r.mu.Unlock()
}

func (r *quotaRec) take() []QuotaRefusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.refs
	r.refs = nil
	return out
}

func quotaDefault(q Quotas) (*Default, *atomic.Int64, *quotaRec) {
	rec := &quotaRec{}
	now := new(atomic.Int64)
	d, _, _ := newTestDefault(&recorder{})
	d.OnQuota = rec.add
	d.quotaClock = now.Load
	d.SetQuotas(q)
	return d, now, rec
}

// expectRefusal checks err is the quota's errno and that exactly one
// refusal of that quota was reported.
func expectRefusal(t *testing.T, err error, rec *quotaRec, quota string, errno syscall.Errno) QuotaRefusal {
	t.Helper()
	var qe *QuotaError
	if !errors.As(err, &qe) || qe.Quota != quota || (errno != 0 && !errors.Is(err, errno)) {
		t.Fatalf("err = %v, want quota %s (%v)", err, quota, errno)
	}
	refs := rec.take()
	if len(refs) != 1 || refs[0].Quota != quota || refs[0].Errno != errno {
		t.Fatalf("refusals = %+v, want one of %s", refs, quota)
	}
	return refs[0]
}

// tcpServer accepts connections on loopback and keeps them until the test
// ends, counting them.
func tcpServer(t *testing.T) (netip.AddrPort, *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := new(atomic.Int32)
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return netip.MustParseAddrPort(ln.Addr().String()), n
}

// connect_rate: the connect past the burst is refused with ECONNREFUSED
// before it reaches the network (the server sees only the allowed ones),
// and a token later it goes through. A socket's repeated connect (a guest
// checking a pending one) takes no token.
func TestQuotaConnectRate(t *testing.T) {
	d, now, rec := quotaDefault(Quotas{ConnectRate: 1, ConnectBurst: 2})
	to, accepted := tcpServer(t)
	for i := 0; i < 2; i++ {
		s := mustSocket(t, d, TCP, IPv4)
		connectWait(t, s, to)
		s.Connect(context.Background(), to) // EISCONN, no token
	}
	s := mustSocket(t, d, TCP, IPv4)
	err := s.Connect(context.Background(), to)
	r := expectRefusal(t, err, rec, QuotaConnectRate, syscall.ECONNREFUSED)
	if r.Op != policy.OpTCPConnect || r.Addr != to {
		t.Errorf("refusal = %+v", r)
	}
	if _, err := s.PeerAddr(); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("refused socket has a peer: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted.Load(); n != 2 {
		t.Errorf("server saw %d connections, want 2", n)
	}
	now.Add(int64(time.Second))
	connectWait(t, s, to) // the same socket, a token later
	if d.QuotaCounters().ConnsOut != 3 {
		t.Errorf("ConnsOut = %d, want 3", d.QuotaCounters().ConnsOut)
	}
}

// max_conns_out counts open connections: at the cap a connect is refused
// (ECONNREFUSED), a close makes room; UDP connects are not connections.
func TestQuotaMaxConnsOut(t *testing.T) {
	d, _, rec := quotaDefault(Quotas{MaxConnsOut: 2})
	to, _ := tcpServer(t)
	a := mustSocket(t, d, TCP, IPv4)
	connectWait(t, a, to)
	b := mustSocket(t, d, TCP, IPv4)
	connectWait(t, b, to)
	c := mustSocket(t, d, TCP, IPv4)
	expectRefusal(t, c.Connect(context.Background(), to), rec, QuotaMaxConnsOut, syscall.ECONNREFUSED)
	u := mustSocket(t, d, UDP, IPv4)
	if err := u.Connect(context.Background(), to); err != nil {
		t.Fatalf("udp connect at max_conns_out: %v", err)
	}
	a.Close()
	connectWait(t, c, to)
	if got := d.QuotaCounters().ConnsOut; got != 2 {
		t.Errorf("ConnsOut = %d, want 2", got)
	}
}

// listenDefault is a listener of d on loopback.
func listenDefault(t *testing.T, d *Default) (Socket, string) {
	l := mustSocket(t, d, TCP, IPv4)
	if err := l.Bind(context.Background(), netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(context.Background(), 16); err != nil {
		t.Fatal(err)
	}
	la, _ := l.LocalAddr()
	return l, la.String()
}

// expectReset checks that c was reset or closed by the host at once.
func expectReset(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("refused client read %d, %v; want a reset", n, err)
	}
}

// accept_rate: a connection past the burst is reset at once (the client
// never hangs in the queue) and the guest's accept sees nothing of it
// (EAGAIN); a token later the next client is accepted.
func TestQuotaAcceptRate(t *testing.T) {
	d, now, rec := quotaDefault(Quotas{AcceptRate: 1, AcceptBurst: 1})
	l, addr := listenDefault(t, d)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	acceptWait(t, l)
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitFd(t, l, 0x1)
	if _, err := l.Accept(context.Background()); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("accept over accept_rate = %v, want EAGAIN (invisible)", err)
	}
	r := expectRefusal(t, &QuotaError{Quota: QuotaAcceptRate}, rec, QuotaAcceptRate, 0)
	if r.Op != policy.OpTCPAccept || r.Addr.String() != second.LocalAddr().String() || r.Local.String() != addr {
		t.Errorf("refusal = %+v", r)
	}
	expectReset(t, second)
	now.Add(int64(time.Second))
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	acceptWait(t, l)
	if d.OpenSockets() != 3 {
		t.Errorf("open sockets %d, want 3 (listener, first, third): the refused one freed its slot", d.OpenSockets())
	}
}

// max_conns_in: at the cap a pending connection is reset; closing an
// accepted one makes room.
func TestQuotaMaxConnsIn(t *testing.T) {
	d, _, rec := quotaDefault(Quotas{MaxConnsIn: 1})
	l, addr := listenDefault(t, d)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	a := acceptWait(t, l)
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitFd(t, l, 0x1)
	if _, err := l.Accept(context.Background()); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("accept at max_conns_in = %v, want EAGAIN", err)
	}
	expectRefusal(t, &QuotaError{Quota: QuotaMaxConnsIn}, rec, QuotaMaxConnsIn, 0)
	expectReset(t, second)
	a.Close()
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	acceptWait(t, l)
	if got := d.QuotaCounters().ConnsIn; got != 1 {
		t.Errorf("ConnsIn = %d, want 1", got)
	}
}

// dns_rate: each name lookup takes a token after dns.lookup is allowed;
// past the burst it fails with EAGAIN before the resolver is asked. IP
// literals are not lookups.
func TestQuotaDNSRate(t *testing.T) {
	d, now, rec := quotaDefault(Quotas{DNSRate: 1, DNSBurst: 2})
	res := d.Resolver.(*mapResolver)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := d.ResolveAddresses(ctx, "svc.test"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := d.ResolveAddresses(ctx, "svc.test")
	r := expectRefusal(t, err, rec, QuotaDNSRate, syscall.EAGAIN)
	if r.Op != policy.OpDNSLookup || r.Name != "svc.test" {
		t.Errorf("refusal = %+v", r)
	}
	if errors.Is(err, ErrDenied) {
		t.Error("a quota refusal is not a policy denial")
	}
	if n := res.calls.Load(); n != 2 {
		t.Errorf("resolver asked %d times, want 2", n)
	}
	if _, err := d.ResolveAddresses(ctx, "127.0.0.1"); err != nil {
		t.Errorf("an IP literal took a token: %v", err)
	}
	now.Add(int64(time.Second))
	if _, err := d.ResolveAddresses(ctx, "svc.test"); err != nil {
		t.Fatal(err)
	}
}

// tcpPairDefault is a connected TCP socket of d and the peer's end.
func tcpPairDefault(t *testing.T, d *Default) (Socket, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := mustSocket(t, d, TCP, IPv4)
	connectWait(t, s, netip.MustParseAddrPort(ln.Addr().String()))
	p, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return s, p
}

// send_total and recv_total: the call reaching the total moves only the
// bytes up to it, every later one fails with EDQUOT; the peer gets exactly
// the total. A datagram that does not fit is refused whole.
func TestQuotaTotals(t *testing.T) {
	d, _, rec := quotaDefault(Quotas{SendTotal: 10, RecvTotal: 5})
	s, p := tcpPairDefault(t, d)
	ctx := context.Background()
	six := [][]byte{[]byte("abcdef")}
	if n, err := s.Send(ctx, six, netip.AddrPort{}, 0); n != 6 || err != nil {
		t.Fatalf("send 6 = %d, %v", n, err)
	}
	if n, err := s.Send(ctx, six, netip.AddrPort{}, 0); n != 4 || err != nil {
		t.Fatalf("send past the total = %d, %v; want 4 (up to it)", n, err)
	}
	_, err := s.Send(ctx, six, netip.AddrPort{}, 0)
	r := expectRefusal(t, err, rec, QuotaSendTotal, syscall.EDQUOT)
	if r.Op != "tcp.send" || r.Addr.String() != p.LocalAddr().String() {
		t.Errorf("refusal = %+v", r)
	}
	p.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 10)
	if _, err := io.ReadFull(p, got); err != nil || string(got) != "abcdefabcd" {
		t.Fatalf("peer got %q, %v", got, err)
	}

	p.Write([]byte("0123456789"))
	waitFd(t, s, 0x1)
	buf := make([]byte, 10)
	if n, _, _, err := s.Recv(ctx, [][]byte{buf}, 0); n != 5 || err != nil || string(buf[:5]) != "01234" {
		t.Fatalf("recv past the total = %d %q, %v; want 5", n, buf[:n], err)
	}
	if n, _, _, err := s.Recv(ctx, [][]byte{buf}, RecvPeek); n != 0 || !errors.Is(err, syscall.EDQUOT) {
		t.Fatalf("peek at the total = %d, %v; want EDQUOT", n, err)
	}
	rec.take()
	_, _, _, err = s.Recv(ctx, [][]byte{buf}, 0)
	expectRefusal(t, err, rec, QuotaRecvTotal, syscall.EDQUOT)

	d2, _, rec2 := quotaDefault(Quotas{SendTotal: 100})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	to := netip.MustParseAddrPort(pc.LocalAddr().String())
	u := mustSocket(t, d2, UDP, IPv4)
	if n, err := u.Send(ctx, [][]byte{make([]byte, 60)}, to, 0); n != 60 || err != nil {
		t.Fatalf("datagram = %d, %v", n, err)
	}
	_, err = u.Send(ctx, [][]byte{make([]byte, 60)}, to, 0)
	expectRefusal(t, errors.Unwrap(err), rec2, QuotaSendTotal, syscall.EDQUOT)
	if n, err := u.Send(ctx, [][]byte{make([]byte, 40)}, to, 0); n != 40 || err != nil {
		t.Fatalf("a datagram that fits = %d, %v", n, err)
	}
}

// send_rate and recv_rate throttle: a call moves what the bucket holds;
// on an empty bucket it fails with EAGAIN carrying the wait, and
// ThrottleWait reports the socket held back (so a poll does not call it
// ready) until the tokens are there. Throttled time is counted. Splicing
// is off while byte quotas are set.
func TestQuotaThrottle(t *testing.T) {
	d, now, _ := quotaDefault(Quotas{SendRate: 1000, SendBurst: 100, RecvRate: 1000, RecvBurst: 100})
	s, p := tcpPairDefault(t, d)
	ctx := context.Background()
	th := s.(Throttler)
	big := [][]byte{make([]byte, 300)}
	if n, err := s.Send(ctx, big, netip.AddrPort{}, 0); n != 100 || err != nil {
		t.Fatalf("send 300 on a burst of 100 = %d, %v", n, err)
	}
	_, err := s.Send(ctx, big, netip.AddrPort{}, 0)
	if w, ok := ThrottleWait(err); !ok || w != 10*time.Millisecond || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("send on an empty bucket = %v (wait %v %v), want EAGAIN with a 10ms wait", err, w, ok)
	}
	if w := th.ThrottleWait(true); w != 10*time.Millisecond {
		t.Fatalf("ThrottleWait(write) = %v, want 10ms", w)
	}
	if w := th.ThrottleWait(false); w != 0 {
		t.Fatalf("ThrottleWait(read) = %v, want 0 (recv bucket full)", w)
	}
	now.Add(int64(50 * time.Millisecond))
	if w := th.ThrottleWait(true); w != 0 {
		t.Fatalf("ThrottleWait after the tokens came = %v", w)
	}
	if n, err := s.Send(ctx, big, netip.AddrPort{}, 0); n != 50 || err != nil {
		t.Fatalf("send after 50 ms = %d, %v; want 50", n, err)
	}
	if got := d.QuotaCounters().ThrottledOut; got != 10*time.Millisecond {
		t.Errorf("ThrottledOut = %v, want 10ms", got)
	}

	p.Write(make([]byte, 300))
	waitFd(t, s, 0x1)
	buf := [][]byte{make([]byte, 300)}
	if n, _, _, err := s.Recv(ctx, buf, 0); n != 100 || err != nil {
		t.Fatalf("recv 300 on a burst of 100 = %d, %v", n, err)
	}
	if _, _, _, err := s.Recv(ctx, buf, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("recv on an empty bucket = %v, want EAGAIN", err)
	}
	if w := th.ThrottleWait(false); w <= 0 {
		t.Fatal("recv throttled but ThrottleWait(read) = 0")
	}
	now.Add(int64(time.Second))
	if n, _, _, err := s.Recv(ctx, buf, 0); n != 100 || err != nil {
		t.Fatalf("recv after refill = %d, %v", n, err)
	}

	s2, _ := tcpPairDefault(t, d)
	if _, _, err := s.(Splicer).Splice(ctx, s2, 0); !errors.Is(err, ErrSpliceUnsupported) {
		t.Fatalf("splice with byte quotas = %v, want unsupported", err)
	}
}

// The same with quotas set that never bind: what metering costs when on.
func BenchmarkGuardQuotas(b *testing.B) {
	q := Quotas{ConnectRate: 1e6, ConnectBurst: 1 << 20, MaxConnsOut: 1 << 20,
		SendRate: 1 << 40, RecvRate: 1 << 40, SendTotal: 1 << 62, RecvTotal: 1 << 62}
	newD := func() *Default {
		d := &Default{Network: nopNet{}, Policy: PolicyFunc(allowAll)}
		d.SetQuotas(q)
		return d
	}
	b.Run("connect", func(b *testing.B) { benchGuardConnect(b, newD()) })
	b.Run("send", func(b *testing.B) { benchGuardIO(b, newD(), true) })
	b.Run("recv", func(b *testing.B) { benchGuardIO(b, newD(), false) })
}

// pendingNet's sockets are connecting forever.
type pendingNet struct{ nopNet }

type pendingSock struct{ nopSock }

func (pendingNet) Socket(ctx context.Context, p Proto, f Family) (Socket, error) {
	return &pendingSock{nopSock{p: p, f: f}}, nil
}

func (*pendingSock) PeerAddr() (netip.AddrPort, error) { return netip.AddrPort{}, syscall.ENOTCONN }

// A stream socket whose connect is pending is not held back by an empty
// send bucket: its writability is the connect's completion. A connected
// one is.
func TestQuotaThrottlePendingConnect(t *testing.T) {
	d := &Default{Network: pendingNet{}, Policy: PolicyFunc(allowAll)}
	d.quotaClock = func() int64 { return 0 }
	d.SetQuotas(Quotas{SendRate: 1000, SendBurst: 100})
	ctx := context.Background()
	s := mustSocket(t, d, TCP, IPv4)
	s.Connect(ctx, netip.MustParseAddrPort("127.0.0.1:80"))
	d.quota.Load().send.take(0, 100) // empty
	if w := s.(Throttler).ThrottleWait(true); w != 0 {
		t.Errorf("a pending connect is held back %v", w)
	}
	d2 := &Default{Network: nopNet{}, Policy: PolicyFunc(allowAll)}
	d2.quotaClock = func() int64 { return 0 }
	d2.SetQuotas(Quotas{SendRate: 1000, SendBurst: 100})
	s2 := mustSocket(t, d2, TCP, IPv4)
	s2.Connect(ctx, netip.MustParseAddrPort("127.0.0.1:80"))
	d2.quota.Load().send.take(0, 100)
	if w := s2.(Throttler).ThrottleWait(true); w == 0 {
		t.Error("a connected socket with an empty send bucket is not held back")
	}
}
