package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// FuzzDefaultSimulated drives a Default over a (wrapped) Simulated network
// with a random sequence of guest operations, remote events and clock
// steps, under a random but deterministic policy, and checks after every
// step that:
//
//   - nothing panics;
//   - every request the policy sees is canonical (no zones, no
//     IPv4-mapped addresses, canonical names, Names bound by an earlier
//     resolve, no connect or send to port 0);
//   - every operation that reaches the base network (bind, connect,
//     listen, send with a destination, delivering a datagram into the
//     guest's buffers, a resolver lookup) was allowed by the policy
//     decision right before it, for exactly the canonical address (and
//     the base got its kernel form); so a denied operation never reaches
//     the base;
//   - an accepted connection was allowed for its peer, and every
//     connection the base accepted but policy denied was closed;
//   - resolved addresses are canonical, unique, and each was allowed as
//     dns.answer;
//   - OnDeny was called exactly once per denial, with no lock held, with
//     the denial's op, address, name and names;
//   - the socket count matches the guest's open sockets.
func FuzzDefaultSimulated(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 1, 4, 0, 3, 3, 0, 0, 0, 9, 0, 8, 0, 4, 0})
	f.Add([]byte("\x00\x01\x01\x00\x01\x02\x05\x00\x0a\x00\x0f\x06\x00\x06\x00\x00\x07\x01\x07\x00"))
	f.Add([]byte("resolve api.example.test then connect it and send to it, recv, accept, close"))
	f.Add(bytes.Repeat([]byte{7, 0, 2, 0, 15, 3, 5, 0, 1}, 8))
	f.Add(bytes.Repeat([]byte{4, 0, 0, 6, 1, 0, 1, 3, 9, 0, 1, 10, 0, 6, 4, 0, 6, 0}, 6))
	// Guest scenarios, in the harness's byte language (see run), so that
	// the fuzzer starts from deep states: a UDP socket that binds,
	// receives datagrams from several senders and answers them; a TCP
	// listener that accepts several connections; a resolve followed by a
	// connect to the name's address.
	udp := []byte{
		0, 1, 0, // socket udp ip4
		1, 0, 1, 5, // bind 127.0.0.1:5353
		10, 0, 0, 0, 0, 8, 1, // deliver from 192.0.2.1:53
		10, 0, 0, 0, 0, 15, 4, // deliver from 198.51.100.10:666
		10, 0, 0, 0, 0, 17, 2, // deliver from [::ffff:198.51.100.10]:80
		10, 0, 0, 0, 0, 7, 1, // deliver from zoned mapped 192.0.2.1:53
		6, 0, 1, 64, 6, 0, 0, 3, 6, 0, 1, 64, 6, 0, 1, 0, 6, 0, 1, 64, // recv
		5, 0, 1, 8, 1, 5, 0, 0, // send to 192.0.2.1:53, send unconnected
		2, 0, 8, 1, 5, 0, 0, // connect, send
	}
	tcp := []byte{
		0, 0, 1, // socket tcp ip6
		3, 0, 5, // listen (implicit bind)
		9, 0, 0, 0, 0, 8, 3, // dial from 192.0.2.1:443
		9, 0, 0, 0, 0, 15, 4, // dial from 198.51.100.10:666
		9, 0, 0, 0, 0, 5, 7, 0x12, 0x34, // dial from [::ffff:127.0.0.1]:0x1234
		4, 0, 4, 0, 4, 0, 4, 0, // accept
		5, 1, 0, 11, 1, 0, 0, // send on the accepted one, shutdown
		8, 0, 8, 1, // close both
	}
	dns := []byte{
		7, 0, 3, 15, 2, 17, 1, 8, 0, 1, // resolve api.example.test → 198.51.100.10 (twice), 192.0.2.1
		0, 0, 0, // socket tcp ip4
		2, 0, 15, 3, // connect 198.51.100.10:443
		12, 0x40, 0, // an hour later
		7, 2, 1, 14, 3, 1, // resolve evil.example.test
		0, 1, 1, // socket udp ip6
		5, 1, 1, 17, 1, // send to [::ffff:198.51.100.10]:53
		13, 15, // NamesFor
	}
	for _, seed := range []byte{0, 1, 2, 3, 0x11, 0xc0, 0xe0} {
		f.Add(append([]byte{seed}, udp...))
		f.Add(append([]byte{seed}, tcp...))
		f.Add(append([]byte{seed}, dns...))
		f.Add(append(append(append([]byte{seed}, dns...), tcp...), udp...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newFuzzHarness(t, data)
		h.run()
	})
}

