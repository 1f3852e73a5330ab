package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Default is the Network a guest gets: another Network (System unless told
// otherwise) with a Policy decision before every operation (docs/policy.md#ops).
// A denied operation never reaches the underlying Network; it fails with an
// *OpError whose Err is a *DeniedError (errors.Is(err, ErrDenied)).
//
// One Default is one guest instance: it owns the guest's name bindings
// (which names the guest resolved to which addresses, until the TTL
// expires), which fill Request.Names on connect, send, accept and recv
// decisions.
//
// Every address is canonicalised before the decision (CanonicalAddr: IPv4-
// mapped becomes IPv4, zones, and port 0 as a connect or send destination,
// fail with EINVAL before the policy is asked;
// the IPv4 addresses other IPv6 forms embed go into Request.EmbeddedIPv4),
// and the operation then uses exactly the canonical address (as IPv4-mapped
// on an IPv6 socket, which the kernel needs and which is the same
// destination).
//
// What is decided, and when (docs/policy.md#ops):
//
//   - ResolveAddresses: dns.lookup, then dns.answer per address (see there);
//   - Connect: tcp.connect or udp.connect, with Names;
//   - Bind: tcp.bind or udp.bind;
//   - Listen: tcp.listen with the bound address; on an unbound socket first
//     tcp.bind of the wildcard address (0.0.0.0 or ::), port 0, after which
//     Default binds it explicitly so that no bind happens undecided;
//   - Accept: tcp.accept per connection, with Names and Local; a denied
//     connection is reset and skipped, invisible to the guest;
//   - Send with a destination (datagram sockets): udp.send, every time,
//     with Names. Send without one goes to the connected peer, which was
//     decided at Connect, so it is not decided again;
//   - Recv on a datagram socket, connected or not: udp.recv per datagram,
//     with Names; a denied datagram is dropped silently, before any of it
//     reaches the caller's buffers;
//   - nothing else (socket creation, stream reads and writes, options,
//     addresses, shutdown, close) is a policy decision. SockOptBindToDevice
//     is refused.
//
// The zero value is usable and denies everything (nil Policy). Always use a
// *Default; do not copy one after first use. Fields must not change after
// first use.
type Default struct {
	// Network performs the allowed operations. nil means System{}.
	Network Network
	// Policy decides. nil denies every operation. A Policy error, or any
	// verdict but allow, is a deny. If it implements Explainer, the
	// deciding plugin's name goes into DeniedError.Plugin.
	Policy Policy
	// Resolver answers the lookups that ResolveAddresses allows. nil
	// means SystemResolver{}.
	Resolver Resolver
	// Guest and Labels are copied into every Request. Policies must not
	// modify Labels.
	Guest  string
	Labels map[string]string
	// NameTTL is how long a name stays bound to an address when the
	// resolver reports no TTL. Zero means DefaultNameTTL (5 min).
	NameTTL time.Duration
	// MaxSockets caps the guest's open sockets, accepted ones included;
	// past it, Socket and Accept fail with EMFILE. Zero means no limit.
	// After first use change it only with SetMaxSockets.
	MaxSockets int
	// Now is the clock for Request.TimeMs and binding expiry. nil means
	// time.Now.
	Now func() time.Time
	// OnDeny, when set, is called once for every denied decision (also
	// for the invisible ones: a dropped datagram, a skipped connection,
	// a dropped DNS answer) with the *DeniedError that describes it,
	// after the decision and never while the Default holds a lock, so it
	// may call back into the Default. It must be safe for concurrent use
	// and must not modify the error. DenyNotifier makes one that tells
	// the user on stderr.
	OnDeny func(*DeniedError)
	// OnRevoke, when set, is called once for every socket that a
	// revalidation closed (see Revalidate), never while the Default
	// holds a lock. It must be safe for concurrent use.
	OnRevoke func(Revoked)
	// OnQuota, when set, is called once for every operation a quota
	// refused (see Quotas, SetQuotas), never while the Default holds a
	// lock. It must be safe for concurrent use.
	OnQuota func(QuotaRefusal)

	// Quotas (quota.go): the configuration in force (nil: none), what
	// outlives a SetQuotas, and the quota clock (nil: monotonic time).
	quotaMu    sync.Mutex
	quota      atomic.Pointer[quotaState]
	qrun       quotaRun
	quotaClock func() int64

	mu       sync.Mutex // guards bindings, open and standing
	bindings bindingTable
	open     int
	// standing holds the sockets that are open on the strength of a
	// decision (connected, listening, accepted), for Revalidate.
	standing map[*guardedSocket]struct{}
	// epoch counts Revalidate calls; a socket whose decision raced
	// with one is decided again (see guardedSocket.stand).
	epoch atomic.Uint64

	// The running totals of Counters, each on its own cache line: they
	// are added to on every read and write of every socket.
	bytesIn  paddedCounter
	bytesOut paddedCounter
	dns      [3]paddedCounter // allowed, denied, failed
}

// paddedCounter is an atomic counter alone on its cache line.
type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

// Counters are a Default's running totals, for metrics
// (docs/metrics.md).
type Counters struct {
	// BytesIn and BytesOut count the payload bytes of the guest's
	// sockets: received into its buffers (datagrams the policy dropped
	// are not), and sent. A splice counts its bytes both in and out.
	BytesIn, BytesOut uint64
	// DNSAllowed, DNSDenied and DNSFailed count ResolveAddresses calls
	// for names (IP literals are not queries): answered with addresses;
	// denied (the lookup, a name of its CNAME chain, or every answer);
	// failed otherwise (invalid name, resolver error, no such name).
	DNSAllowed, DNSDenied, DNSFailed uint64
}

// Counters returns the running totals of this guest.
func (d *Default) Counters() Counters {
	return Counters{
		BytesIn: d.bytesIn.Load(), BytesOut: d.bytesOut.Load(),
		DNSAllowed: d.dns[0].Load(), DNSDenied: d.dns[1].Load(), DNSFailed: d.dns[2].Load(),
	}
}

// Revoked describes a socket that Revalidate closed.
type Revoked struct {
	// Request is the decision asked again: the socket's original op,
	// address, port, names and listener address, at a new time.
	Request *Request
	// Denied is the new policy's deny.
	Denied *DeniedError
	// Errno is what the guest's calls on the socket fail with from now
	// on: ECONNRESET, or ECONNABORTED for a listener.
	Errno syscall.Errno
}

// Revalidate decides again, under the policy now in force, every socket
// that is open on the strength of an earlier decision: each connected TCP
// socket (tcp.connect), accepted connection (tcp.accept, with the
// listener's address), listener (tcp.listen) and connected UDP socket
// (udp.connect), with the op, address, port and names of its original
// request. Those now denied are revoked: shut down at once (the peer sees
// the connection end, a listener's queue is reset) and from then on every
// call the guest makes on them fails with ECONNRESET, ECONNABORTED for a
// listener, until it closes them (they keep their MaxSockets slot until
// then). Revalidate calls OnRevoke for each and returns how many it
// revoked. Unconnected UDP sockets need nothing: each datagram is decided
// anyway.
//
// Call it after the Policy changed its mind (a reload). A socket whose
// decision was in flight while Revalidate ran is decided again when it
// is established, so that none escapes: what the old policy allowed
// after Revalidate started is checked under the new one too.
func (d *Default) Revalidate(ctx context.Context) int {
	d.epoch.Add(1)
	d.mu.Lock()
	socks := make([]*guardedSocket, 0, len(d.standing))
	for g := range d.standing {
		socks = append(socks, g)
	}
	d.mu.Unlock()
	n := 0
	for _, g := range socks {
		if g.recheck(ctx) {
			n++
		}
	}
	return n
}

// ResolveAddresses resolves name for the guest.
//
// An IP literal resolves to itself (canonicalised; a zone is EINVAL) with
// no decision and no binding: it is not a lookup, and whatever the guest
// does with the address is decided when it does it.
//
// Otherwise the name is canonicalised (an invalid name fails with EINVAL
// and ErrInvalidName, before any decision), dns.lookup is decided, the
// Resolver is asked, dns.lookup is decided again for every other name of
// the CNAME chains the answer went through (Answer.CNAMEs; any deny fails
// the lookup, see decideChain), and each answered address (at most MaxAnswers,
// canonicalised, duplicates removed) is decided with dns.answer. Denied
// addresses are dropped; if none survive the error matches ErrDenied. The
// survivors are bound to the name, and to every name of their CNAME chain,
// for the answer's TTL, clamped to
// [MinBindingTTL, MaxBindingTTL], or NameTTL when the resolver gave none.
func (d *Default) ResolveAddresses(ctx context.Context, name string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		a, err = CanonicalAddr(a)
		if err != nil {
			return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: err}
		}
		return []netip.Addr{a}, nil
	}
	addrs, err := d.resolveName(ctx, name)
	switch {
	case err == nil:
		d.dns[0].Add(1)
	case errors.Is(err, ErrDenied):
		d.dns[1].Add(1)
	default:
		d.dns[2].Add(1)
	}
	return addrs, err
}

