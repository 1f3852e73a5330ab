package ruletable

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/wasmgate/wasmgate/internal/policyhook"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// compile is Compile with each rule's index as its reason.
func compile(rs policy.RuleSet) *Table {
	var reasons []string
	for k := range rs {
		reasons = append(reasons, strconv.Itoa(k))
	}
	return Compile(rs, policyhook.Allow, 60000, reasons)
}

// index is the index of the rule t.Decide matched, -1 for none.
func index(t *Table, op int, addr [4]byte, port uint16) (k int, ok bool) {
	action, ttl, reason, ok := t.Decide(op, addr, port)
	switch {
	case !ok:
		return -1, false
	case ttl != 60000:
		panic("ttl")
	case action == policyhook.Abstain && reason == "":
		return -1, true
	case action != policyhook.Allow:
		panic("action")
	}
	k, err := strconv.Atoi(reason)
	if err != nil {
		panic(err)
	}
	return k, true
}

// same fails unless t.Decide agrees with rs.Index on the request.
func same(tb testing.TB, rs policy.RuleSet, t *Table, op int, addr [4]byte, port uint16) {
	tb.Helper()
	req := policy.Request{Op: policy.Ops[op], Addr: netip.AddrFrom4(addr), Port: port}
	if dir, proto, _ := policy.OpDirection(req.Op); dir != policy.DirDNS {
		req.Proto = proto
	}
	k, ok := index(t, op, addr, port)
	dir, _, _ := policy.OpDirection(req.Op)
	if ok == (dir == policy.DirDNS) {
		tb.Fatalf("%s: ok %v for a %v op", req.Op, ok, dir)
	}
	if !ok {
		return
	}
	if want := rs.Index(&req); k != want {
		tb.Fatalf("%s %s:%d: table says rule %d, RuleSet.Index %d (rules %q)", req.Op, req.Addr, port, k, want, texts(rs))
	}
}

func texts(rs policy.RuleSet) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Text)
	}
	return s
}

// randomRule writes a rule of every shape the grammar has, over a few
// addresses and ports so that matches are frequent.
func randomRule(r *rand.Rand) string {
	dirs := []string{"", "connect ", "bind ", "accept "}
	protos := []string{"tcp", "udp", "*"}
	hosts := []string{"*", "127.0.0.1", "127.0.0.0/8", "10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0", "10.1.2.3",
		"192.168.0.0/24", "::1", "[::1]", "::/0", "::ffff:10.0.0.0/104", "64:ff9b::/96", "api.example.test", "*.example.test"}
	ports := []string{"", ":80", ":443", ":80,443", ":1-1024", ":0-65535", ":8080-8090"}
	if r.IntN(10) == 0 {
		return "dns://" + []string{"*", "api.example.test", "*.example.test"}[r.IntN(3)]
	}
	return dirs[r.IntN(len(dirs))] + protos[r.IntN(len(protos))] + "://" + hosts[r.IntN(len(hosts))] + ports[r.IntN(len(ports))]
}

// validRule: bind and accept rules refuse names, which the generator writes.
func validRule(s string) bool {
	_, err := policy.ParseRule(s)
	return err == nil
}

func randomAddr(r *rand.Rand) [4]byte {
	switch r.IntN(5) {
	case 0:
		return [4]byte{127, 0, 0, byte(r.IntN(3))}
	case 1:
		return [4]byte{10, byte(r.IntN(3)), byte(r.IntN(3)), byte(r.IntN(5))}
	case 2:
		return [4]byte{192, 168, 0, byte(r.IntN(256))}
	case 3:
		return [4]byte{}
	}
	var a [4]byte
	for i := range a {
		a[i] = byte(r.IntN(256))
	}
	return a
}

func randomPort(r *rand.Rand) uint16 {
	ps := []uint16{0, 1, 80, 443, 1024, 1025, 8080, 8085, 8090, 8091, 65535}
	if r.IntN(4) == 0 {
		return uint16(r.IntN(65536))
	}
	return ps[r.IntN(len(ps))]
}

// TestSameAsRuleSet holds the table to RuleSet.Index on random rule sets
// of every rule shape and random requests of every op.
func TestSameAsRuleSet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	matched := 0
	for range 2000 {
		var texts []string
		for n := 1 + r.IntN(6); len(texts) < n; {
			if s := randomRule(r); validRule(s) {
				texts = append(texts, s)
			}
		}
		rs, err := policy.ParseRules(texts)
		if err != nil {
			t.Fatal(err)
		}
		tab := compile(rs)
		for range 50 {
			op, addr, port := r.IntN(len(policy.Ops)), randomAddr(r), randomPort(r)
			same(t, rs, tab, op, addr, port)
			if k, _ := index(tab, op, addr, port); k >= 0 {
				matched++
			}
		}
	}
	// The generator must make matches common, or the test proves little.
	if matched < 2000 {
		t.Errorf("only %d of 100000 requests matched a rule", matched)
	}
}

// TestOpOutOfRange: an op index outside policy.Ops is never decided.
func TestOpOutOfRange(t *testing.T) {
	rs, err := policy.ParseRules([]string{"tcp://*"})
	if err != nil {
		t.Fatal(err)
	}
	tab := compile(rs)
	for _, op := range []int{-1, len(policy.Ops), 1 << 20} {
		if k, ok := index(tab, op, [4]byte{127, 0, 0, 1}, 80); ok || k != -1 {
			t.Errorf("op %d: %d, %v", op, k, ok)
		}
	}
}

// FuzzSameAsRuleSet: any two rules the grammar accepts, any request.
func FuzzSameAsRuleSet(f *testing.F) {
	f.Add("tcp://127.0.0.1:80", "bind udp://10.0.0.0/8", uint8(2), uint32(0x7f000001), uint16(80))
	f.Add("tcp://*:25", "accept *://0.0.0.0/0:1-1024", uint8(5), uint32(0x0a000001), uint16(25))
	f.Add("tcp://[::ffff:127.0.0.1]", "tcp://::/0", uint8(2), uint32(0x7f000001), uint16(443))
	f.Fuzz(func(t *testing.T, a, b string, op uint8, addr uint32, port uint16) {
		rs, err := policy.ParseRules([]string{a, b})
		if err != nil {
			return
		}
		tab := compile(rs)
		ip := [4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)}
		same(t, rs, tab, int(op)%len(policy.Ops), ip, port)
	})
}

func BenchmarkDecide(b *testing.B) {
	var texts []string
	for i := range 8 {
		texts = append(texts, "tcp://10.0."+strconv.Itoa(i)+".0/24:443")
	}
	rs, err := policy.ParseRules(append(texts, "tcp://127.0.0.1:8080"))
	if err != nil {
		b.Fatal(err)
	}
	tab := compile(rs)
	for b.Loop() {
		if _, _, reason, _ := tab.Decide(2, [4]byte{127, 0, 0, 1}, 8080); reason != "8" {
			b.Fatal(reason)
		}
	}
}