// fuzzInput hands out the fuzzer's bytes; past the end it gives zeros.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

func (in *fuzzInput) u16() uint16 { return uint16(in.byte())<<8 | uint16(in.byte()) }

func (in *fuzzInput) port() uint16 {
	switch in.byte() % 8 {
	case 0:
		return 0
	case 1:
		return 53
	case 2:
		return 80
	case 3:
		return 443
	case 4:
		return 666
	case 5:
		return 5353
	case 6:
		return 8080
	}
	return in.u16()
}

func (in *fuzzInput) addr() netip.Addr {
	switch in.byte() % 18 {
	case 0:
		return netip.Addr{}
	case 1:
		return netip.MustParseAddr("127.0.0.1")
	case 2:
		return netip.IPv6Loopback()
	case 3:
		return netip.IPv4Unspecified()
	case 4:
		return netip.IPv6Unspecified()
	case 5:
		return netip.MustParseAddr("::ffff:127.0.0.1")
	case 6:
		return netip.MustParseAddr("fe80::1%eth0")
	case 7:
		return netip.MustParseAddr("::ffff:192.0.2.1").WithZone("1")
	case 8:
		return netip.MustParseAddr("192.0.2.1")
	case 9:
		return netip.MustParseAddr("2001:db8::1")
	case 10:
		return netip.MustParseAddr("255.255.255.255")
	case 11:
		return netip.MustParseAddr("::ffff:0.0.0.0")
	case 12:
		return netip.AddrFrom4([4]byte{in.byte(), in.byte(), in.byte(), in.byte()})
	case 13:
		var b [16]byte
		for i := range b {
			b[i] = in.byte()
		}
		return netip.AddrFrom16(b)
	case 14:
		return netip.AddrFrom16(netip.AddrFrom4([4]byte{198, 51, 100, in.byte()}).As16())
	case 15:
		return netip.MustParseAddr("198.51.100.10")
	case 16:
		return netip.MustParseAddr("ff02::1%2")
	}
	return netip.MustParseAddr("::ffff:198.51.100.10")
}

var fuzzNames = []string{
	"api.example.test", "API.Example.Test.", "evil.example.test", "x_y.example.test",
	"127.1", "a..b", "", ".", "192.0.2.1", "::ffff:192.0.2.1", "fe80::1%eth0",
	"é.test", "a b.test", "0x7f.1", strings.Repeat("a.", 130) + "test", "localhost",
}

type fuzzDecision struct {
	req      Request
	allowed  bool
	panicked bool
}

type fuzzHarness struct {
	t     *testing.T
	in    fuzzInput
	seed  byte
	sim   *Simulated
	d     *Default
	clock *fakeClock
	ctx   context.Context

	// per step
	step      int
	decisions []fuzzDecision // every decision of the step, in order
	last      int            // index into decisions of the newest unconsumed one, or -1
	denials   []*DeniedError // what OnDeny got this step
	answers   []Answer       // what the resolver answers this step

	bound    map[bindingKey]bool // every (name, addr) a resolve returned
	guest    []Socket            // sockets the guest holds (maybe closed)
	closed   map[Socket]bool
	accepted []*fuzzSock // base sockets accepted during this step
	guestBuf []byte
	notices  syncBuffer
	notify   func(*DeniedError)
}

func newFuzzHarness(t *testing.T, data []byte) *fuzzHarness {
	h := &fuzzHarness{
		t:        t,
		in:       fuzzInput{data},
		sim:      &Simulated{},
		clock:    &fakeClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)},
		ctx:      context.Background(),
		bound:    make(map[bindingKey]bool),
		closed:   make(map[Socket]bool),
		guestBuf: make([]byte, 64),
		last:     -1,
	}
	h.seed = h.in.byte()
	h.notify = DenyNotifier(&h.notices)
	h.d = &Default{
		Network:  &fuzzNet{h: h},
		Resolver: fuzzResolver{h},
		Policy:   PolicyFunc(h.decide),
		Guest:    "fuzz",
		Labels:   map[string]string{"k": "v"},
		Now:      h.clock.Now,
		OnDeny:   h.onDeny,
	}
	if h.seed&0x10 != 0 {
		h.d.MaxSockets = int(h.seed%5) + 1
	}
	switch h.seed >> 5 {
	case 6:
		h.d.Policy = fuzzExplainer{h}
	case 7:
		h.d.Policy = nil // no --policy: everything denied, nothing reaches the base
	}
	return h
}

