// Package dnsstub is the in-process DNS server that guests using a
// system-style resolver (Go's pure resolver, musl, wasi-libc patches) talk
// to. The host gives such guests a virtual /etc (Files) whose resolv.conf
// names the stub's virtual address (Addr); the host's socket layer
// intercepts UDP connect/send to that address and hands each query to
// Server.Answer instead of sending it anywhere. Every question is answered
// from a network.Network, so the guest's lookups go through exactly the
// same policy (dns.lookup, dns.answer) and name-binding table as
// sock_getaddrinfo.
//
// The virtual address is 192.0.0.53. 192.0.0.0/24 is the IANA "IETF
// Protocol Assignments" block (RFC 6890): it is not globally routable and
// .53 is unassigned, so no real service a guest might want can live there.
// The obvious alternatives collide with something real: 127.0.0.53 is
// systemd-resolved on many hosts (a guest allowed to reach host loopback
// could mean it), and 100.100.100.100 in the CGNAT range is Tailscale's
// resolver. Traffic to the stub never leaves the process, so decisions
// about it are not network decisions: the questions inside it are.
package dnsstub

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"

	"github.com/wasmgate/wasmgate/network"
)

// Addr is the stub's virtual nameserver address.
var Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 0, 53}), 53)

// DefaultTTL is the TTL of answers: short, because the guest must come back
// to the host (and its policy) soon, and the host keeps its own binding of
// names to addresses independently of what the guest caches.
const DefaultTTL = 5 * time.Second

// maxUDPSize is the answer size limit without EDNS0 (RFC 1035).
const maxUDPSize = 512

// Server answers DNS queries from a Network.
type Server struct {
	// Network resolves names; its policy decides each lookup and answer.
	Network network.Network
	// TTL of answer records; 0 means DefaultTTL.
	TTL time.Duration
}

// Answer returns the response to one DNS query message, or nil when the
// message is too broken to answer at all (the guest then times out, as
// with a real server that drops garbage).
//
//   - A and AAAA questions for class IN are resolved through Network and
//     answered with the addresses of the asked family (NOERROR with no
//     records when the name only has the other family);
//   - a name that does not resolve (network.ErrNotFound) is NXDOMAIN;
//   - a lookup denied by policy (errors.Is(err, network.ErrDenied)) is
//     REFUSED, which resolvers report without retrying elsewhere;
//   - other failures are SERVFAIL;
//   - other opcodes, classes and record types are NOTIMP: the stub only
//     knows addresses, and an empty NOERROR would claim the name has no
//     such records.
func (s *Server) Answer(ctx context.Context, query []byte) []byte {
	var q dns.Msg
	if err := q.Unpack(query); err != nil {
		return formErr(query)
	}
	r := new(dns.Msg)
	r.SetReply(&q)
	r.RecursionAvailable = true
	r.Authoritative = false
	if q.Response {
		return nil // never answer an answer
	}
	size := maxUDPSize
	if opt := q.IsEdns0(); opt != nil {
		if sz := int(opt.UDPSize()); sz > size {
			size = sz
		}
		r.SetEdns0(uint16(size), false)
	}
	switch {
	case q.Opcode != dns.OpcodeQuery:
		r.Rcode = dns.RcodeNotImplemented
	case len(q.Question) != 1:
		r.Rcode = dns.RcodeFormatError
	default:
		s.answer(ctx, q.Question[0], r)
	}
	r.Truncate(size)
	out, err := r.Pack()
	if err != nil {
		return nil
	}
	return out
}

func (s *Server) answer(ctx context.Context, qs dns.Question, r *dns.Msg) {
	if qs.Qclass != dns.ClassINET || (qs.Qtype != dns.TypeA && qs.Qtype != dns.TypeAAAA) {
		r.Rcode = dns.RcodeNotImplemented
		return
	}
	name := strings.TrimSuffix(qs.Name, ".")
	if name == "" {
		r.Rcode = dns.RcodeNameError
		return
	}
	if _, err := netip.ParseAddr(name); err == nil {
		// "1.2.3.4." is not a host name; answering it would let the stub be
		// used to mint bindings for literals.
		r.Rcode = dns.RcodeNameError
		return
	}
	addrs, err := s.Network.ResolveAddresses(ctx, name)
	if err != nil {
		r.Rcode = rcodeFor(err)
		return
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	hdr := dns.RR_Header{Name: qs.Name, Class: dns.ClassINET, Ttl: uint32(ttl / time.Second)}
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case qs.Qtype == dns.TypeA && a.Is4():
			h := hdr
			h.Rrtype = dns.TypeA
			r.Answer = append(r.Answer, &dns.A{Hdr: h, A: net.IP(a.AsSlice())})
		case qs.Qtype == dns.TypeAAAA && a.Is6():
			h := hdr
			h.Rrtype = dns.TypeAAAA
			r.Answer = append(r.Answer, &dns.AAAA{Hdr: h, AAAA: net.IP(a.AsSlice())})
		}
	}
}

// rcodeFor maps a resolution error to a DNS response code.
func rcodeFor(err error) int {
	if errors.Is(err, network.ErrDenied) {
		return dns.RcodeRefused
	}
	if errors.Is(err, network.ErrNotFound) {
		return dns.RcodeNameError
	}
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return dns.RcodeNameError
	}
	var nf interface{ NotFound() bool }
	if errors.As(err, &nf) && nf.NotFound() {
		return dns.RcodeNameError
	}
	return dns.RcodeServerFailure
}

// formErr answers a message that does not parse but has a readable header
// with FORMERR, echoing its ID; anything shorter gets no answer.
func formErr(query []byte) []byte {
	if len(query) < 12 || query[2]&0x80 != 0 { // too short, or a response
		return nil
	}
	r := new(dns.Msg)
	r.Id = uint16(query[0])<<8 | uint16(query[1])
	r.Response = true
	r.Opcode = int(query[2]>>3) & 0xf
	r.Rcode = dns.RcodeFormatError
	out, err := r.Pack()
	if err != nil {
		return nil
	}
	return out
}

// ResolvConf is the virtual /etc/resolv.conf: the stub as the only
// nameserver; ndots:1 so that dotted names are tried as given first; a
// short timeout because the stub answers in-process (a timeout means the
// upstream lookup itself is slow, and retrying sooner does not help much).
var ResolvConf = "# wasmgate: DNS goes to the host, which applies the policy\n" +
	"nameserver " + Addr.Addr().String() + "\n" +
	"options ndots:1 timeout:5 attempts:2\n"

// Hosts is the virtual /etc/hosts: only localhost, which needs no lookup.
const Hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost\n"

// NSSwitch is the virtual /etc/nsswitch.conf.
const NSSwitch = "hosts: files dns\n"

// Files returns the virtual /etc directory (resolv.conf, hosts,
// nsswitch.conf) as a read-only fs.FS, to be preopened at /etc when the
// guest has no /etc of its own.
func Files() fs.FS {
	mod := time.Unix(0, 0)
	return fstest.MapFS{
		"resolv.conf":   {Data: []byte(ResolvConf), Mode: 0o444, ModTime: mod},
		"hosts":         {Data: []byte(Hosts), Mode: 0o444, ModTime: mod},
		"nsswitch.conf": {Data: []byte(NSSwitch), Mode: 0o444, ModTime: mod},
	}
}
