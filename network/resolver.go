package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ErrNotFound is matched (errors.Is) by resolver errors that mean the name
// does not exist or has no addresses (NXDOMAIN, or no A/AAAA records).
var ErrNotFound = errors.New("name not found")

// Answer is one resolved address with its time to live. TTL 0 means the
// resolver does not know it (Default then uses its NameTTL).
type Answer struct {
	Addr netip.Addr
	TTL  time.Duration
	// CNAMEs are the names of the CNAME chain through which the queried
	// name led to Addr, in order, canonical (CanonicalName), without the
	// queried name itself: for "alias.test CNAME a.test", "a.test CNAME
	// b.test", "b.test A Addr" they are ["a.test", "b.test"]. Default
	// decides every one of them (dns.lookup) and binds Addr to all of
	// them. A Resolver that cannot see the chain leaves them empty.
	CNAMEs []string
}

// Resolver looks names up. name is canonical (CanonicalName). A Resolver
// must be safe for concurrent use and should honour ctx's deadline.
type Resolver interface {
	Lookup(ctx context.Context, name string) ([]Answer, error)
}

// SystemResolver resolves with the operating system's configuration
// (Go's net.DefaultResolver: /etc/hosts, /etc/resolv.conf or the system's
// library). It cannot see the CNAME chain of an answer; it asks for the
// name's canonical name as well (a second query) and reports it as the
// chain's one other name when it differs from the name asked, so that a
// policy decides the name whose addresses the guest gets. Intermediate
// links stay unseen: DNSResolver sees them all.
type SystemResolver struct {
	r *net.Resolver // nil: net.DefaultResolver (tests point it at loopback)
}

// Lookup resolves name to its IPv4 and IPv6 addresses.
func (s SystemResolver) Lookup(ctx context.Context, name string) ([]Answer, error) {
	r := s.r
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: fmt.Errorf("%w: %w", ErrNotFound, err)}
		}
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: err}
	}
	if len(addrs) == 0 {
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: ErrNotFound}
	}
	// The canonical name: a failure to get it fails the lookup (fail
	// closed: the addresses may belong to a name no policy has seen).
	var chain []string
	if _, err := netip.ParseAddr(name); err == nil {
		return literalAnswers(addrs), nil // an IP literal has no canonical name
	}
	cname, err := r.LookupCNAME(ctx, name)
	if err != nil {
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: fmt.Errorf("canonical name: %w", err)}
	}
	if c := strings.ToLower(strings.TrimSuffix(cname, ".")); c != "" && c != strings.ToLower(strings.TrimSuffix(name, ".")) {
		chain = []string{c}
	}
	out := make([]Answer, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, Answer{Addr: a.Unmap(), CNAMEs: chain})
	}
	return out, nil
}

func literalAnswers(addrs []netip.Addr) []Answer {
	out := make([]Answer, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, Answer{Addr: a.Unmap()})
	}
	return out
}

// DNSResolver resolves against configured DNS servers, with static host
// entries checked first. The zero value knows no hosts and no servers: every
// lookup fails with ErrNotFound.
//
// It asks for A and AAAA in parallel, follows CNAME chains (re-querying the
// target when the server did not include it, at most MaxCNAMEDepth links),
// retries over TCP when a UDP answer is truncated, and tries the servers in
// order until one answers (NXDOMAIN is an answer). Each Answer's TTL is the
// smallest TTL along its chain; a DNS TTL of 0 becomes one second, since an
// Answer TTL of 0 means "unknown".
type DNSResolver struct {
	// Servers are "ip:port" addresses, e.g. "127.0.0.1:53" or "[::1]:53".
	Servers []string
	// Hosts are static answers. Keys are names (canonicalised when
	// looked up: "DB.Internal." matches "db.internal"); a name found here
	// is never sent to a server. Their answers carry no TTL.
	Hosts map[string][]netip.Addr
	// Timeout bounds a whole Lookup (both families, the CNAME chain, all
	// servers: each server gets an equal share). Zero means 2 s.
	Timeout time.Duration
}

// MaxCNAMEDepth bounds how many CNAME links DNSResolver follows; a longer
// chain fails the lookup of that address family. Default also refuses a
// lookup whose answers carry more than 2*MaxCNAMEDepth distinct chain
// names (both families together).
const MaxCNAMEDepth = 8