// fuzzExplainer is the fuzz policy with plugin names.
type fuzzExplainer struct{ h *fuzzHarness }

func (e fuzzExplainer) Decide(ctx context.Context, r *Request) (Verdict, error) {
	e.h.t.Fatal("Default called Decide on an Explainer")
	return Verdict{}, nil
}

func (e fuzzExplainer) DecideExplain(ctx context.Context, r *Request) (Decision, error) {
	v, err := e.h.decide(ctx, r)
	return Decision{Verdict: v, Plugin: "fuzz-" + string(v.Verdict)}, err
}

// decide is the policy: deterministic in (seed, request), and checks that
// the request is canonical.
func (h *fuzzHarness) decide(ctx context.Context, r *Request) (Verdict, error) {
	t := h.t
	t.Helper()
	if !r.Op.Valid() || r.Proto != r.Op.Proto() {
		t.Fatalf("bad op/proto %q %q", r.Op, r.Proto)
	}
	if r.Op == policy.OpDNSLookup {
		if r.Addr.IsValid() {
			t.Fatalf("dns.lookup with address %v", r.Addr)
		}
	} else if !r.Addr.IsValid() || r.Addr.Zone() != "" || r.Addr.Is4In6() {
		t.Fatalf("%s: non-canonical address %v", r.Op, r.Addr)
	}
	if r.Local.IsValid() && (r.Local.Addr().Zone() != "" || r.Local.Addr().Is4In6()) {
		t.Fatalf("%s: non-canonical local %v", r.Op, r.Local)
	}
	switch r.Op {
	case policy.OpTCPConnect, policy.OpUDPConnect, policy.OpUDPSend:
		if r.Port == 0 {
			t.Fatalf("%s to port 0 reached the policy", r.Op)
		}
	}
	if r.Name != "" {
		if c, err := CanonicalName(r.Name); err != nil || c != r.Name {
			t.Fatalf("%s: non-canonical name %q", r.Op, r.Name)
		}
	}
	for _, n := range r.Names {
		if !h.bound[bindingKey{n, r.Addr}] {
			t.Fatalf("%s %v: name %q was never resolved to it", r.Op, r.Addr, n)
		}
	}
	if r.Guest != "fuzz" || r.Labels["k"] != "v" || r.TimeMs != h.clock.Now().UnixMilli() {
		t.Fatalf("bad request metadata %+v", r)
	}
	hash := fnv.New64a()
	fmt.Fprintf(hash, "%d %s %s %d %s", h.seed, r.Op, r.Addr, r.Port, r.Name)
	x := hash.Sum64()
	if h.seed%4 == 0 {
		// Mostly allow, to reach deep states; port 666 and evil names
		// get one of the denying answers.
		if r.Port == 666 || strings.HasPrefix(r.Name, "evil.") {
			x = 8 + x%8
		} else {
			x %= 8
		}
	}
	dec := fuzzDecision{req: *r}
	dec.req.Names = slices.Clone(r.Names)
	var (
		v   Verdict
		err error
	)
	switch x % 16 {
	case 0, 1, 2, 3, 4, 5, 6, 7:
		v = policy.Allow("ok")
		dec.allowed = true
	case 8, 9:
		v = policy.Deny("fuzz deny\nwith a newline")
	case 10:
		v = policy.Abstain()
	case 11:
		err = errors.New("policy failed")
	case 12:
		dec.panicked = true
		h.record(dec)
		panic("policy panics")
	case 13:
		v = Verdict{Verdict: "ALLOW"} // not "allow": a deny
	case 14:
		v = policy.Allow("ok")
		err = errors.New("allow with an error is a deny")
	default:
		v = Verdict{}
	}
	h.record(dec)
	return v, err
}

func (h *fuzzHarness) record(dec fuzzDecision) {
	h.decisions = append(h.decisions, dec)
	h.last = len(h.decisions) - 1
}