// resolveName is ResolveAddresses for a name that is not an IP literal.
func (d *Default) resolveName(ctx context.Context, name string) ([]netip.Addr, error) {
	cn, err := CanonicalName(name)
	if err != nil {
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: err}
	}
	req := d.request(policy.OpDNSLookup, "")
	req.Name = cn
	if err := d.decide(ctx, req); err != nil {
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: cn, Err: err}
	}
	if err := d.quotaDNS(cn); err != nil {
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: cn, Err: err}
	}
	answers, err := d.resolver().Lookup(ctx, cn)
	if err != nil {
		var oe *OpError
		if errors.As(err, &oe) {
			return nil, err
		}
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: cn, Err: err}
	}
	if err := d.decideChain(ctx, cn, answers); err != nil {
		return nil, err
	}
	var (
		kept     []Answer
		lastDeny error
		denied   int
	)
	seen := make(map[netip.Addr]bool, len(answers))
	for _, ans := range answers {
		a, err := CanonicalAddr(ans.Addr)
		if err != nil || seen[a] {
			continue
		}
		seen[a] = true
		if len(seen) > MaxAnswers {
			break
		}
		req := d.request(policy.OpDNSAnswer, "")
		req.Name, req.Addr = cn, a
		if err := d.decide(ctx, req); err != nil {
			lastDeny = err
			denied++
			continue
		}
		kept = append(kept, Answer{Addr: a, TTL: ans.TTL, CNAMEs: ans.CNAMEs})
	}
	if len(kept) == 0 {
		if lastDeny != nil {
			var de *DeniedError
			if errors.As(lastDeny, &de) && denied > 1 {
				c := *de
				c.Addr = netip.AddrPort{}
				c.Reason = fmt.Sprintf("all %d addresses denied; last: %s", denied, de.Reason)
				lastDeny = &c
			}
			return nil, &OpError{Op: "resolve", Net: "dns", Addr: cn, Err: lastDeny}
		}
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: cn, Err: ErrNotFound}
	}
	now := d.now()
	out := make([]netip.Addr, len(kept))
	d.mu.Lock()
	for i, k := range kept {
		ttl := k.TTL
		if ttl <= 0 {
			ttl = d.NameTTL
			if ttl <= 0 {
				ttl = DefaultNameTTL
			}
		}
		ttl = min(max(ttl, MinBindingTTL), MaxBindingTTL)
		// The chain's names too, so that connect rules naming the CNAME
		// target apply; the queried name last, so it comes first in
		// Names (most recently bound).
		for i := len(k.CNAMEs) - 1; i >= 0; i-- {
			if n := k.CNAMEs[i]; n != cn {
				d.bindings.bind(n, k.Addr, now.Add(ttl), now)
			}
		}
		d.bindings.bind(cn, k.Addr, now.Add(ttl), now)
		out[i] = k.Addr
	}
	d.mu.Unlock()
	return out, nil
}

