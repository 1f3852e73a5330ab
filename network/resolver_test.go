package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// testDNS is a real DNS server on 127.0.0.1 (UDP and TCP, same port)
// serving a small fixed zone.
type testDNS struct {
	addr string
	mu   sync.Mutex
	seen []string // "udp A a.test." per query
}

func (s *testDNS) queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

func rr(t testing.TB, s string) dns.RR {
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func startTestDNS(t testing.TB) *testDNS {
	t.Helper()
	zone := map[string][]dns.RR{
		"a.test.": {rr(t, "a.test. 300 IN A 192.0.2.1"), rr(t, "a.test. 300 IN A 192.0.2.2"), rr(t, "a.test. 60 IN AAAA 2001:db8::1")},
		// Chain answered in full by the server.
		"cname.test.": {rr(t, "cname.test. 30 IN CNAME mid.test."), rr(t, "mid.test. 600 IN CNAME a.test."),
			rr(t, "a.test. 300 IN A 192.0.2.1")},
		// One link, answered in full for A and AAAA.
		"one.test.": {rr(t, "one.test. 30 IN CNAME a.test."), rr(t, "a.test. 300 IN A 192.0.2.1"),
			rr(t, "a.test. 60 IN AAAA 2001:db8::1")},
		// Chain the server does not complete: the client re-queries a.test.
		"split.test.":  {rr(t, "split.test. 40 IN CNAME a.test.")},
		"loop1.test.":  {rr(t, "loop1.test. 60 IN CNAME loop2.test.")},
		"loop2.test.":  {rr(t, "loop2.test. 60 IN CNAME loop1.test.")},
		"zero.test.":   {rr(t, "zero.test. 0 IN A 192.0.2.9")},
		"nodata.test.": {rr(t, `nodata.test. 60 IN TXT "hello"`)},
		"v4only.test.": {rr(t, "v4only.test. 60 IN A 192.0.2.5")},
		// Records for other names are ignored, however tempting.
		"stuffed.test.": {rr(t, "evil.test. 60 IN A 127.0.0.1"), rr(t, "stuffed.test. 60 IN A 192.0.2.7")},
		"big.test.":     {rr(t, "big.test. 60 IN A 192.0.2.99")},
		// A chain whose target's server never answers.
		"tosilent.test.": {rr(t, "tosilent.test. 60 IN CNAME silent.test.")},
	}
	s := &testDNS{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		q := req.Question[0]
		s.mu.Lock()
		s.seen = append(s.seen, w.RemoteAddr().Network()+" "+dns.TypeToString[q.Qtype]+" "+q.Name)
		s.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(req)
		name := strings.ToLower(q.Name)
		switch {
		case name == "fail.test.":
			m.Rcode = dns.RcodeServerFailure
		case name == "silent.test.":
			return
		case name == "big.test." && w.RemoteAddr().Network() == "udp":
			m.Truncated = true
		default:
			recs, ok := zone[name]
			if !ok {
				m.Rcode = dns.RcodeNameError
				break
			}
			for _, r := range recs {
				if r.Header().Rrtype == q.Qtype || r.Header().Rrtype == dns.TypeCNAME {
					m.Answer = append(m.Answer, r)
				}
			}
		}
		w.WriteMsg(m)
	})
	// The servers share one port number: the UDP one is free, its TCP twin
	// may be taken, so try a few ports.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if try == 20 {
				t.Fatalf("no port free for both UDP and TCP: %v", err)
			}
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	var started sync.WaitGroup
	started.Add(2)
	udp.NotifyStartedFunc = started.Done
	tcp.NotifyStartedFunc = started.Done
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	started.Wait()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	s.addr = pc.LocalAddr().String()
	return s
}

// blackhole is a UDP socket that reads queries and never answers.
func blackhole(t testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// countingBlackhole is a blackhole whose queries function says how many
// queries reached it so far. It sends itself a marker and counts what was
// queued before it: a query sent before the call is in the socket's queue
// by then, so the count does not depend on timing.
func countingBlackhole(t testing.TB) (addr string, queries func() int) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	marker := []byte("wasmgate-test-marker")
	counts := make(chan int)
	go func() {
		buf := make([]byte, 512)
		n := 0
		for {
			m, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if string(buf[:m]) == string(marker) {
				counts <- n
				continue
			}
			n++
		}
	}()
	return pc.LocalAddr().String(), func() int {
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(marker); err != nil {
			t.Fatal(err)
		}
		return <-counts
	}
}