// onDeny checks that no lock is held and records the denial.
func (h *fuzzHarness) onDeny(de *DeniedError) {
	if !h.d.mu.TryLock() {
		h.t.Fatalf("OnDeny(%v) with Default.mu held", de)
	}
	h.d.mu.Unlock()
	for _, s := range h.guest {
		if g, ok := s.(*guardedSocket); ok {
			if !g.recvMu.TryLock() {
				h.t.Fatalf("OnDeny(%v) with recvMu held", de)
			}
			g.recvMu.Unlock()
		}
	}
	if !errors.Is(de, ErrDenied) {
		h.t.Fatalf("OnDeny got %v, not ErrDenied", de)
	}
	h.denials = append(h.denials, de)
	h.notify(de)
}

// consume checks that the newest unconsumed decision allowed op on the
// canonical form of kernel, and that kernel is the form the socket's
// family needs.
func (h *fuzzHarness) consume(what string, ops []Op, family Family, kernel netip.AddrPort) {
	t := h.t
	t.Helper()
	if h.last < 0 {
		t.Fatalf("step %d: %s %v reached the base without a decision", h.step, what, kernel)
	}
	dec := h.decisions[h.last]
	h.last = -1
	if !slices.Contains(ops, dec.req.Op) || !dec.allowed {
		t.Fatalf("step %d: %s %v reached the base after %s allowed=%v", h.step, what, kernel, dec.req.Op, dec.allowed)
	}
	canon := netip.AddrPortFrom(dec.req.Addr, dec.req.Port)
	want := canon
	if family == IPv6 && canon.Addr().Is4() {
		want = netip.AddrPortFrom(netip.AddrFrom16(canon.Addr().As16()), canon.Port())
	}
	if kernel != want {
		t.Fatalf("step %d: %s: base got %v, decision was for %v (want %v)", h.step, what, kernel, canon, want)
	}
}

func (h *fuzzHarness) sock() Socket {
	if len(h.guest) == 0 {
		return nil
	}
	return h.guest[int(h.in.byte())%len(h.guest)]
}

func (h *fuzzHarness) run() {
	t := h.t
	for h.step = 0; len(h.in.b) > 0 && h.step < 200; h.step++ {
		h.decisions, h.last, h.denials, h.accepted = nil, -1, nil, nil
		op := h.in.byte() % 14
		s := h.sock()
		switch op {
		case 0:
			proto := Proto(h.in.byte()%3 + 1) // includes an invalid one
			fam := []Family{IPv4, IPv6, 5}[h.in.byte()%3]
			if ns, err := h.d.Socket(h.ctx, proto, fam); err == nil {
				h.guest = append(h.guest, ns)
			}
		case 1:
			if s != nil {
				s.Bind(h.ctx, netip.AddrPortFrom(h.in.addr(), h.in.port()))
			}
		case 2:
			if s != nil {
				s.Connect(h.ctx, netip.AddrPortFrom(h.in.addr(), h.in.port()))
			}
		case 3:
			if s != nil {
				s.Listen(h.ctx, int(h.in.byte()))
			}
		case 4:
			if s != nil {
				h.accept(s)
			}
		case 5:
			if s != nil {
				var to netip.AddrPort
				if h.in.byte()%3 != 0 {
					to = netip.AddrPortFrom(h.in.addr(), h.in.port())
				}
				s.Send(h.ctx, [][]byte{[]byte("hello")}, to, 0)
			}
		case 6:
			if s != nil {
				h.recv(s)
			}
		case 7:
			h.resolve()
		case 8:
			if s != nil {
				if err := s.Close(); err == nil {
					h.closed[s] = true
				}
			}
		case 9:
			// The remote side connects to one of the guest's sockets
			// or to a random address.
			local := netip.AddrPortFrom(h.in.addr(), h.in.port())
			if s != nil && h.in.byte()%2 == 0 {
				local, _ = s.LocalAddr()
			}
			h.sim.Dial(local, netip.AddrPortFrom(h.in.addr(), h.in.port()))
		case 10:
			to := netip.AddrPortFrom(h.in.addr(), h.in.port())
			if s != nil && h.in.byte()%2 == 0 {
				to, _ = s.LocalAddr()
			}
			from := netip.AddrPortFrom(h.in.addr(), h.in.port())
			h.sim.Deliver(to, from, []byte(reported(from).String()))
		case 11:
			if s != nil {
				switch h.in.byte() % 5 {
				case 0:
					s.Shutdown(ShutdownHow(h.in.byte() % 4))
				case 1:
					s.SetOption(SockOption(h.in.byte()%17), int(h.in.byte()))
				case 2:
					s.GetOption(SockOption(h.in.byte() % 17))
				case 3:
					s.LocalAddr()
				default:
					s.PeerAddr()
				}
			}
		case 12:
			h.clock.Advance(time.Duration(h.in.u16()) * time.Second)
		case 13:
			// A name the guest never resolved in this Default: only
			// its own lookups may bind names.
			h.d.NamesFor(h.in.addr())
		}
		h.checkStep()
	}
	lines := h.notices.lines()
	if len(lines) > MaxDenyNotices+2 || h.d.Policy == nil && len(lines) > 1 {
		t.Fatalf("%d notice lines", len(lines))
	}
	for _, l := range lines {
		if strings.Count(l, "\n") != 1 || !strings.HasPrefix(l, "wasmgate: ") {
			t.Fatalf("bad notice line %q", l)
		}
	}
	for _, s := range h.guest {
		s.Close()
	}
	if n := h.d.OpenSockets(); n != 0 {
		t.Fatalf("%d sockets open after closing all", n)
	}
}