// Lookup resolves name: from Hosts if present there, else from Servers.
func (r DNSResolver) Lookup(ctx context.Context, name string) ([]Answer, error) {
	fail := func(err error) ([]Answer, error) {
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: err}
	}
	cn, err := CanonicalName(name)
	if err != nil {
		return fail(err)
	}
	if addrs, ok := r.hosts(cn); ok {
		out := make([]Answer, 0, len(addrs))
		for _, a := range addrs {
			if a, err := CanonicalAddr(a); err == nil {
				out = append(out, Answer{Addr: a})
			}
		}
		if len(out) == 0 {
			return fail(ErrNotFound)
		}
		return out, nil
	}
	if len(r.Servers) == 0 {
		return fail(fmt.Errorf("%w: not in hosts and no DNS servers configured", ErrNotFound))
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Each server gets an equal share of the time, so that a server that
	// never answers leaves time for the next.
	share := timeout / time.Duration(len(r.Servers))
	var lastErr error
	for _, server := range r.Servers {
		sctx, cancel := context.WithTimeout(ctx, share)
		out, err := r.lookupServer(sctx, server, cn)
		cancel()
		if err == nil || errors.Is(err, ErrNotFound) {
			if err != nil {
				return fail(err)
			}
			return out, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return fail(lastErr)
}

// hosts finds name in r.Hosts, whose keys may not be canonical.
func (r DNSResolver) hosts(name string) ([]netip.Addr, bool) {
	if addrs, ok := r.Hosts[name]; ok {
		return addrs, true
	}
	for k, addrs := range r.Hosts {
		if ck, err := CanonicalName(k); err == nil && ck == name {
			return addrs, true
		}
	}
	return nil, false
}

// lookupServer asks one server for A and AAAA in parallel.
func (r DNSResolver) lookupServer(ctx context.Context, server, name string) ([]Answer, error) {
	type result struct {
		answers []Answer
		err     error
	}
	var wg sync.WaitGroup
	var res [2]result
	for i, qtype := range [2]uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].answers, res[i].err = r.resolveType(ctx, server, name, qtype)
		}()
	}
	wg.Wait()
	out := append(res[0].answers, res[1].answers...)
	if len(out) > 0 {
		return out, nil // one family failing does not hide the other
	}
	for _, x := range res {
		if x.err != nil && !errors.Is(x.err, ErrNotFound) {
			return nil, x.err
		}
	}
	return nil, ErrNotFound
}

// resolveType resolves one record type, following CNAMEs.
func (r DNSResolver) resolveType(ctx context.Context, server, name string, qtype uint16) ([]Answer, error) {
	target := dns.Fqdn(name)
	minTTL := ^uint32(0)
	var chain []string
	msg, err := exchange(ctx, server, target, qtype)
	for links := 0; ; links++ {
		if err != nil {
			return nil, err
		}
		switch msg.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, ErrNotFound
		default:
			return nil, errors.New("dns: server " + server + " answered " + dns.RcodeToString[msg.Rcode])
		}
		out, next, nextTTL := scanAnswer(msg, target, qtype, minTTL)
		if len(out) > 0 {
			for i := range out {
				out[i].CNAMEs = chain
			}
			return out, nil
		}
		if next == "" {
			return nil, ErrNotFound // NODATA
		}
		if links >= MaxCNAMEDepth {
			return nil, errors.New("dns: CNAME chain of " + name + " longer than 8 links")
		}
		// Every name of the chain is decided and bound by Default, so one
		// that is not a valid name fails the lookup (fail closed) rather
		// than being skipped.
		cn, cerr := CanonicalName(next)
		if cerr != nil {
			return nil, fmt.Errorf("dns: CNAME of %s: %w", name, cerr)
		}
		chain = append(chain, cn)
		target = next
		minTTL = min(minTTL, nextTTL)
		if !hasOwner(msg, target) {
			msg, err = exchange(ctx, server, target, qtype) // the server left the target out
		}
	}
}

// scanAnswer picks from msg's answer section the records owned by target:
// the addresses of type qtype (each with TTL min(minTTL, its own)), or else
// the first CNAME's target and TTL. Records for other names are ignored,
// whatever the server says about them.
func scanAnswer(msg *dns.Msg, target string, qtype uint16, minTTL uint32) (out []Answer, next string, nextTTL uint32) {
	for _, rr := range msg.Answer {
		h := rr.Header()
		if !strings.EqualFold(h.Name, target) {
			continue
		}
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A.To4()); ok && qtype == dns.TypeA {
				out = append(out, Answer{Addr: a, TTL: ttl(min(minTTL, h.Ttl))})
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok && qtype == dns.TypeAAAA {
				out = append(out, Answer{Addr: a.Unmap(), TTL: ttl(min(minTTL, h.Ttl))})
			}
		case *dns.CNAME:
			if next == "" {
				next, nextTTL = rr.Target, h.Ttl
			}
		}
	}
	return out, next, nextTTL
}

func hasOwner(msg *dns.Msg, name string) bool {
	for _, rr := range msg.Answer {
		if strings.EqualFold(rr.Header().Name, name) {
			return true
		}
	}
	return false
}

func ttl(s uint32) time.Duration {
	if s == 0 {
		return time.Second
	}
	return time.Duration(s) * time.Second
}

// exchange sends one query over UDP, and over TCP when the UDP answer is
// truncated.
func exchange(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	c := &dns.Client{Net: "udp", UDPSize: dns.DefaultMsgSize}
	m.SetEdns0(dns.DefaultMsgSize, false)
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		c = &dns.Client{Net: "tcp"}
		resp, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, name) || resp.Question[0].Qtype != qtype {
		return nil, errors.New("dns: answer from " + server + " does not match the question")
	}
	return resp, nil
}