// answers makes Answers from "addr/ttl" or "addr/ttl via a.test,b.test"
// (the CNAME chain).
func answers(s ...string) []Answer {
	var out []Answer
	for _, x := range s {
		x, via, _ := strings.Cut(x, " via ")
		a, ttl, _ := strings.Cut(x, "/")
		d, _ := time.ParseDuration(ttl)
		ans := Answer{Addr: netip.MustParseAddr(a), TTL: d}
		if via != "" {
			ans.CNAMEs = strings.Split(via, ",")
		}
		out = append(out, ans)
	}
	return out
}

func equalAnswers(a, b []Answer) bool {
	return slices.EqualFunc(a, b, func(x, y Answer) bool {
		return x.Addr == y.Addr && x.TTL == y.TTL && slices.Equal(x.CNAMEs, y.CNAMEs)
	})
}

func TestDNSResolver(t *testing.T) {
	srv := startTestDNS(t)
	r := DNSResolver{Servers: []string{srv.addr}, Timeout: 2 * time.Second}
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		want []Answer
		err  error // errors.Is target; nil with want nil = any error
	}{
		{"a.test", answers("192.0.2.1/300s", "192.0.2.2/300s", "2001:db8::1/60s"), nil},
		{"A.Test.", answers("192.0.2.1/300s", "192.0.2.2/300s", "2001:db8::1/60s"), nil},
		// AAAA: the server gives only the chain; the client asks a.test.
		{"cname.test", answers("192.0.2.1/30s via mid.test,a.test", "2001:db8::1/30s via mid.test,a.test"), nil},
		{"split.test", answers("192.0.2.1/40s via a.test", "192.0.2.2/40s via a.test", "2001:db8::1/40s via a.test"), nil},
		{"zero.test", answers("192.0.2.9/1s"), nil},
		{"v4only.test", answers("192.0.2.5/60s"), nil},
		{"stuffed.test", answers("192.0.2.7/60s"), nil},
		{"big.test", answers("192.0.2.99/60s"), nil},
		{"nx.test", nil, ErrNotFound},
		{"nodata.test", nil, ErrNotFound},
		{"fail.test", nil, nil},
		{"loop1.test", nil, nil},
		{"bad..name", nil, ErrInvalidName},
	} {
		got, err := r.Lookup(ctx, tt.name)
		if tt.want != nil {
			if err != nil || !equalAnswers(got, tt.want) {
				t.Errorf("Lookup(%s) = %v, %v; want %v", tt.name, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("Lookup(%s) = %v, want error", tt.name, got)
		} else if tt.err != nil && !errors.Is(err, tt.err) {
			t.Errorf("Lookup(%s) error %v, want %v", tt.name, err, tt.err)
		} else if tt.err == nil && errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%s) error %v should not be ErrNotFound", tt.name, err)
		}
	}
	q := srv.queries()
	for _, want := range []string{"udp A a.test.", "udp A big.test.", "tcp A big.test.", "udp A split.test."} {
		if !slices.Contains(q, want) {
			t.Errorf("server never saw %q; saw %v", want, q)
		}
	}
	n := 0
	for _, x := range q {
		if strings.Contains(x, "loop") {
			n++
		}
	}
	if n > 2*(MaxCNAMEDepth+1) {
		t.Errorf("CNAME loop made %d queries", n)
	}
}

// A re-query along a chain that fails is an error, not a nil answer.
func TestDNSResolverChainQueryFails(t *testing.T) {
	srv := startTestDNS(t)
	r := DNSResolver{Servers: []string{srv.addr}, Timeout: 200 * time.Millisecond}
	got, err := r.Lookup(context.Background(), "tosilent.test")
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(tosilent.test) = %v, %v; want a timeout", got, err)
	}
}

func TestDNSResolverHosts(t *testing.T) {
	srv := startTestDNS(t)
	r := DNSResolver{Servers: []string{srv.addr}, Hosts: map[string][]netip.Addr{
		"DB.Internal.": {netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("::ffff:10.0.0.8"), netip.MustParseAddr("fe80::1%lo")},
		"a.test":       {netip.MustParseAddr("10.9.9.9")},
	}}
	got, err := r.Lookup(context.Background(), "db.internal")
	if err != nil || !equalAnswers(got, answers("10.0.0.7", "10.0.0.8")) {
		t.Fatalf("hosts: %v, %v", got, err)
	}
	got, err = r.Lookup(context.Background(), "a.test")
	if err != nil || !equalAnswers(got, answers("10.9.9.9")) {
		t.Fatalf("hosts override: %v, %v", got, err)
	}
	if len(srv.queries()) != 0 {
		t.Fatalf("hosts names went to the server: %v", srv.queries())
	}
	if _, err := (DNSResolver{}).Lookup(context.Background(), "x.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no servers: %v", err)
	}
}