// decideChain decides dns.lookup of every name of the CNAME chains in
// answers (Answer.CNAMEs) other than cn itself, which was decided already:
// the guest asked for cn, but what it gets are the addresses of the chain's
// last name, so every name on the way is looked up on its behalf. Any deny
// fails the whole lookup with that deny. So does a chain name that is not a
// valid name (a Resolver's answer is not trusted), and more than
// 2*MaxCNAMEDepth distinct chain names, rather than deciding without end.
// Answers with canonical chains from DNSResolver never copy.
func (d *Default) decideChain(ctx context.Context, cn string, answers []Answer) error {
	var names []string
	for i := range answers {
		chain := answers[i].CNAMEs
		copied := false
		for j, n := range chain {
			c, err := CanonicalName(n)
			if err != nil {
				return &OpError{Op: "resolve", Net: "dns", Addr: cn, Err: fmt.Errorf("CNAME chain: %w", err)}
			}
			if c != n {
				// Canonical names for the bindings, on a copy: the
				// Resolver's slices may be shared.
				if !copied {
					answers[i].CNAMEs = slices.Clone(chain)
					copied = true
				}
				answers[i].CNAMEs[j] = c
			}
			if c == cn || slices.Contains(names, c) {
				continue
			}
			if len(names) >= 2*MaxCNAMEDepth {
				return &OpError{Op: "resolve", Net: "dns", Addr: cn, Err: fmt.Errorf("%w: CNAME chains name more than %d names", syscall.ELOOP, 2*MaxCNAMEDepth)}
			}
			names = append(names, c)
		}
	}
	for _, n := range names {
		req := d.request(policy.OpDNSLookup, "")
		req.Name = n
		if err := d.decide(ctx, req); err != nil {
			return &OpError{Op: "resolve", Net: "dns", Addr: cn, Err: err}
		}
	}
	return nil
}

// NamesFor returns the names currently bound to addr (canonicalised first),
// most recently resolved first.
func (d *Default) NamesFor(addr netip.Addr) []string {
	return d.namesAt(addr, d.now())
}

// namesAt is NamesFor at the time now (a request's: one clock read per
// decision, which costs ~0.1 µs in some VMs).
func (d *Default) namesAt(addr netip.Addr, now time.Time) []string {
	a, err := CanonicalAddr(addr)
	if err != nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bindings.names(a, now)
}

// Socket creates a socket whose every operation is decided first. It fails
// with EMFILE when MaxSockets are open.
func (d *Default) Socket(ctx context.Context, proto Proto, family Family) (Socket, error) {
	if err := checkProtoFamily(proto, family); err != nil {
		return nil, &OpError{Op: "socket", Net: proto.String(), Err: err}
	}
	if !d.reserve() {
		return nil, &OpError{Op: "socket", Net: proto.String(), Err: syscall.EMFILE}
	}
	s, err := d.base().Socket(ctx, proto, family)
	if err != nil {
		d.release()
		return nil, err
	}
	return &guardedSocket{d: d, s: s, proto: proto, family: family}, nil
}

// AdoptListener implements Adopter: it takes over the listening socket l
// (a duplicate of its descriptor) when the underlying Network is an
// Adopter, and decides tcp.bind and tcp.listen of its local address as if
// the guest had bound and listened there itself; its connections are then
// decided as tcp.accept like any other. A denial closes the duplicate, not
// l. It counts against MaxSockets.
func (d *Default) AdoptListener(ctx context.Context, l syscall.Conn) (Socket, error) {
	a, ok := d.base().(Adopter)
	if !ok {
		return nil, &OpError{Op: "adopt", Net: "tcp", Err: syscall.EOPNOTSUPP}
	}
	if !d.reserve() {
		return nil, &OpError{Op: "adopt", Net: "tcp", Err: syscall.EMFILE}
	}
	s, err := a.AdoptListener(ctx, l)
	if err != nil {
		d.release()
		return nil, err
	}
	g := &guardedSocket{d: d, s: s, proto: TCP, family: s.Family()}
	epoch := d.epoch.Load()
	local, err := s.LocalAddr()
	var req *Request
	if err == nil {
		local = reported(local)
		if err = g.decideAddr(ctx, policy.OpTCPBind, local, false); err == nil {
			req = g.addrRequest(policy.OpTCPListen, local, false)
			err = d.decide(ctx, req)
		}
		if err != nil {
			err = g.deny("listen", local, err)
		}
	}
	if err != nil {
		g.Close()
		return nil, err
	}
	// A listener like the guest's own: decided again on a reload.
	g.stand(ctx, req, epoch)
	return g, nil
}

