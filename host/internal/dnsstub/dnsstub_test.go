package dnsstub

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/wasmgate/wasmgate/network"
)

// fakeNet resolves from a map; "denied.test" is denied by policy.
type fakeNet struct {
	names map[string][]netip.Addr
	calls []string
}

func (f *fakeNet) ResolveAddresses(ctx context.Context, name string) ([]netip.Addr, error) {
	f.calls = append(f.calls, name)
	if name == "denied.test" {
		return nil, &network.OpError{Op: "resolve", Net: "dns", Addr: name,
			Err: &network.DeniedError{Op: "dns.lookup", Name: name, Reason: "test"}}
	}
	if name == "gone.test" {
		return nil, &network.OpError{Op: "resolve", Net: "dns", Addr: name, Err: network.ErrNotFound}
	}
	if name == "broken.test" {
		return nil, errors.New("upstream exploded")
	}
	a, ok := f.names[strings.ToLower(name)]
	if !ok {
		return nil, &network.OpError{Op: "resolve", Net: "dns", Addr: name,
			Err: &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}}
	}
	return a, nil
}

func (f *fakeNet) Socket(context.Context, network.Proto, network.Family) (network.Socket, error) {
	return nil, errors.New("no sockets here")
}

func newServer() (*Server, *fakeNet) {
	many := make([]netip.Addr, 100)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})
	}
	fn := &fakeNet{names: map[string][]netip.Addr{
		"both.test":   {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:192.0.2.2")},
		"v6only.test": {netip.MustParseAddr("2001:db8::2")},
		"many.test":   many,
	}}
	return &Server{Network: fn}, fn
}

func ask(t *testing.T, s *Server, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		q.SetEdns0(1232, false)
	}
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := s.Answer(context.Background(), b)
	if out == nil {
		t.Fatalf("%s: no answer", name)
	}
	r := new(dns.Msg)
	if err := r.Unpack(out); err != nil {
		t.Fatalf("%s: bad answer: %v", name, err)
	}
	if r.Id != q.Id || !r.Response || len(r.Question) != 1 || r.Question[0] != q.Question[0] {
		t.Fatalf("%s: reply does not match query: %v", name, r)
	}
	return r
}

func TestAnswerA(t *testing.T) {
	s, fn := newServer()
	r := ask(t, s, "Both.Test", dns.TypeA, false)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Fatalf("rcode %d answers %v", r.Rcode, r.Answer)
	}
	got := []string{r.Answer[0].(*dns.A).A.String(), r.Answer[1].(*dns.A).A.String()}
	if got[0] != "192.0.2.1" || got[1] != "192.0.2.2" {
		t.Fatalf("answers %v", got)
	}
	if r.Answer[0].Header().Ttl != 5 || !r.RecursionAvailable {
		t.Fatalf("ttl %d ra %v", r.Answer[0].Header().Ttl, r.RecursionAvailable)
	}
	if fn.calls[0] != "Both.Test" {
		t.Fatalf("resolved %q: the network canonicalises, the stub passes the name as asked (minus the dot)", fn.calls[0])
	}
}

func TestAnswerAAAA(t *testing.T) {
	s, _ := newServer()
	r := ask(t, s, "both.test", dns.TypeAAAA, true)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "2001:db8::1" {
		t.Fatalf("%v", r)
	}
	if r.IsEdns0() == nil {
		t.Fatal("EDNS0 query answered without OPT")
	}
	// A for a v6-only name: NOERROR, no records (NODATA), not NXDOMAIN.
	r = ask(t, s, "v6only.test", dns.TypeA, false)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("nodata: %v", r)
	}
}

func TestAnswerErrors(t *testing.T) {
	s, fn := newServer()
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"nope.test", dns.TypeA, dns.RcodeNameError},
		{"gone.test", dns.TypeAAAA, dns.RcodeNameError},
		{"denied.test", dns.TypeA, dns.RcodeRefused},
		{"broken.test", dns.TypeAAAA, dns.RcodeServerFailure},
		{"both.test", dns.TypeMX, dns.RcodeNotImplemented},
		{"both.test", dns.TypeTXT, dns.RcodeNotImplemented},
		{"192.0.2.1", dns.TypeA, dns.RcodeNameError},
	} {
		fn.calls = nil
		r := ask(t, s, tc.name, tc.qtype, false)
		if r.Rcode != tc.rcode || len(r.Answer) != 0 {
			t.Errorf("%s/%d: rcode %s, want %s", tc.name, tc.qtype, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
		}
		if tc.rcode == dns.RcodeNotImplemented && len(fn.calls) != 0 {
			t.Errorf("%s/%d: resolved although the type is not supported", tc.name, tc.qtype)
		}
	}
}