func TestDNSResolverTimeout(t *testing.T) {
	r := DNSResolver{Servers: []string{blackhole(t)}, Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err := r.Lookup(context.Background(), "a.test")
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup against a silent server = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v with Timeout 300ms", d)
	}
	// The caller's context is honoured too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r.Timeout = time.Minute
	start = time.Now()
	if _, err := r.Lookup(ctx, "a.test"); err == nil {
		t.Fatal("no error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v with a 100ms context", d)
	}
}

func TestDNSResolverFailover(t *testing.T) {
	srv := startTestDNS(t)
	first, firstQueries := countingBlackhole(t)
	r := DNSResolver{Servers: []string{first, srv.addr}, Timeout: 2 * time.Second}
	got, err := r.Lookup(context.Background(), "v4only.test")
	if err != nil || !equalAnswers(got, answers("192.0.2.5/60s")) {
		t.Fatalf("failover: %v, %v", got, err)
	}
	if n := firstQueries(); n == 0 {
		t.Fatal("the first server was never asked")
	}
	// NXDOMAIN is an answer: no failover.
	second, queries := countingBlackhole(t)
	r = DNSResolver{Servers: []string{srv.addr, second}, Timeout: 2 * time.Second}
	if _, err := r.Lookup(context.Background(), "nx.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nx: %v", err)
	}
	if n := queries(); n != 0 {
		t.Fatalf("NXDOMAIN went on to the next server (%d queries)", n)
	}
}

// TestDefaultWithDNSResolver: Default binds names for the DNS TTL.
func TestDefaultWithDNSResolver(t *testing.T) {
	srv := startTestDNS(t)
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	var mu sync.Mutex
	var ops []string
	d := &Default{
		Resolver: DNSResolver{Servers: []string{srv.addr}},
		Now:      clock.Now,
		Policy: PolicyFunc(func(ctx context.Context, r *Request) (Verdict, error) {
			mu.Lock()
			ops = append(ops, string(r.Op)+" "+r.Name+" "+r.Addr.String())
			mu.Unlock()
			return Verdict{Verdict: "allow"}, nil
		}),
	}
	got, err := d.ResolveAddresses(context.Background(), "cname.test")
	if err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}) {
		t.Fatalf("got %v, %v", got, err)
	}
	// Every name of the chain is looked up on the guest's behalf.
	if want := []string{"dns.lookup cname.test invalid IP", "dns.lookup mid.test invalid IP", "dns.lookup a.test invalid IP",
		"dns.answer cname.test 192.0.2.1", "dns.answer cname.test 2001:db8::1"}; !slices.Equal(ops, want) {
		t.Fatalf("ops %q", ops)
	}
	clock.Advance(29 * time.Second)
	if n := d.NamesFor(netip.MustParseAddr("192.0.2.1")); !slices.Equal(n, []string{"cname.test", "mid.test", "a.test"}) {
		t.Fatalf("NamesFor = %v", n)
	}
	clock.Advance(time.Second) // TTL 30 s along the chain
	if n := d.NamesFor(netip.MustParseAddr("192.0.2.1")); n != nil {
		t.Fatalf("NamesFor after TTL = %v", n)
	}
}