func (d *Default) base() Network {
	if d.Network != nil {
		return d.Network
	}
	return System{}
}

func (d *Default) resolver() Resolver {
	if d.Resolver != nil {
		return d.Resolver
	}
	return SystemResolver{}
}

func (d *Default) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Default) reserve() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.MaxSockets > 0 && d.open >= d.MaxSockets {
		return false
	}
	d.open++
	return true
}

func (d *Default) release() {
	d.mu.Lock()
	d.open--
	d.mu.Unlock()
}

// SetMaxSockets changes MaxSockets while the Default is in use (a policy
// reload): later Socket and Accept calls see the new limit. Sockets already
// open stay open, also when they are more than n.
func (d *Default) SetMaxSockets(n int) {
	d.mu.Lock()
	d.MaxSockets = n
	d.mu.Unlock()
}

// OpenSockets reports how many sockets of this guest are open.
func (d *Default) OpenSockets() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.open
}

func (d *Default) request(op policy.Op, proto string) *Request {
	return d.requestAt(op, proto, d.now())
}

func (d *Default) requestAt(op policy.Op, proto string, now time.Time) *Request {
	r := new(Request)
	d.fillRequest(r, op, proto, now)
	return r
}

// fillRequest sets *r to a new request of op at the time now.
func (d *Default) fillRequest(r *Request, op policy.Op, proto string, now time.Time) {
	*r = Request{Op: op, Proto: proto, Guest: d.Guest, Labels: d.Labels, TimeMs: now.UnixMilli()}
}

// decide asks the policy and returns nil for allow, or a *DeniedError,
// which it has passed to OnDeny. Callers must not hold a lock.
func (d *Default) decide(ctx context.Context, req *Request) error {
	de := d.judge(ctx, req)
	if de == nil {
		return nil
	}
	d.notify(de)
	return de
}

// notify passes denials to OnDeny. Callers must not hold a lock.
func (d *Default) notify(des ...*DeniedError) {
	if d.OnDeny == nil {
		return
	}
	for _, de := range des {
		d.OnDeny(de)
	}
}

// judge asks the policy and returns nil for allow, or a *DeniedError that
// it has not yet passed to OnDeny (for callers that hold a lock).
func (d *Default) judge(ctx context.Context, req *Request) *DeniedError {
	// Policies see the IPv4 addresses an IPv6 address embeds (NAT64,
	// 6to4, Teredo, IPv4-compatible), so that IPv4 deny rules hold for
	// every form (docs/plugins.md, "Embedded IPv4").
	req.EmbeddedIPv4 = policy.EmbeddedIPv4(req.Addr)
	v, plugin, err := d.ask(ctx, req)
	if err == nil && v.Allowed() {
		return nil
	}
	de := &DeniedError{Op: req.Op, Name: req.Name, Plugin: plugin, Reason: v.Reason, Names: req.Names, NoPolicy: d.Policy == nil}
	if req.Addr.IsValid() {
		de.Addr = netip.AddrPortFrom(req.Addr, req.Port)
	}
	switch {
	case err != nil:
		de.Reason = "policy error: " + err.Error()
	case de.Reason == "" && v.Verdict == policy.ActionAbstain:
		de.Reason = "every plugin abstained"
	case de.Reason == "":
		de.Reason = "verdict " + fmt.Sprintf("%q", string(v.Verdict))
	}
	return de
}

// ask calls the policy. A panicking policy is an error (so a deny), not a
// crashed host.
func (d *Default) ask(ctx context.Context, req *Request) (v Verdict, plugin string, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, plugin, err = Verdict{}, "", fmt.Errorf("policy panicked: %v", r)
		}
	}()
	switch p := d.Policy.(type) {
	case nil:
		v = policy.Deny("no policy: all network access is denied")
	case Explainer:
		var dec Decision
		dec, err = p.DecideExplain(ctx, req)
		v, plugin = dec.Verdict, dec.Plugin
	default:
		v, err = p.Decide(ctx, req)
	}
	return v, plugin, err
}

// guardedSocket decides each operation of one guest socket.
type guardedSocket struct {
	d      *Default
	s      Socket
	proto  Proto
	family Family

	// recvMu makes the peek-decide-receive sequence of a datagram atomic
	// with respect to other receivers of this socket, so the datagram
	// that was decided is the one that is delivered or dropped.
	recvMu  sync.Mutex
	scratch [1]byte

	// acceptLocal caches the listener's address (see listenerAddr).
	acceptLocal atomic.Pointer[netip.AddrPort]

	closeOnce sync.Once

	// standing is the request whose allow keeps the socket open
	// (connect, listen, accept); nil: none. See Default.Revalidate.
	standing atomic.Pointer[Request]
	// firstReq is the storage of the socket's first standing request (its
	// connect, or for an accepted socket its accept: one allocation less
	// per connection), claimed by firstReqUsed; once claimed it is filled
	// once, before any policy sees it, and never written again.
	firstReq     Request
	firstReqUsed atomic.Bool
	// revoked is the errno every call fails with once a revalidation
	// denied the socket; 0: not revoked.
	revoked atomic.Uint32
	// conn says which concurrent-connection count (quota.go) this
	// socket is in: connNone, connOut or connIn.
	conn atomic.Uint32
}

