package network

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/wasmgate/wasmgate/internal/testenv"
)

// withLoopbackDefaultResolver points net.DefaultResolver, which
// SystemResolver uses, at a DNS server on 127.0.0.1 for the test: no query
// can leave the machine. It answers app.test with 127.0.0.9 and the
// IPv4-mapped ::ffff:127.0.0.10, localhost with 127.0.0.1, broken.test
// with SERVFAIL and everything else with NXDOMAIN.
func withLoopbackDefaultResolver(t *testing.T) {
	t.Helper()
	addr := testenv.ServeDNS(t, func(q dns.Question, m *dns.Msg) {
		name, qt := q.Name, q.Qtype
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
		}
		switch {
		case name == "app.test." && qt == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.ParseIP("127.0.0.9").To4()})
		case name == "app.test." && qt == dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.ParseIP("::ffff:127.0.0.10")})
		case name == "localhost." && qt == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.ParseIP("127.0.0.1").To4()})
		case name == "app.test." || name == "localhost.":
		case name == "broken.test.":
			m.Rcode = dns.RcodeServerFailure
		default:
			m.Rcode = dns.RcodeNameError
		}
	})
	old := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
	t.Cleanup(func() { net.DefaultResolver = old })
}

// TestSystemResolverLookup: SystemResolver returns every address of a
// name, IPv4-mapped IPv6 addresses as IPv4 (so policies see one form),
// IP literals as themselves, ErrNotFound for a name that does not exist
// and another error (never "not found") when the server fails, each an
// *OpError naming the lookup.
func TestSystemResolverAnswers(t *testing.T) {
	withLoopbackDefaultResolver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, want := range map[string][]string{
		"app.test":         {"127.0.0.10", "127.0.0.9"},
		"127.0.0.1":        {"127.0.0.1"},
		"::ffff:127.0.0.1": {"127.0.0.1"},
		"::1":              {"::1"},
	} {
		ans, err := SystemResolver{}.Lookup(ctx, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var got []string
		for _, a := range ans {
			got = append(got, a.Addr.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	// localhost: from the hosts file or the server, loopback either way.
	ans, err := SystemResolver{}.Lookup(ctx, "localhost")
	if err != nil || len(ans) == 0 {
		t.Fatalf("localhost: %v %v", ans, err)
	}
	for _, a := range ans {
		if !a.Addr.IsLoopback() || a.Addr != a.Addr.Unmap() {
			t.Errorf("localhost resolved to %v", a.Addr)
		}
	}
	for name, notFound := range map[string]bool{"missing.test": true, "broken.test": false} {
		_, err := SystemResolver{}.Lookup(ctx, name)
		var oe *OpError
		if !errors.As(err, &oe) || oe.Op != "resolve" || oe.Net != "dns" || oe.Addr != name {
			t.Errorf("%s: got %#v, want an *OpError for the lookup", name, err)
			continue
		}
		if errors.Is(err, ErrNotFound) != notFound {
			t.Errorf("%s: errors.Is(err, ErrNotFound) = %v, want %v (%v)", name, !notFound, notFound, err)
		}
	}
}