func TestTruncation(t *testing.T) {
	s, _ := newServer()
	r := ask(t, s, "many.test", dns.TypeA, false)
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Fatalf("512-byte limit: tc=%v answers=%d", r.Truncated, len(r.Answer))
	}
	r = ask(t, s, "many.test", dns.TypeA, true) // 1232 bytes fits 100 A records? 100*16+header ≈ 1.7k: no
	if len(r.Answer) == 0 || !r.Truncated {
		t.Fatalf("edns: tc=%v answers=%d", r.Truncated, len(r.Answer))
	}
}

func TestGarbage(t *testing.T) {
	s, _ := newServer()
	if s.Answer(context.Background(), nil) != nil || s.Answer(context.Background(), []byte{1, 2, 3}) != nil {
		t.Fatal("answered a message without a header")
	}
	// A header followed by a truncated question: FORMERR with the same ID.
	bad := []byte{0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 3, 'f', 'o'}
	out := s.Answer(context.Background(), bad)
	r := new(dns.Msg)
	if out == nil || r.Unpack(out) != nil || r.Id != 0xabcd || r.Rcode != dns.RcodeFormatError {
		t.Fatalf("formerr: %v", r)
	}
	// A response is never answered (no reflection loops).
	m := new(dns.Msg)
	m.SetQuestion("both.test.", dns.TypeA)
	m.Response = true
	b, _ := m.Pack()
	if s.Answer(context.Background(), b) != nil {
		t.Fatal("answered a response")
	}
	// Two questions: FORMERR.
	m = new(dns.Msg)
	m.SetQuestion("both.test.", dns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	b, _ = m.Pack()
	r = new(dns.Msg)
	if err := r.Unpack(s.Answer(context.Background(), b)); err != nil || r.Rcode != dns.RcodeFormatError {
		t.Fatalf("two questions: %v %v", r, err)
	}
	// Other opcode: NOTIMP.
	m = new(dns.Msg)
	m.SetQuestion("both.test.", dns.TypeA)
	m.Opcode = dns.OpcodeUpdate
	b, _ = m.Pack()
	r = new(dns.Msg)
	if err := r.Unpack(s.Answer(context.Background(), b)); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("update: %v %v", r, err)
	}
}

func TestFiles(t *testing.T) {
	fsys := Files()
	rc, err := fs.ReadFile(fsys, "resolv.conf")
	if err != nil || !strings.Contains(string(rc), "nameserver 192.0.0.53\n") || !strings.Contains(string(rc), "ndots:1") {
		t.Fatalf("resolv.conf: %q %v", rc, err)
	}
	h, err := fs.ReadFile(fsys, "hosts")
	if err != nil || !strings.Contains(string(h), "127.0.0.1\tlocalhost") || !strings.Contains(string(h), "::1\tlocalhost") {
		t.Fatalf("hosts %q %v", h, err)
	}
	ns, err := fs.ReadFile(fsys, "nsswitch.conf")
	if err != nil || string(ns) != "hosts: files dns\n" {
		t.Fatalf("nsswitch %q", ns)
	}
	if !Addr.Addr().Is4() || Addr.Port() != 53 {
		t.Fatal(Addr)
	}
}

// fuzzSeeds are hostile queries: compression loops, counts that promise
// more than the packet holds, EDNS OPT records of every size, and
// truncated packets.
func fuzzSeeds() [][]byte {
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		return b
	}
	var seeds [][]byte
	q := new(dns.Msg)
	q.SetQuestion("both.test.", dns.TypeA)
	a := pack(q)
	seeds = append(seeds, a)
	q.SetQuestion("many.test.", dns.TypeA)
	seeds = append(seeds, pack(q))
	for _, size := range []uint16{0, 511, 512, 1232, 4096, 65535} {
		q := new(dns.Msg)
		q.SetQuestion("many.test.", dns.TypeAAAA)
		q.SetEdns0(size, true)
		seeds = append(seeds, pack(q))
	}
	// Two OPT records.
	q = new(dns.Msg)
	q.SetQuestion("both.test.", dns.TypeA)
	q.SetEdns0(4096, false)
	q.Extra = append(q.Extra, q.Extra[0])
	seeds = append(seeds, pack(q))
	// Every truncation of a query with EDNS.
	q = new(dns.Msg)
	q.SetQuestion("both.test.", dns.TypeAAAA)
	q.SetEdns0(1232, false)
	e := pack(q)
	for i := 0; i < len(e); i += 3 {
		seeds = append(seeds, e[:i])
	}
	hdr := []byte{0x12, 0x34, 0x01, 0x00}
	// A name whose compression pointer points at itself, and a loop of two.
	seeds = append(seeds, append(append([]byte{}, hdr...), 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1))
	seeds = append(seeds, append(append([]byte{}, hdr...), 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0xc0, 16, 0xc0, 12, 0, 1, 0, 1))
	// Counts far beyond the packet.
	seeds = append(seeds, append(append([]byte{}, hdr...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 1))
	seeds = append(seeds, append(append([]byte{}, a[:4]...), 0, 1, 0, 0, 0, 0, 0xff, 0xff))
	seeds = append(seeds, append(append([]byte{}, a...), 0, 0, 41, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff)) // OPT past the end
	return seeds
}

