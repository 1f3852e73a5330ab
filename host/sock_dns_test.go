package host

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// startDNS runs a DNS server on 127.0.0.1 that answers A for app.test and
// blocked.test with 127.0.0.1, and NXDOMAIN for the rest. It returns its
// address and a counter of queries for blocked.test.
func startDNS(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var blocked atomic.Int32
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		name := strings.ToLower(q.Question[0].Name)
		if name == "blocked.test." {
			blocked.Add(1)
		}
		switch {
		case name != "app.test." && name != "blocked.test.":
			r.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			r.Answer = append(r.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(127, 0, 0, 1),
			})
		}
		w.WriteMsg(r)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), &blocked
}

// namePolicy allows lookups of app.test only, and TCP connects only to
// addresses that app.test resolved to (name binding): a hostname rule
// enforced on a raw connect.
func namePolicy(ctx context.Context, req *network.Request) (network.Verdict, error) {
	deny := network.Verdict{Verdict: policy.ActionDeny, Reason: "not app.test"}
	allow := network.Verdict{Verdict: policy.ActionAllow}
	switch req.Op {
	case policy.OpDNSLookup, policy.OpDNSAnswer:
		if req.Name == "app.test" || strings.HasSuffix(req.Name, ".app.test") {
			return allow, nil
		}
		return deny, nil
	case policy.OpTCPConnect:
		if slices.Contains(req.Names, "app.test") {
			return allow, nil
		}
		return deny, nil
	}
	return allowLoopback(ctx, req)
}

// TestSockDNS resolves through both paths a Go guest has: sock_getaddrinfo
// (sdk/socket's Resolver) and Go's pure resolver talking to the host's DNS
// stub (named by the virtual /etc/resolv.conf). Both go through the same
// policy: app.test is allowed, blocked.test is denied before any query
// leaves the host.
func TestSockDNS(t *testing.T) {
	dnsAddr, blockedQueries := startDNS(t)
	nw := &network.Default{
		Policy:   network.PolicyFunc(namePolicy),
		Resolver: network.DNSResolver{Servers: []string{dnsAddr}},
	}
	out, code := runGuest(t, probeWasm(t), NewConfig().WithNetwork(nw),
		"lookup", "app.test", "--", "lookup", "blocked.test", "--", "lookup", "nx.app.test", "--",
		"golookup", "app.test", "--", "golookup", "blocked.test", "--", "golookup", "localhost", "--",
		"golookup", "nx.app.test")
	for _, want := range []string{
		"[0] addrs 127.0.0.1\n",
		"[1] error: lookup blocked.test: permission denied\n",
		"[2] error: lookup nx.app.test: no such host\n",
		"[3] addrs 127.0.0.1\n",
		"[4] error: lookup blocked.test",                               // REFUSED by the stub
		"[5] addrs 127.0.0.1 ::1\n",                                    // virtual /etc/hosts
		"[6] error: lookup nx.app.test on 192.0.0.53:53: no such host", // NXDOMAIN via the stub
	} {
		if !strings.Contains(strings.ToLower(out+"\n"), strings.ToLower(want)) {
			t.Errorf("missing %q", want)
		}
	}
	if code != 1 || t.Failed() {
		t.Fatalf("code %d output:\n%s", code, out)
	}
	if n := blockedQueries.Load(); n != 0 {
		t.Fatalf("a denied lookup reached the DNS server %d times", n)
	}
}
