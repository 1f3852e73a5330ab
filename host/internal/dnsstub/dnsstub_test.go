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

func FuzzAnswer(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("both.test.", dns.TypeA)
	b, _ := q.Pack()
	f.Add(b)
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	s, _ := newServer()
	f.Fuzz(func(t *testing.T, msg []byte) {
		out := s.Answer(context.Background(), msg)
		if out == nil {
			return
		}
		var r dns.Msg
		if err := r.Unpack(out); err != nil {
			t.Fatalf("unparseable answer: %v", err)
		}
		if !r.Response {
			t.Fatal("answer without QR")
		}
	})
}