// FuzzAnswer: whatever arrives, Answer does not panic, resolves at most
// one name, and either answers nothing (a packet without a header, or a
// response) or answers with a well-formed message: a response with the
// query's ID, no larger than the size the query allowed (512 bytes, or its
// EDNS0 size), for the question that was asked (same name, type and
// class), whose records are all of that name and type.
func FuzzAnswer(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, fn := newServer()
		out := s.Answer(context.Background(), msg)
		if len(fn.calls) > 1 {
			t.Fatalf("one query resolved %d names: %v", len(fn.calls), fn.calls)
		}
		var q dns.Msg
		parsed := q.Unpack(msg) == nil
		if len(msg) < 12 || msg[2]&0x80 != 0 {
			if out != nil {
				t.Fatalf("answered a packet without a header, or a response: % x", msg)
			}
			return
		}
		if out == nil {
			t.Fatalf("no answer to a query with a header: % x", msg)
		}
		var r dns.Msg
		if err := r.Unpack(out); err != nil {
			t.Fatalf("unparseable answer: %v", err)
		}
		if !r.Response || r.Id != uint16(msg[0])<<8|uint16(msg[1]) {
			t.Fatalf("answer is not a response to this query: %v", &r)
		}
		limit := maxUDPSize
		if parsed {
			if opt := q.IsEdns0(); opt != nil && int(opt.UDPSize()) > limit {
				limit = int(opt.UDPSize())
			}
		}
		if len(out) > limit {
			t.Fatalf("answer of %d bytes, the query allowed %d", len(out), limit)
		}
		if !parsed {
			if r.Rcode != dns.RcodeFormatError || len(r.Question)+len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 || len(fn.calls) != 0 {
				t.Fatalf("unparseable query: want a bare FORMERR, got %v (resolved %v)", &r, fn.calls)
			}
			return
		}
		if len(fn.calls) == 1 {
			if len(q.Question) != 1 || q.Opcode != dns.OpcodeQuery || q.Question[0].Qclass != dns.ClassINET ||
				q.Question[0].Qtype != dns.TypeA && q.Question[0].Qtype != dns.TypeAAAA {
				t.Fatalf("resolved %v for %v", fn.calls, &q)
			}
			if !strings.EqualFold(fn.calls[0]+".", q.Question[0].Name) {
				t.Fatalf("resolved %q for question %q", fn.calls[0], q.Question[0].Name)
			}
		}
		switch {
		case len(q.Question) == 1:
			if len(r.Question) != 1 || q.Question[0] != r.Question[0] {
				t.Fatalf("answer for another question: asked %v, answered %v", q.Question, r.Question)
			}
		case len(r.Answer) != 0 || r.Rcode != dns.RcodeFormatError && r.Rcode != dns.RcodeNotImplemented:
			t.Fatalf("%d questions answered with rcode %d and %d records", len(q.Question), r.Rcode, len(r.Answer))
		case len(q.Question) == 0 && len(r.Question) != 0,
			len(r.Question) > 1, len(r.Question) == 1 && r.Question[0] != q.Question[0]:
			t.Fatalf("asked %v, answered %v", q.Question, r.Question)
		}
		if len(r.Ns) != 0 {
			t.Fatalf("authority records: %v", r.Ns)
		}
		for _, rr := range r.Answer {
			h := rr.Header()
			if h.Name != q.Question[0].Name || h.Rrtype != q.Question[0].Qtype || h.Class != dns.ClassINET {
				t.Fatalf("record %v for question %v", rr, q.Question[0])
			}
			if r.Rcode != dns.RcodeSuccess {
				t.Fatalf("records with rcode %d", r.Rcode)
			}
		}
	})
}