func (h *fuzzHarness) accept(s Socket) {
	t := h.t
	c, err := s.Accept(h.ctx)
	var got *fuzzSock
	if err == nil {
		h.guest = append(h.guest, c)
		got = c.(*guardedSocket).s.(*fuzzSock)
		peer, perr := c.PeerAddr()
		if len(h.decisions) == 0 {
			t.Fatalf("step %d: accepted without a decision", h.step)
		}
		dec := h.decisions[len(h.decisions)-1]
		if perr != nil || dec.req.Op != policy.OpTCPAccept || !dec.allowed ||
			netip.AddrPortFrom(dec.req.Addr, dec.req.Port) != peer {
			t.Fatalf("step %d: accepted %v (%v) after decision %+v", h.step, peer, perr, dec)
		}
		local, _ := s.LocalAddr()
		if dec.req.Local != local {
			t.Fatalf("step %d: tcp.accept Local %v, listener at %v", h.step, dec.req.Local, local)
		}
	}
	for _, a := range h.accepted {
		if a != got && !a.closed {
			t.Fatalf("step %d: a denied connection from %v was not closed", h.step, a.peer)
		}
	}
}

func (h *fuzzHarness) recv(s Socket) {
	t := h.t
	var flags RecvFlags
	if h.in.byte()%4 == 0 {
		flags = RecvPeek
	}
	n := int(h.in.byte()) % (len(h.guestBuf) + 1)
	clear(h.guestBuf)
	k, from, _, err := s.Recv(h.ctx, [][]byte{h.guestBuf[:n]}, flags)
	if err != nil || s.Proto() != UDP {
		return
	}
	// The payload Deliver sent is the sender's address, as the base
	// reported it (unmapped, no zone).
	want := from.String()
	if k > len(want) || string(h.guestBuf[:k]) != want[:k] {
		t.Fatalf("step %d: got %q from %v", h.step, h.guestBuf[:k], from)
	}
	if slices.ContainsFunc(h.guestBuf[k:], func(b byte) bool { return b != 0 }) {
		t.Fatalf("step %d: bytes past n=%d written", h.step, k)
	}
}