// FuzzDNSAnswer feeds arbitrary DNS messages to the answer scanner: it
// must never panic, and what it returns must be for the name and type
// asked.
func FuzzDNSAnswer(f *testing.F) {
	for _, recs := range [][]string{
		{"a.test. 300 IN A 192.0.2.1", "a.test. 60 IN AAAA 2001:db8::1"},
		{"a.test. 30 IN CNAME b.test.", "b.test. 0 IN A 192.0.2.2", "evil.test. 60 IN A 127.0.0.1"},
		{"A.TEST. 5 IN AAAA ::ffff:10.0.0.1"},
	} {
		m := new(dns.Msg)
		m.SetQuestion("a.test.", dns.TypeA)
		for _, r := range recs {
			m.Answer = append(m.Answer, rr(f, r))
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(dns.TypeA))
		f.Add(b, uint16(dns.TypeAAAA))
	}
	f.Fuzz(func(t *testing.T, b []byte, qtype uint16) {
		m := new(dns.Msg)
		if m.Unpack(b) != nil || len(m.Question) == 0 {
			return
		}
		target := m.Question[0].Name
		out, next, _ := scanAnswer(m, target, qtype, 3600)
		for _, a := range out {
			if !a.Addr.IsValid() || a.Addr.Is4In6() || a.TTL < time.Second || a.TTL > time.Hour {
				t.Fatalf("bad answer %+v", a)
			}
			if qtype == dns.TypeA && !a.Addr.Is4() || qtype != dns.TypeA && qtype != dns.TypeAAAA {
				t.Fatalf("answer %v for qtype %d", a.Addr, qtype)
			}
		}
		if next != "" && !hasOwner(m, target) {
			t.Fatalf("CNAME %q without a record owned by %q", next, target)
		}
		// Every answer is an address record of the name asked, and every
		// such record gives an answer: nothing the server says about other
		// names gets in, nothing about this one is lost.
		owned := map[netip.Addr]int{}
		firstCNAME := ""
		for _, rr := range m.Answer {
			if !strings.EqualFold(rr.Header().Name, target) {
				continue
			}
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A.To4()); ok && qtype == dns.TypeA {
					owned[a]++
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok && qtype == dns.TypeAAAA {
					owned[a.Unmap()]++
				}
			case *dns.CNAME:
				if firstCNAME == "" {
					firstCNAME = rr.Target
				}
			}
		}
		for _, a := range out {
			if owned[a.Addr] == 0 {
				t.Fatalf("answer %v is not a record of %q", a.Addr, target)
			}
			owned[a.Addr]--
		}
		for a, n := range owned {
			if n != 0 {
				t.Fatalf("record %v of %q lost", a, target)
			}
		}
		if next != firstCNAME {
			t.Fatalf("next %q, want the first CNAME of %q: %q", next, target, firstCNAME)
		}
	})
}

