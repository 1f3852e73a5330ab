package network

import (
	"errors"
	"math"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Quotas are a guest's rate and volume limits (docs/sockets.md#quotas,
// docs/manifest.md, [limits]). The zero value limits nothing; each zero
// field is unlimited. Rates are per second; a zero burst means the default,
// one second's worth of the rate (at least 1).
//
// What a guest over a quota sees:
//
//   - ConnectRate, MaxConnsOut: its TCP connect fails with ECONNREFUSED,
//     after the policy allowed it and before anything reaches the network;
//     a refusal that every client retries or reports, never mistaken for
//     a local resource shortage;
//   - AcceptRate, MaxConnsIn: the pending connection is reset (the client
//     sees ECONNRESET at once, it never waits in the queue) and skipped,
//     invisibly to the guest, like a connection the policy denies;
//   - DNSRate: the lookup fails with EAGAIN inside the error
//     (sock_getaddrinfo: EAI_AGAIN, "try again"; the DNS stub:
//     SERVFAIL), after dns.lookup was allowed and before the resolver is
//     asked;
//   - SendRate, RecvRate: throttled, never failed: the call moves at most
//     the bytes the bucket holds, and with none it fails with EAGAIN (a
//     *ThrottleError that says how long to wait) and the socket is not
//     reported ready (Throttler) until tokens are there;
//   - SendTotal, RecvTotal: once the guest has sent (received) that many
//     bytes its sends (receives) fail with EDQUOT; the call that reaches
//     the total moves only the bytes up to it.
//
// Refusals are reported to Default.OnQuota; throttling is counted in
// QuotaCounters.
type Quotas struct {
	ConnectRate  float64 // TCP connects per second
	ConnectBurst int64
	AcceptRate   float64 // accepted connections per second
	AcceptBurst  int64
	DNSRate      float64 // name lookups per second (ResolveAddresses of a name)
	DNSBurst     int64
	SendRate     int64 // bytes per second sent
	SendBurst    int64
	RecvRate     int64 // bytes per second received
	RecvBurst    int64
	SendTotal    int64 // bytes sent over the guest's life
	RecvTotal    int64 // bytes received over the guest's life
	MaxConnsOut  int64 // TCP connections the guest made, open at once
	MaxConnsIn   int64 // TCP connections the guest accepted, open at once
}

// Quota names, as audit records, errors and metrics spell them (the
// manifest's [limits] keys).
const (
	QuotaConnectRate = "connect_rate"
	QuotaAcceptRate  = "accept_rate"
	QuotaDNSRate     = "dns_rate"
	QuotaSendTotal   = "send_total"
	QuotaRecvTotal   = "recv_total"
	QuotaMaxConnsOut = "max_conns_out"
	QuotaMaxConnsIn  = "max_conns_in"
)

// QuotaNames lists the quotas that refuse (the throttles, send_rate and
// recv_rate, never do), for metrics that want every label from the start.
var QuotaNames = []string{QuotaConnectRate, QuotaAcceptRate, QuotaDNSRate, QuotaSendTotal, QuotaRecvTotal, QuotaMaxConnsOut, QuotaMaxConnsIn}

// QuotaError is the cause of an operation that a quota refused: errors.Is
// matches its Errno (ECONNREFUSED, EAGAIN or EDQUOT, see Quotas).
type QuotaError struct {
	Quota string // QuotaConnectRate, ...
	Errno syscall.Errno
}

func (e *QuotaError) Error() string { return "quota " + e.Quota + " exceeded" }

// Unwrap returns the errno.
func (e *QuotaError) Unwrap() error { return e.Errno }

// QuotaRefusal describes one operation a quota refused, for
// Default.OnQuota.
type QuotaRefusal struct {
	Quota string // QuotaConnectRate, ...
	// Op, Proto, Addr (with port) and Name describe the operation, as a
	// policy Request would: tcp.connect to Addr, tcp.accept from Addr
	// (Local is the listener), dns.lookup of Name, or for the totals
	// tcp.send / tcp.recv (udp.*) on a connection to Addr, when known.
	Op    Op
	Proto string
	Addr  netip.AddrPort
	Local netip.AddrPort
	Name  string
	// Errno is what the guest's call failed with; 0 when the guest saw
	// nothing (a reset pending connection).
	Errno syscall.Errno
}

// QuotaCounters are the running quota totals of a Default, for metrics.
type QuotaCounters struct {
	// ThrottledIn and ThrottledOut are how long the guest's receiving
	// (sending) was held back by recv_rate (send_rate): the time from
	// each call that found the bucket empty until tokens were there,
	// overlapping waits counted once.
	ThrottledIn, ThrottledOut time.Duration
	// ConnsIn and ConnsOut are the TCP connections open now that the
	// guest accepted (made).
	ConnsIn, ConnsOut int64
}

// ThrottleError is the cause of a send or receive held back by send_rate
// or recv_rate. It matches syscall.EAGAIN (errors.Is): the call may be
// retried after Wait, which a caller emulating a blocking socket sleeps
// (cancellably) instead of waiting for readiness.
type ThrottleError struct {
	Quota string // "send_rate" or "recv_rate"
	Wait  time.Duration
}

func (e *ThrottleError) Error() string {
	return e.Quota + " throttled for " + e.Wait.String()
}

// Unwrap returns syscall.EAGAIN.
func (e *ThrottleError) Unwrap() error { return syscall.EAGAIN }

// ThrottleWait reports how long to wait before retrying when err is (or
// wraps) a *ThrottleError.
func ThrottleWait(err error) (time.Duration, bool) {
	var te *ThrottleError
	if errors.As(err, &te) {
		return te.Wait, true
	}
	return 0, false
}

// Throttler is implemented by the sockets of a Default: ThrottleWait
// says how long the socket's reads (write false) or writes (true) are
// held back by recv_rate or send_rate, 0 when they are not. A caller
// waiting for readiness must not report the socket ready before then
// (the guest would only retry and spin), and should wait no longer than
// that before looking again.
type Throttler interface {
	ThrottleWait(write bool) time.Duration
}

// bucket is a token bucket in its GCRA form: one atomic word, the time
// (ns on the quota clock) at which the bucket is full again; no goroutine
// fills it. Tokens available at now: burst - (tat - now)/perTok, clamped
// to [0, burst]. take may drive it into debt (a datagram larger than what
// is left is charged whole); the next caller waits for the debt to clear.
type bucket struct {
	rate    float64
	burst   int64
	low     int64   // the tokens a throttled caller waits for (10 ms worth, ≤ burst)
	perTok  float64 // ns per token
	burstNs int64
	tat     atomic.Int64
	until   atomic.Int64 // end of the latest throttled wait, for throttled time
}

// defaultBurst is a burst of one second's worth of rate, at least 1.
func defaultBurst(rate float64) int64 {
	return max(1, int64(math.Ceil(rate)))
}

func newBucket(rate float64, burst int64) *bucket {
	if burst <= 0 {
		burst = defaultBurst(rate)
	}
	b := &bucket{rate: rate, burst: burst, perTok: 1e9 / rate}
	b.burstNs = nsOf(float64(burst) * b.perTok)
	b.low = max(1, min(burst, int64(rate/100)))
	return b
}

// nsOf converts float ns to int64, saturating well below overflow.
func nsOf(f float64) int64 {
	if f >= 1<<62 {
		return 1 << 62
	}
	return int64(math.Ceil(f))
}

// avail is how many tokens the bucket holds at now.
func (b *bucket) avail(now int64) int64 {
	debt := b.tat.Load() - now
	if debt <= 0 {
		return b.burst
	}
	free := b.burstNs - debt
	if free <= 0 {
		return 0
	}
	return min(b.burst, int64(float64(free)/b.perTok+1e-6))
}

// take charges n tokens, into debt if need be.
func (b *bucket) take(now, n int64) {
	if n <= 0 {
		return
	}
	cost := nsOf(float64(n) * b.perTok)
	for {
		old := b.tat.Load()
		t := max(old, now) + cost
		if b.tat.CompareAndSwap(old, t) {
			return
		}
	}
}

// tryTake takes one token if the bucket holds one.
func (b *bucket) tryTake(now int64) bool {
	cost := nsOf(b.perTok)
	for {
		old := b.tat.Load()
		t := max(old, now) + cost
		if t-now > b.burstNs {
			return false
		}
		if b.tat.CompareAndSwap(old, t) {
			return true
		}
	}
}

// wait is how long until the bucket holds n tokens (n ≤ burst), 0 if it
// does now.
func (b *bucket) wait(now, n int64) time.Duration {
	w := b.tat.Load() + nsOf(float64(n)*b.perTok) - b.burstNs - now
	if w <= 0 {
		return 0
	}
	return time.Duration(w)
}

// grant is the throttle of a stream call that wants want bytes: how many
// it may move now (≥ 1), or, when the bucket holds fewer than
// min(want, low), 0 and how long to wait for them.
func (b *bucket) grant(now, want int64) (int64, time.Duration) {
	need := min(want, b.low)
	if a := b.avail(now); a >= need {
		return min(a, want), 0
	}
	return 0, max(b.wait(now, need), time.Microsecond)
}

// throttled records a wait of w from now and returns the part of it not
// already recorded (overlapping waits count once).
func (b *bucket) throttled(now int64, w time.Duration) time.Duration {
	end := now + int64(w)
	for {
		old := b.until.Load()
		if end <= old {
			return 0
		}
		if b.until.CompareAndSwap(old, end) {
			return time.Duration(end - max(old, now))
		}
	}
}

// quotaState is one configuration of a Default's quotas, swapped whole by
// SetQuotas. A nil bucket is an unlimited rate.
type quotaState struct {
	q                    Quotas
	connect, accept, dns *bucket
	send, recv           *bucket
	bytes                bool // any byte quota: splicing is off
}

// quotaRun is what outlives a SetQuotas: the counts of open connections,
// bytes counted against the totals, and throttled time.
type quotaRun struct {
	connsOut, connsIn      atomic.Int64
	sent, received         atomic.Int64 // bytes counted against SendTotal / RecvTotal
	throttledIn, throttOut atomic.Int64 // ns
}

// Direction of a guest connection, for the concurrent-connection counts.
const (
	connNone uint32 = iota
	connOut
	connIn
)

// The ops of QuotaRefusal for stream bytes over a total (no policy op
// decides stream data).
const (
	opTCPSend Op = "tcp.send"
	opTCPRecv Op = "tcp.recv"
)

// quotaBase is the origin of the default quota clock.
var quotaBase = time.Now()

// quotaNow is the quota clock: monotonic ns.
func (d *Default) quotaNow() int64 {
	if d.quotaClock != nil {
		return d.quotaClock()
	}
	return int64(time.Since(quotaBase))
}

// SetQuotas sets the guest's quotas (see Quotas); it may be called while
// the Default is in use (a reload): later operations see the new values.
// A rate whose value and burst are unchanged keeps its bucket (the tokens
// the guest has used stay used); a changed one starts a new, full bucket.
// Totals count every byte since the Default was made (raising a total
// lets the guest go on; lowering it under what it has moved stops it at
// once); the connection caps count the connections open now, and a lower
// cap closes none of them.
func (d *Default) SetQuotas(q Quotas) {
	d.quotaMu.Lock()
	defer d.quotaMu.Unlock()
	if q == (Quotas{}) {
		d.quota.Store(nil)
		return
	}
	old := d.quota.Load()
	if old == nil {
		old = &quotaState{}
	}
	keep := func(ob *bucket, rate float64, burst int64) *bucket {
		if rate <= 0 {
			return nil
		}
		if burst <= 0 {
			burst = defaultBurst(rate)
		}
		if ob != nil && ob.rate == rate && ob.burst == burst {
			return ob
		}
		return newBucket(rate, burst)
	}
	s := &quotaState{q: q,
		connect: keep(old.connect, q.ConnectRate, q.ConnectBurst),
		accept:  keep(old.accept, q.AcceptRate, q.AcceptBurst),
		dns:     keep(old.dns, q.DNSRate, q.DNSBurst),
		send:    keep(old.send, float64(q.SendRate), q.SendBurst),
		recv:    keep(old.recv, float64(q.RecvRate), q.RecvBurst),
	}
	s.bytes = s.send != nil || s.recv != nil || q.SendTotal > 0 || q.RecvTotal > 0
	d.quota.Store(s)
}

// Quotas returns the quotas in force.
func (d *Default) Quotas() Quotas {
	if s := d.quota.Load(); s != nil {
		return s.q
	}
	return Quotas{}
}

// QuotaCounters returns the running quota totals of this guest.
func (d *Default) QuotaCounters() QuotaCounters {
	return QuotaCounters{
		ThrottledIn:  time.Duration(d.qrun.throttledIn.Load()),
		ThrottledOut: time.Duration(d.qrun.throttOut.Load()),
		ConnsIn:      d.qrun.connsIn.Load(),
		ConnsOut:     d.qrun.connsOut.Load(),
	}
}

// refuse reports a refusal to OnQuota and returns its error. Callers must
// not hold a lock.
func (d *Default) refuse(r QuotaRefusal) error {
	if d.OnQuota != nil {
		d.OnQuota(r)
	}
	return &QuotaError{Quota: r.Quota, Errno: r.Errno}
}

// quotaDNS takes a dns_rate token for the lookup of name.
func (d *Default) quotaDNS(name string) error {
	s := d.quota.Load()
	if s == nil || s.dns == nil || s.dns.tryTake(d.quotaNow()) {
		return nil
	}
	return d.refuse(QuotaRefusal{Quota: QuotaDNSRate, Op: policy.OpDNSLookup, Name: name, Errno: syscall.EAGAIN})
}

// quotaConnect admits the guest's first connect on a TCP socket under
// max_conns_out and connect_rate, and counts the connection; release it
// with connDone if the connect fails.
func (g *guardedSocket) quotaConnect(remote netip.AddrPort) error {
	if g.proto != TCP || !g.conn.CompareAndSwap(connNone, connOut) {
		return nil
	}
	d := g.d
	n := d.qrun.connsOut.Add(1)
	s := d.quota.Load()
	if s == nil {
		return nil
	}
	quota := ""
	switch {
	case s.q.MaxConnsOut > 0 && n > s.q.MaxConnsOut:
		quota = QuotaMaxConnsOut
	case s.connect != nil && !s.connect.tryTake(d.quotaNow()):
		quota = QuotaConnectRate
	default:
		return nil
	}
	g.connDone()
	return d.refuse(QuotaRefusal{Quota: quota, Op: policy.OpTCPConnect, Proto: "tcp", Addr: remote, Errno: syscall.ECONNREFUSED})
}

// quotaAccept admits an accepted connection c under max_conns_in and
// accept_rate; a refused one is the caller's to reset. The admitted one
// is counted on a, its guard.
func (d *Default) quotaAccept(a *guardedSocket, peer, local netip.AddrPort) error {
	a.conn.Store(connIn)
	n := d.qrun.connsIn.Add(1)
	s := d.quota.Load()
	if s == nil {
		return nil
	}
	quota := ""
	switch {
	case s.q.MaxConnsIn > 0 && n > s.q.MaxConnsIn:
		quota = QuotaMaxConnsIn
	case s.accept != nil && !s.accept.tryTake(d.quotaNow()):
		quota = QuotaAcceptRate
	default:
		return nil
	}
	a.connDone()
	return d.refuse(QuotaRefusal{Quota: quota, Op: policy.OpTCPAccept, Proto: "tcp", Addr: peer, Local: local})
}

// connDone uncounts the socket's connection, once.
func (g *guardedSocket) connDone() {
	switch g.conn.Swap(connNone) {
	case connOut:
		g.d.qrun.connsOut.Add(-1)
	case connIn:
		g.d.qrun.connsIn.Add(-1)
	}
}

// meter is the byte quotas' part of one send (out) or receive: bufs cut
// to what the rate and total allow, and what to settle afterwards.
type meter struct {
	b        *bucket
	reserved int64 // bytes reserved against the total
	now      int64
	charge   bool // charge the bucket (not a peek)
}

// meterBytes applies send_rate/send_total (out) or recv_rate/recv_total
// to a call that wants to move bufs: datagram calls move a datagram
// whole or not at all, stream calls may move fewer bytes. It returns
// the buffers to use and the meter to settle with the bytes moved; err
// is a *ThrottleError (EAGAIN) or a *QuotaError (EDQUOT, already
// reported).
func (g *guardedSocket) meterBytes(s *quotaState, out bool, bufs [][]byte, to netip.AddrPort, peek bool) ([][]byte, meter, error) {
	m := meter{charge: !peek}
	want := int64(0)
	for _, b := range bufs {
		want += int64(len(b))
	}
	if want == 0 {
		return bufs, meter{}, nil
	}
	total, used, name, rate, op := s.q.RecvTotal, &g.d.qrun.received, QuotaRecvTotal, s.recv, opTCPRecv
	if out {
		total, used, name, rate, op = s.q.SendTotal, &g.d.qrun.sent, QuotaSendTotal, s.send, opTCPSend
	}
	if g.proto == UDP {
		op = policy.OpUDPRecv
		if out {
			op = policy.OpUDPSend
		}
	}
	allow := want
	if rate != nil {
		m.now = g.d.quotaNow()
		n, w := rate.grant(m.now, want)
		if n == 0 {
			t := rate.throttled(m.now, w)
			if out {
				g.d.qrun.throttOut.Add(int64(t))
			} else {
				g.d.qrun.throttledIn.Add(int64(t))
			}
			q := "recv_rate"
			if out {
				q = "send_rate"
			}
			return nil, meter{}, &ThrottleError{Quota: q, Wait: w}
		}
		if g.proto != UDP {
			allow = n
		}
		m.b = rate
	}
	if total > 0 {
		for {
			cur := used.Load()
			left := total - cur
			if left <= 0 || (g.proto == UDP && out && left < want) {
				addr := to
				if !addr.IsValid() {
					addr, _ = g.PeerAddr()
				}
				return nil, meter{}, g.d.refuse(QuotaRefusal{Quota: name, Op: op, Proto: g.proto.String(), Addr: addr, Errno: syscall.EDQUOT})
			}
			r := min(allow, left)
			if g.proto == UDP {
				r = want // a datagram is counted whole (a received one may cross the total)
			}
			if peek {
				allow = r
				break
			}
			if used.CompareAndSwap(cur, cur+r) {
				m.reserved, allow = r, r
				break
			}
		}
	}
	if allow < want && g.proto != UDP {
		bufs = capBufs(bufs, allow)
	}
	return bufs, m, nil
}

// settle charges the bytes a metered call moved and returns the unused
// part of its reservation.
func (g *guardedSocket) settle(m meter, out bool, n int) {
	if n < 0 {
		n = 0
	}
	if m.b != nil && m.charge {
		m.b.take(m.now, int64(n))
	}
	if m.reserved > 0 && int64(n) != m.reserved {
		used := &g.d.qrun.received
		if out {
			used = &g.d.qrun.sent
		}
		used.Add(int64(n) - m.reserved)
	}
}

// capBufs returns the first n bytes of bufs, as new slice headers over the
// same memory.
func capBufs(bufs [][]byte, n int64) [][]byte {
	out := make([][]byte, 0, len(bufs))
	for _, b := range bufs {
		if n <= 0 {
			break
		}
		k := min(int64(len(b)), n)
		out = append(out, b[:k])
		n -= k
	}
	return out
}

// ThrottleWait implements Throttler: how long this socket's reads or
// writes are held back by recv_rate or send_rate. Listeners and stream
// sockets whose connect is pending are never held back (they move no
// bytes).
func (g *guardedSocket) ThrottleWait(write bool) time.Duration {
	s := g.d.quota.Load()
	if s == nil {
		return 0
	}
	b := s.recv
	if write {
		b = s.send
	}
	if b == nil {
		return 0
	}
	if r := g.standing.Load(); r != nil && r.Op == policy.OpTCPListen {
		return 0
	}
	now := g.d.quotaNow()
	if b.avail(now) >= b.low {
		return 0
	}
	if write && g.proto == TCP {
		// A pending connect's writability is its completion, which
		// tokens have nothing to do with (a syscall, but only while
		// throttled).
		if _, err := g.s.PeerAddr(); errors.Is(err, syscall.ENOTCONN) {
			return 0
		}
	}
	return max(b.wait(now, b.low), time.Microsecond)
}