func (h *fuzzHarness) resolve() {
	t := h.t
	name := fuzzNames[int(h.in.byte())%len(fuzzNames)]
	h.answers = nil
	for range h.in.byte() % 6 {
		h.answers = append(h.answers, Answer{Addr: h.in.addr(), TTL: time.Duration(h.in.byte()%4) * time.Hour / 2})
	}
	if h.in.byte()%8 == 0 {
		for i := range MaxAnswers + 5 {
			h.answers = append(h.answers, Answer{Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(i)})})
		}
	}
	// A CNAME chain for every answer: invalid names in it must fail the
	// lookup, valid ones must each be decided and bound.
	var chain []string
	for range h.in.byte() % 3 {
		chain = append(chain, fuzzNames[int(h.in.byte())%len(fuzzNames)])
	}
	for i := range h.answers {
		h.answers[i].CNAMEs = chain
	}
	addrs, err := h.d.ResolveAddresses(h.ctx, name)
	if err != nil {
		if len(addrs) != 0 {
			t.Fatalf("step %d: resolve %q: %v with addresses %v", h.step, name, err, addrs)
		}
		return
	}
	if IsIPLiteral(name) {
		want, cerr := CanonicalAddr(netip.MustParseAddr(name))
		if cerr != nil || len(addrs) != 1 || addrs[0] != want || len(h.decisions) != 0 {
			t.Fatalf("step %d: resolve literal %q = %v", h.step, name, addrs)
		}
		return
	}
	cn, cerr := CanonicalName(name)
	if cerr != nil || len(addrs) == 0 || len(addrs) > MaxAnswers {
		t.Fatalf("step %d: resolve %q = %v (%v)", h.step, name, addrs, cerr)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		if seen[a] || a.Zone() != "" || a.Is4In6() || !a.IsValid() {
			t.Fatalf("step %d: resolve %q gave %v", h.step, name, addrs)
		}
		seen[a] = true
		if !slices.ContainsFunc(h.decisions, func(d fuzzDecision) bool {
			return d.req.Op == policy.OpDNSAnswer && d.allowed && d.req.Addr == a && d.req.Name == cn
		}) {
			t.Fatalf("step %d: resolve %q gave %v, not allowed as dns.answer", h.step, name, a)
		}
		h.bound[bindingKey{cn, a}] = true
		for _, n := range chain {
			c, err := CanonicalName(n)
			if err != nil {
				t.Fatalf("step %d: resolve %q succeeded with invalid chain name %q", h.step, name, n)
			}
			if c != cn && !slices.ContainsFunc(h.decisions, func(d fuzzDecision) bool {
				return d.req.Op == policy.OpDNSLookup && d.allowed && d.req.Name == c
			}) {
				t.Fatalf("step %d: resolve %q via %q: no allowed dns.lookup of it", h.step, name, c)
			}
			h.bound[bindingKey{c, a}] = true
		}
	}
	for _, d := range h.decisions {
		if d.req.Op == policy.OpDNSLookup && !d.allowed {
			t.Fatalf("step %d: resolve %q succeeded after a denied dns.lookup of %q", h.step, name, d.req.Name)
		}
	}
}

// checkStep compares the step's denials with what OnDeny got, and the
// socket count with the guest's sockets.
func (h *fuzzHarness) checkStep() {
	t := h.t
	if h.d.Policy == nil {
		for _, de := range h.denials {
			if !de.NoPolicy || de.Plugin != "" {
				t.Fatalf("step %d: without a policy, OnDeny got %+v", h.step, de)
			}
		}
		h.denials = nil
	}
	var denied []fuzzDecision
	for _, d := range h.decisions {
		if !d.allowed {
			denied = append(denied, d)
		}
	}
	if len(denied) != len(h.denials) {
		t.Fatalf("step %d: %d denials, OnDeny called %d times", h.step, len(denied), len(h.denials))
	}
	for i, d := range denied {
		de := h.denials[i]
		var addr netip.AddrPort
		if d.req.Addr.IsValid() {
			addr = netip.AddrPortFrom(d.req.Addr, d.req.Port)
		}
		_, explained := h.d.Policy.(Explainer)
		if de.Op != d.req.Op || de.Addr != addr || de.Name != d.req.Name || !slices.Equal(de.Names, d.req.Names) ||
			de.Reason == "" || de.NoPolicy || (explained && !d.panicked) != strings.HasPrefix(de.Plugin, "fuzz-") {
			t.Fatalf("step %d: OnDeny got %+v for decision %+v", h.step, de, d.req)
		}
	}
	open := 0
	for _, s := range h.guest {
		if !h.closed[s] {
			open++
		}
	}
	if got := h.d.OpenSockets(); got != open {
		t.Fatalf("step %d: OpenSockets %d, guest holds %d", h.step, got, open)
	}
	if h.d.MaxSockets > 0 && open > h.d.MaxSockets {
		t.Fatalf("step %d: %d open, MaxSockets %d", h.step, open, h.d.MaxSockets)
	}
}

// fuzzNet is the base Network: Simulated, with every call checked.
type fuzzNet struct{ h *fuzzHarness }