// A CNAME chain is decided name by name (dns.lookup): a deny of any name
// on it fails the lookup, and the addresses are bound to every name of the
// chain, so that connect rules about the target apply through the alias.
func TestDefaultCNAMEChainDecided(t *testing.T) {
	srv := startTestDNS(t)
	deny := func(name string) PolicyFunc {
		return func(ctx context.Context, r *Request) (Verdict, error) {
			if r.Name == name || slices.Contains(r.Names, name) {
				return Verdict{Verdict: "deny", Reason: "no " + name}, nil
			}
			return Verdict{Verdict: "allow"}, nil
		}
	}
	ctx := context.Background()
	for _, denied := range []string{"mid.test", "a.test"} {
		d := &Default{Resolver: DNSResolver{Servers: []string{srv.addr}}, Policy: deny(denied)}
		got, err := d.ResolveAddresses(ctx, "cname.test")
		var de *DeniedError
		if !errors.As(err, &de) || de.Name != denied || de.Op != "dns.lookup" {
			t.Errorf("deny %s: ResolveAddresses(cname.test) = %v, %v; want dns.lookup of %s denied", denied, got, err, denied)
		}
		if n := d.NamesFor(netip.MustParseAddr("192.0.2.1")); n != nil {
			t.Errorf("deny %s: bound %v", denied, n)
		}
	}
	// Only connects to a.test are denied: the alias resolves, and the
	// connect through it carries a.test among its names.
	var seen []string
	d := &Default{Resolver: DNSResolver{Servers: []string{srv.addr}}, Policy: PolicyFunc(func(ctx context.Context, r *Request) (Verdict, error) {
		if r.Op == "tcp.connect" {
			seen = r.Names
			if slices.Contains(r.Names, "a.test") {
				return Verdict{Verdict: "deny"}, nil
			}
		}
		return Verdict{Verdict: "allow"}, nil
	})}
	if _, err := d.ResolveAddresses(ctx, "split.test"); err != nil {
		t.Fatal(err)
	}
	s, err := d.Socket(ctx, TCP, IPv4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Connect(ctx, netip.MustParseAddrPort("192.0.2.1:443"))
	if !errors.Is(err, ErrDenied) || !slices.Equal(seen, []string{"split.test", "a.test"}) {
		t.Errorf("connect through the alias: %v, names %v; want denied with names [split.test a.test]", err, seen)
	}
}

// decideChain fails closed on answers it cannot trust: an invalid chain
// name, or more chain names than 2*MaxCNAMEDepth.
func TestDefaultCNAMEChainBounds(t *testing.T) {
	allow := PolicyFunc(func(ctx context.Context, r *Request) (Verdict, error) { return Verdict{Verdict: "allow"}, nil })
	long := make([]string, 2*MaxCNAMEDepth+1)
	for i := range long {
		long[i] = "c" + strconv.Itoa(i) + ".test"
	}
	for _, chain := range [][]string{{"bad..name"}, {"ok.test", "1.2.3.4"}, long} {
		res := resolverFunc(func(ctx context.Context, name string) ([]Answer, error) {
			return []Answer{{Addr: netip.MustParseAddr("192.0.2.1"), CNAMEs: chain}}, nil
		})
		d := &Default{Resolver: res, Policy: allow}
		if got, err := d.ResolveAddresses(context.Background(), "x.test"); err == nil {
			t.Errorf("chain %v: got %v, want an error", chain, got)
		}
	}
	// Upper case in a chain from another Resolver is canonicalised.
	res := resolverFunc(func(ctx context.Context, name string) ([]Answer, error) {
		return []Answer{{Addr: netip.MustParseAddr("192.0.2.1"), CNAMEs: []string{"B.Test."}}}, nil
	})
	d := &Default{Resolver: res, Policy: allow}
	if _, err := d.ResolveAddresses(context.Background(), "x.test"); err != nil {
		t.Fatal(err)
	}
	if n := d.NamesFor(netip.MustParseAddr("192.0.2.1")); !slices.Equal(n, []string{"x.test", "b.test"}) {
		t.Errorf("NamesFor = %v", n)
	}
}

type resolverFunc func(ctx context.Context, name string) ([]Answer, error)

func (f resolverFunc) Lookup(ctx context.Context, name string) ([]Answer, error) { return f(ctx, name) }

// systemResolverAt is a SystemResolver whose queries go to a loopback
// test server (Go's own resolver, as on a machine whose resolv.conf names
// that server).
func systemResolverAt(addr string) SystemResolver {
	return SystemResolver{r: &net.Resolver{PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}}
}

// The system resolver reports the canonical name of a chain, so that the
// name whose addresses the guest gets is decided too; a plain name has no
// chain, and a name that does not exist is ErrNotFound.
func TestSystemResolverLookup(t *testing.T) {
	srv := startTestDNS(t)
	r := systemResolverAt(srv.addr)
	ctx := context.Background()
	// One link (one.test CNAME a.test): with several, which name Go's
	// resolver reports depends on which of its A and AAAA answers wins.
	got, err := r.Lookup(ctx, "one.test.")
	if err != nil || len(got) != 2 || !slices.Equal(got[0].CNAMEs, []string{"a.test"}) || !slices.Equal(got[1].CNAMEs, []string{"a.test"}) {
		t.Fatalf("one.test: %+v, %v", got, err)
	}
	got, err = r.Lookup(ctx, "a.test.")
	if err != nil || len(got) != 3 {
		t.Fatalf("a.test: %+v, %v", got, err)
	}
	for _, a := range got {
		if a.CNAMEs != nil {
			t.Errorf("a.test has no chain: %+v", a)
		}
	}
	if _, err := r.Lookup(ctx, "nx.test."); !errors.Is(err, ErrNotFound) {
		t.Errorf("nx.test: %v, want ErrNotFound", err)
	}
}

// Through Default, a denylist of the canonical name denies a lookup of the
// alias made with the system resolver.
func TestSystemResolverChainDecided(t *testing.T) {
	srv := startTestDNS(t)
	var looked []string
	d := &Default{Resolver: systemResolverAt(srv.addr), Policy: PolicyFunc(func(_ context.Context, r *Request) (Verdict, error) {
		if r.Op == policy.OpDNSLookup {
			looked = append(looked, r.Name)
			if r.Name == "a.test" {
				return policy.Deny("no a.test"), nil
			}
		}
		return policy.Allow(""), nil
	})}
	if _, err := d.ResolveAddresses(context.Background(), "one.test"); err == nil {
		t.Fatalf("the canonical name's deny did not fail the lookup (decided %q)", looked)
	}
	if !slices.Equal(looked, []string{"one.test", "a.test"}) {
		t.Errorf("decided %q, want the alias and the canonical name", looked)
	}
}