// stand records req, decided allowed when the Default's epoch was epoch,
// as the decision keeping the socket open. If a Revalidate started since
// (the decision may have been made by the policy it replaced, and its
// snapshot may have missed this socket), the socket is decided again now.
func (g *guardedSocket) stand(ctx context.Context, req *Request, epoch uint64) {
	g.standing.Store(req)
	g.d.mu.Lock()
	if g.d.standing == nil {
		g.d.standing = make(map[*guardedSocket]struct{})
	}
	g.d.standing[g] = struct{}{}
	g.d.mu.Unlock()
	if g.d.epoch.Load() != epoch {
		g.recheck(ctx)
	}
}

// recheck decides the socket's standing request again and revokes the
// socket if it is now denied. It reports whether it revoked it.
func (g *guardedSocket) recheck(ctx context.Context) bool {
	orig := g.standing.Load()
	if orig == nil || g.revoked.Load() != 0 {
		return false
	}
	req := *orig
	req.TimeMs = g.d.now().UnixMilli()
	de := g.d.judge(ctx, &req)
	if de == nil {
		return false
	}
	errno := syscall.ECONNRESET
	if req.Op == policy.OpTCPListen {
		errno = syscall.ECONNABORTED
	}
	if !g.revoked.CompareAndSwap(0, uint32(errno)) {
		return false
	}
	// Shut down, not closed: the descriptor stays the guest's (the host
	// polls it by number) until the guest closes it, but the peer sees
	// the end now and a guest waiting on it wakes up.
	g.s.Shutdown(ShutBoth)
	g.unstand()
	if g.d.OnRevoke != nil {
		g.d.OnRevoke(Revoked{Request: &req, Denied: de, Errno: errno})
	}
	return true
}

func (g *guardedSocket) unstand() {
	g.d.mu.Lock()
	delete(g.d.standing, g)
	g.d.mu.Unlock()
}

// revokedErr is the error of a call on a revoked socket, nil if it is
// not revoked.
func (g *guardedSocket) revokedErr(op string) error {
	if e := g.revoked.Load(); e != 0 {
		return &OpError{Op: op, Net: g.proto.String(), Err: syscall.Errno(e)}
	}
	return nil
}

func (g *guardedSocket) Proto() Proto   { return g.proto }
func (g *guardedSocket) Family() Family { return g.family }

// canon canonicalises a guest address for this socket: EINVAL for zones
// and invalid addresses, EAFNOSUPPORT for an IPv6 address on an IPv4
// socket. It returns the canonical form (for policy) and the form for the
// kernel (IPv4-mapped on an IPv6 socket).
func (g *guardedSocket) canon(op string, ap netip.AddrPort) (canon, kernel netip.AddrPort, err error) {
	c, err := CanonicalAddrPort(ap)
	if err != nil {
		return c, c, &OpError{Op: op, Net: g.proto.String(), Addr: ap.String(), Err: err}
	}
	k := c
	switch {
	case g.family == IPv4 && !c.Addr().Is4():
		return c, c, &OpError{Op: op, Net: g.proto.String(), Addr: c.String(), Err: syscall.EAFNOSUPPORT}
	case g.family == IPv6 && c.Addr().Is4():
		k = netip.AddrPortFrom(netip.AddrFrom16(c.Addr().As16()), c.Port())
	}
	return c, k, nil
}

// canonRemote is canon for a destination (connect, send): port 0 is
// EINVAL too, before any policy is asked. No service listens on port 0, and
// a rule without ports must not allow it (docs/sockets.md).
func (g *guardedSocket) canonRemote(op string, ap netip.AddrPort) (canon, kernel netip.AddrPort, err error) {
	c, k, err := g.canon(op, ap)
	if err == nil && c.Port() == 0 {
		err = &OpError{Op: op, Net: g.proto.String(), Addr: c.String(), Err: syscall.EINVAL}
	}
	return c, k, err
}

func (g *guardedSocket) decideAddr(ctx context.Context, op policy.Op, ap netip.AddrPort, names bool) error {
	if de := g.judgeAddr(ctx, op, ap, names); de != nil {
		g.d.notify(de)
		return de
	}
	return nil
}

// judgeAddr is decideAddr without OnDeny, for Recv, which holds recvMu.
func (g *guardedSocket) judgeAddr(ctx context.Context, op policy.Op, ap netip.AddrPort, names bool) *DeniedError {
	return g.d.judge(ctx, g.addrRequest(op, ap, names))
}

func (g *guardedSocket) addrRequest(op policy.Op, ap netip.AddrPort, names bool) *Request {
	return g.addrRequestIn(nil, op, ap, names)
}

// addrRequestIn is addrRequest filling *req (unused storage), or a new
// Request when req is nil.
func (g *guardedSocket) addrRequestIn(req *Request, op policy.Op, ap netip.AddrPort, names bool) *Request {
	now := g.d.now()
	if req == nil {
		req = g.d.requestAt(op, g.proto.String(), now)
	} else {
		g.d.fillRequest(req, op, g.proto.String(), now)
	}
	req.Addr, req.Port = ap.Addr(), ap.Port()
	if names {
		req.Names = g.d.namesAt(ap.Addr(), now)
	}
	return req
}