func (n *fuzzNet) ResolveAddresses(ctx context.Context, name string) ([]netip.Addr, error) {
	n.h.t.Fatalf("Default resolved %q through its base network", name)
	return nil, nil
}

func (n *fuzzNet) Socket(ctx context.Context, proto Proto, family Family) (Socket, error) {
	s, err := n.h.sim.Socket(ctx, proto, family)
	if err != nil {
		return nil, err
	}
	return &fuzzSock{h: n.h, Socket: s}, nil
}

// fuzzResolver answers the step's prepared answers, after checking that
// the lookup was allowed.
type fuzzResolver struct{ h *fuzzHarness }

func (r fuzzResolver) Lookup(ctx context.Context, name string) ([]Answer, error) {
	h := r.h
	if h.last < 0 || h.decisions[h.last].req.Op != policy.OpDNSLookup || !h.decisions[h.last].allowed ||
		h.decisions[h.last].req.Name != name {
		h.t.Fatalf("step %d: lookup of %q without an allowed dns.lookup", h.step, name)
	}
	h.last = -1
	if len(h.answers) == 0 {
		return nil, ErrNotFound
	}
	return slices.Clone(h.answers), nil
}

// fuzzSock checks each call against the decisions.
type fuzzSock struct {
	Socket
	h         *fuzzHarness
	connected bool // by an allowed connect, or accepted
	closed    bool
	peer      netip.AddrPort
}

func (s *fuzzSock) Bind(ctx context.Context, local netip.AddrPort) error {
	op := policy.OpTCPBind
	if s.Proto() == UDP {
		op = policy.OpUDPBind
	}
	s.h.consume("bind", []Op{op}, s.Family(), local)
	return s.Socket.Bind(ctx, local)
}

func (s *fuzzSock) Connect(ctx context.Context, remote netip.AddrPort) error {
	op := policy.OpTCPConnect
	if s.Proto() == UDP {
		op = policy.OpUDPConnect
	}
	s.h.consume("connect", []Op{op}, s.Family(), remote)
	err := s.Socket.Connect(ctx, remote)
	if err == nil {
		s.connected = true
	}
	return err
}

func (s *fuzzSock) Listen(ctx context.Context, backlog int) error {
	local, err := s.Socket.LocalAddr()
	if err != nil {
		s.h.t.Fatalf("step %d: Listen reached the base on a socket without a local address: %v", s.h.step, err)
	}
	s.h.consume("listen", []Op{policy.OpTCPListen}, IPv4, reported(local))
	return s.Socket.Listen(ctx, backlog)
}

func (s *fuzzSock) Accept(ctx context.Context) (Socket, error) {
	c, err := s.Socket.Accept(ctx)
	if err != nil {
		return nil, err
	}
	peer, _ := c.PeerAddr()
	fs := &fuzzSock{h: s.h, Socket: c, connected: true, peer: peer}
	s.h.accepted = append(s.h.accepted, fs)
	return fs, nil
}

func (s *fuzzSock) Send(ctx context.Context, bufs [][]byte, to netip.AddrPort, flags SendFlags) (int, error) {
	if to.IsValid() {
		s.h.consume("send", []Op{policy.OpUDPSend}, s.Family(), to)
	}
	n, err := s.Socket.Send(ctx, bufs, to, flags)
	if !to.IsValid() && !s.connected && err == nil {
		s.h.t.Fatalf("step %d: undecided send on an unconnected socket went through", s.h.step)
	}
	return n, err
}

func (s *fuzzSock) Recv(ctx context.Context, bufs [][]byte, flags RecvFlags) (int, netip.AddrPort, RecvResult, error) {
	h := s.h
	toGuest := len(bufs) > 0 && len(bufs[0]) > 0 && &bufs[0][0] == &h.guestBuf[0]
	if len(bufs) > 0 && cap(bufs[0]) > 0 && len(bufs[0]) == 0 && &bufs[0][:1][0] == &h.guestBuf[0] {
		toGuest = true // an empty guest buffer is still the guest's
	}
	n, from, out, err := s.Socket.Recv(ctx, bufs, flags)
	if toGuest && s.Proto() == UDP && err == nil {
		h.consume("recv", []Op{policy.OpUDPRecv}, IPv4, reported(from))
	}
	return n, from, out, err
}

func (s *fuzzSock) Close() error {
	s.closed = true
	return s.Socket.Close()
}
