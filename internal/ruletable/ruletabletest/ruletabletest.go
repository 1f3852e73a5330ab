// Package ruletabletest holds a rule-list plugin's compiled table to the
// plugin's own decision, for the tests of allowlist and denylist.
package ruletabletest

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/wasmgate/wasmgate/internal/policyhook"
	"github.com/wasmgate/wasmgate/internal/ruletable"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Rules has a rule of every shape: names, dns://, IPv6 and IPv4 prefixes,
// every direction and protocol, port lists and ranges.
var Rules = []string{"tcp://api.example.test:443", "dns://*.example.test", "udp://[2001:db8::/32]:53",
	"tcp://[::/0]:22", "bind tcp://127.0.0.1:8080", "accept tcp://10.0.0.0/8", "udp://10.1.0.0/16:53,123",
	"*://192.168.0.0/24:8000-8999", "accept *://0.0.0.0/0:1-1023", "bind udp://*", "tcp://127.0.0.1", "tcp://*:25"}

// SameAsDecide fails t unless, on 20,000 random requests to IPv4 addresses
// without names (of every op), tab.Decide gives decide's action, reason and
// cache TTL, and takes every non-dns op; decide is the plugin's decision
// on a canonical request, tab its table, both built from Rules.
func SameAsDecide(t *testing.T, tab *ruletable.Table, decide func(*policy.Request) policy.Verdict) {
	t.Helper()
	addrs := [][4]byte{{127, 0, 0, 1}, {127, 0, 0, 2}, {10, 1, 2, 3}, {10, 2, 0, 1}, {192, 168, 0, 9}, {192, 168, 1, 9}, {0, 0, 0, 0}, {8, 8, 8, 8}}
	ports := []uint16{0, 22, 25, 53, 80, 123, 443, 1023, 1024, 8000, 8080, 8999, 9000, 65535}
	actions := map[policy.Action]byte{policy.ActionAllow: policyhook.Allow, policy.ActionDeny: policyhook.Deny, policy.ActionAbstain: policyhook.Abstain}
	r := rand.New(rand.NewPCG(3, 4))
	decided := map[byte]int{}
	for range 20000 {
		op, addr, port := r.IntN(len(policy.Ops)), addrs[r.IntN(len(addrs))], ports[r.IntN(len(ports))]
		req := policy.Request{Op: policy.Ops[op], Addr: netip.AddrFrom4(addr), Port: port, Guest: "app"}
		dir, proto, _ := policy.OpDirection(req.Op)
		req.Proto = proto
		action, ttl, reason, ok := tab.Decide(op, addr, port)
		if ok == (dir == policy.DirDNS) {
			t.Fatalf("%s: ok = %v", req.Op, ok)
		}
		if !ok {
			continue
		}
		decided[action]++
		canon := policy.Canonical(req)
		want := decide(&canon)
		if action != actions[want.Verdict] || reason != want.Reason || ttl != want.CacheTTLMs {
			t.Fatalf("%s %s:%d: table %d %q ttl %d, decide %+v", req.Op, req.Addr, port, action, reason, ttl, want)
		}
	}
	if decided[policyhook.Abstain] == 0 || decided[policyhook.Allow]+decided[policyhook.Deny] < 1000 {
		t.Errorf("verdicts %v: the requests do not exercise the rules", decided)
	}
}