func (g *guardedSocket) deny(op string, ap netip.AddrPort, err error) error {
	return &OpError{Op: op, Net: g.proto.String(), Addr: ap.String(), Err: err}
}

// Bind decides tcp.bind or udp.bind of the local address.
func (g *guardedSocket) Bind(ctx context.Context, local netip.AddrPort) error {
	if err := g.revokedErr("bind"); err != nil {
		return err
	}
	c, k, err := g.canon("bind", local)
	if err != nil {
		return err
	}
	op := policy.OpTCPBind
	if g.proto == UDP {
		op = policy.OpUDPBind
	}
	if err := g.decideAddr(ctx, op, c, false); err != nil {
		return g.deny("bind", c, err)
	}
	return g.s.Bind(ctx, k)
}

// Connect decides tcp.connect or udp.connect, with the names bound to the
// remote address. The kernel's implicit bind is part of the connect.
//
// An established (or, non-blocking, started) connection stands on this
// decision: Revalidate asks it again.
func (g *guardedSocket) Connect(ctx context.Context, remote netip.AddrPort) error {
	if err := g.revokedErr("connect"); err != nil {
		return err
	}
	c, k, err := g.canonRemote("connect", remote)
	if err != nil {
		return err
	}
	op := policy.OpTCPConnect
	if g.proto == UDP {
		op = policy.OpUDPConnect
	}
	epoch := g.d.epoch.Load()
	var req *Request
	if g.firstReqUsed.CompareAndSwap(false, true) {
		req = &g.firstReq
	}
	req = g.addrRequestIn(req, op, c, true)
	if err := g.d.decide(ctx, req); err != nil {
		return g.deny("connect", c, err)
	}
	if err := g.quotaConnect(c); err != nil {
		return g.deny("connect", c, err)
	}
	err = g.s.Connect(ctx, k)
	if err == nil || errors.Is(err, syscall.EINPROGRESS) {
		g.stand(ctx, req, epoch)
	} else {
		g.connDone()
	}
	return err
}

// Listen decides tcp.listen with the socket's actual local address. On an
// unbound socket it first decides tcp.bind of the wildcard address, port
// 0, and binds it explicitly, so the kernel's implicit bind never happens
// undecided.
func (g *guardedSocket) Listen(ctx context.Context, backlog int) error {
	if g.proto != TCP {
		return &OpError{Op: "listen", Net: g.proto.String(), Err: syscall.EOPNOTSUPP}
	}
	if err := g.revokedErr("listen"); err != nil {
		return err
	}
	epoch := g.d.epoch.Load()
	local, err := g.s.LocalAddr()
	if err != nil {
		return err
	}
	if local.Port() == 0 {
		wild := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		if g.family == IPv6 {
			wild = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
		if err := g.decideAddr(ctx, policy.OpTCPBind, wild, false); err != nil {
			return g.deny("listen", wild, err)
		}
		if err := g.s.Bind(ctx, wild); err != nil {
			return err
		}
		if local, err = g.s.LocalAddr(); err != nil {
			return err
		}
	}
	local = reported(local)
	req := g.addrRequest(policy.OpTCPListen, local, false)
	if err := g.d.decide(ctx, req); err != nil {
		return g.deny("listen", local, err)
	}
	if err := g.s.Listen(ctx, backlog); err != nil {
		return err
	}
	g.stand(ctx, req, epoch)
	return nil
}

// reported canonicalises an address that the kernel reported: unmapped and
// without zone (a peer's scope is not the guest's choice, and policy never
// sees zones).
func reported(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().WithZone("").Unmap(), ap.Port())
}

// Accept returns the next pending connection that the policy allows
// (tcp.accept, with the peer, the names bound to the peer's address, and
// the listener's local address). Denied
// connections are closed and skipped, invisibly to the guest; when none
// is pending Accept fails with EAGAIN as usual (also after maxSkips
// denials in one call, see there). At MaxSockets it fails
// with EMFILE without taking a connection.
func (g *guardedSocket) Accept(ctx context.Context) (Socket, error) {
	if err := g.revokedErr("accept"); err != nil {
		return nil, err
	}
	local, err := g.listenerAddr()
	if err != nil {
		return nil, err
	}
	for skipped := 0; ; skipped++ {
		if err := g.skipLimit(ctx, "accept", skipped); err != nil {
			return nil, err
		}
		if !g.d.reserve() {
			return nil, &OpError{Op: "accept", Net: g.proto.String(), Err: syscall.EMFILE}
		}
		epoch := g.d.epoch.Load()
		c, peer, err := acceptPeer(ctx, g.s)
		if err != nil {
			g.d.release()
			if rerr := g.revokedErr("accept"); rerr != nil {
				return nil, rerr
			}
			return nil, err
		}
		if c == nil {
			// A Socket breaking its contract must not crash the host.
			g.d.release()
			return nil, &OpError{Op: "accept", Net: g.proto.String(), Err: syscall.EINVAL}
		}
		if !peer.IsValid() {
			peer, err = c.PeerAddr()
		}
		var req *Request
		var a *guardedSocket
		if err == nil {
			a = &guardedSocket{d: g.d, s: c, proto: g.proto, family: g.family}
			a.firstReqUsed.Store(true)
			now := g.d.now()
			req = &a.firstReq
			g.d.fillRequest(req, policy.OpTCPAccept, g.proto.String(), now)
			peer = reported(peer)
			req.Addr, req.Port, req.Local = peer.Addr(), peer.Port(), local
			req.Names = g.d.namesAt(req.Addr, now)
			err = g.d.decide(ctx, req)
		}
		if err != nil {
			// Denied, or the peer is already gone: reset it (linger
			// 0, so the peer sees a refusal rather than an orderly
			// close) and look at the next one.
			c.SetOption(SockOptLinger, 0)
			c.Close()
			g.d.release()
			continue
		}
		g.acceptLocal.Store(&local)
		if g.d.quotaAccept(a, peer, local) != nil {
			// Over max_conns_in or accept_rate: reset, like a
			// denied one, so the client never hangs (quota.go).
			c.SetOption(SockOptLinger, 0)
			c.Close()
			g.d.release()
			continue
		}
		a.stand(ctx, req, epoch)
		return a, nil
	}
}

// peerAccepter is implemented by sockets whose accept learns the peer's
// address with the connection (systemSocket: accept4 reports it), which
// saves a PeerAddr call for every tcp.accept decision.
type peerAccepter interface {
	acceptPeer(ctx context.Context) (Socket, netip.AddrPort, error)
}

// acceptPeer accepts on s and returns the peer's address when s learns it
// for free; otherwise (or when the kernel reported no IP address) the
// address is the zero value and the caller asks PeerAddr.
func acceptPeer(ctx context.Context, s Socket) (Socket, netip.AddrPort, error) {
	if pa, ok := s.(peerAccepter); ok {
		return pa.acceptPeer(ctx)
	}
	c, err := s.Accept(ctx)
	return c, netip.AddrPort{}, err
}

// listenerAddr is the local address of a listener, for tcp.accept
// requests. It is asked once: after a successful accept the socket is
// known to be listening, and a listening socket's address never changes;
// an Accept that finds nothing pending (every second call of a busy
// server) then costs one syscall, not two.
func (g *guardedSocket) listenerAddr() (netip.AddrPort, error) {
	if p := g.acceptLocal.Load(); p != nil {
		return *p, nil
	}
	local, err := g.s.LocalAddr()
	return reported(local), err
}

// Recv receives. On a datagram socket, connected or not, each datagram's
// sender is decided (udp.recv, with the names bound to the sender's
// address) before a byte of it reaches bufs: the
// datagram is peeked into a one-byte scratch buffer to learn its sender,
// then received into bufs if allowed, or consumed into the scratch buffer
// and dropped if denied, and Recv goes on with the next (EAGAIN when none
// is left). With RecvPeek an allowed datagram stays queued, a denied one is
// still consumed. Stream sockets are not decided per read: the connection
// was.
func (g *guardedSocket) Recv(ctx context.Context, bufs [][]byte, flags RecvFlags) (n int, _ netip.AddrPort, _ RecvResult, _ error) {
	if err := g.revokedErr("recv"); err != nil {
		return 0, netip.AddrPort{}, 0, err
	}
	if g.proto != UDP {
		var m meter
		if s := g.d.quota.Load(); s != nil && s.bytes {
			var err error
			if bufs, m, err = g.meterBytes(s, false, bufs, netip.AddrPort{}, flags&RecvPeek != 0); err != nil {
				return 0, netip.AddrPort{}, 0, &OpError{Op: "recv", Net: g.proto.String(), Err: err}
			}
		}
		n, from, res, err := g.s.Recv(ctx, bufs, flags)
		g.settle(m, false, n)
		if n > 0 && flags&RecvPeek == 0 {
			g.d.bytesIn.Add(uint64(n))
		}
		if n == 0 || err != nil {
			// The end of stream (or the error) of a revocation racing
			// with this call is a reset too.
			if rerr := g.revokedErr("recv"); rerr != nil {
				return 0, netip.AddrPort{}, 0, rerr
			}
		}
		return n, from, res, err
	}
	// Denials are reported to OnDeny after recvMu is released (the
	// deferred calls run in reverse order); at most 2*maxSkips of them.
	var denied []*DeniedError
	defer func() { g.d.notify(denied...) }()
	if s := g.d.quota.Load(); s != nil && s.bytes {
		bufs2, m, err := g.meterBytes(s, false, bufs, netip.AddrPort{}, flags&RecvPeek != 0)
		if err != nil {
			return 0, netip.AddrPort{}, 0, &OpError{Op: "recv", Net: g.proto.String(), Err: err}
		}
		bufs = bufs2
		moved := 0
		defer func() { g.settle(m, false, moved) }()
		defer func() { moved = n }()
	}
	g.recvMu.Lock()
	defer g.recvMu.Unlock()
	scratch := [][]byte{g.scratch[:]}
	for skipped := 0; ; skipped++ {
		if err := g.skipLimit(ctx, "recv", skipped); err != nil {
			return 0, netip.AddrPort{}, 0, err
		}
		_, from, _, err := g.s.Recv(ctx, scratch, RecvPeek)
		if rerr := g.revokedErr("recv"); rerr != nil {
			return 0, netip.AddrPort{}, 0, rerr // revoked while waiting
		}
		if err != nil {
			return 0, netip.AddrPort{}, 0, err
		}
		from = reported(from)
		if de := g.judgeAddr(ctx, policy.OpUDPRecv, from, true); de != nil {
			denied = append(denied, de)
			if _, _, _, err := g.s.Recv(ctx, scratch, 0); err != nil {
				return 0, netip.AddrPort{}, 0, err
			}
			continue
		}
		n, from2, out, err := g.s.Recv(ctx, bufs, flags)
		if err != nil {
			return 0, netip.AddrPort{}, 0, err
		}
		if reported(from2) != from {
			// Someone else read the socket behind our back (not
			// through this guard): decide what we actually got.
			from2 = reported(from2)
			if de := g.judgeAddr(ctx, policy.OpUDPRecv, from2, true); de != nil {
				denied = append(denied, de)
				zeroPrefix(bufs, n)
				if flags&RecvPeek != 0 {
					g.s.Recv(ctx, scratch, 0)
				}
				continue
			}
		}
		if flags&RecvPeek == 0 {
			g.d.bytesIn.Add(uint64(n))
		}
		return n, from2, out, nil
	}
}

// maxSkips bounds how many denied connections or datagrams one Accept or
// Recv drops before it returns EAGAIN: a peer flooding denied traffic must
// not keep a guest's call (and its host thread) busy forever. The socket
// stays readable, so the caller simply polls and calls again.
const maxSkips = 64

// skipLimit ends an Accept or Recv loop after maxSkips drops, or when ctx
// is done.
func (g *guardedSocket) skipLimit(ctx context.Context, op string, skipped int) error {
	if err := ctx.Err(); err != nil && skipped > 0 {
		return &OpError{Op: op, Net: g.proto.String(), Err: err}
	}
	if skipped >= maxSkips {
		return &OpError{Op: op, Net: g.proto.String(), Err: syscall.EAGAIN}
	}
	return nil
}

// zeroPrefix zeroes the first n bytes of bufs, so a datagram that was not
// allowed leaves nothing behind in guest memory.
func zeroPrefix(bufs [][]byte, n int) {
	for _, b := range bufs {
		if n <= 0 {
			return
		}
		k := min(n, len(b))
		for i := range b[:k] {
			b[i] = 0
		}
		n -= k
	}
}

// Send sends. With a destination on a datagram socket it decides udp.send
// each time, with the names bound to the destination. Without one it
// sends to the connected peer, which was decided by Connect (udp.connect
// or tcp.connect), so there is nothing to decide again. A destination on a
// stream socket fails with EISCONN before any decision.
func (g *guardedSocket) Send(ctx context.Context, bufs [][]byte, to netip.AddrPort, flags SendFlags) (int, error) {
	if err := g.revokedErr("send"); err != nil {
		return 0, err
	}
	if to == (netip.AddrPort{}) {
		var m meter
		if s := g.d.quota.Load(); s != nil && s.bytes {
			var err error
			if bufs, m, err = g.meterBytes(s, true, bufs, to, false); err != nil {
				return 0, &OpError{Op: "send", Net: g.proto.String(), Err: err}
			}
		}
		n, err := g.s.Send(ctx, bufs, to, flags)
		g.settle(m, true, n)
		if n > 0 {
			g.d.bytesOut.Add(uint64(n))
		}
		if err != nil {
			if rerr := g.revokedErr("send"); rerr != nil {
				return 0, rerr
			}
		}
		return n, err
	}
	if g.proto != UDP {
		return 0, &OpError{Op: "send", Net: g.proto.String(), Addr: to.String(), Err: syscall.EISCONN}
	}
	c, k, err := g.canonRemote("send", to)
	if err != nil {
		return 0, err
	}
	if err := g.decideAddr(ctx, policy.OpUDPSend, c, true); err != nil {
		return 0, g.deny("send", c, err)
	}
	var m meter
	if s := g.d.quota.Load(); s != nil && s.bytes {
		if bufs, m, err = g.meterBytes(s, true, bufs, c, false); err != nil {
			return 0, g.deny("send", c, err)
		}
	}
	n, err := g.s.Send(ctx, bufs, k, flags)
	g.settle(m, true, n)
	if n > 0 {
		g.d.bytesOut.Add(uint64(n))
	}
	return n, err
}

// Shutdown, options and addresses need no decision. SO_BINDTODEVICE is
// refused by System; options of another base Network pass through.
func (g *guardedSocket) Shutdown(how ShutdownHow) error { return g.s.Shutdown(how) }

// GetOption reads an option of the underlying socket.
func (g *guardedSocket) GetOption(opt SockOption) (int, error) { return g.s.GetOption(opt) }

// SetOption sets an option of the underlying socket, except
// SockOptBindToDevice, which would route around the address policy and is
// refused with ENOPROTOOPT.
func (g *guardedSocket) SetOption(opt SockOption, value int) error {
	if opt == SockOptBindToDevice {
		return &OpError{Op: "setsockopt", Net: g.proto.String(), Err: syscall.ENOPROTOOPT}
	}
	return g.s.SetOption(opt, value)
}

// LocalAddr returns the local address, canonical.
func (g *guardedSocket) LocalAddr() (netip.AddrPort, error) {
	ap, err := g.s.LocalAddr()
	return reported(ap), err
}

// PeerAddr returns the peer address, canonical.
func (g *guardedSocket) PeerAddr() (netip.AddrPort, error) {
	ap, err := g.s.PeerAddr()
	return reported(ap), err
}

// Fd returns the underlying descriptor.
func (g *guardedSocket) Fd() int { return g.s.Fd() }

// Close closes the socket and frees its MaxSockets slot, once.
func (g *guardedSocket) Close() error {
	var err error
	g.closeOnce.Do(func() {
		if g.standing.Load() != nil {
			g.unstand()
		}
		err = g.s.Close()
		g.d.release()
		g.connDone()
	})
	return err
}
