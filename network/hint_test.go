package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

func TestSuggestRule(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name string
		de   DeniedError
		want string
	}{
		{"connect by name", DeniedError{Op: policy.OpTCPConnect, Addr: ap("198.51.100.10:443"), Names: []string{"api.example.test", "old.example.test"}},
			"tcp://api.example.test:443"},
		{"connect by address", DeniedError{Op: policy.OpTCPConnect, Addr: ap("198.51.100.10:443")},
			"tcp://198.51.100.10:443"},
		{"connect ipv6", DeniedError{Op: policy.OpTCPConnect, Addr: ap("[2001:db8::1]:8443")},
			"tcp://[2001:db8::1]:8443"},
		{"connect mapped is unmapped", DeniedError{Op: policy.OpTCPConnect, Addr: ap("[::ffff:192.0.2.7]:80")},
			"tcp://192.0.2.7:80"},
		{"connect skips a non-canonical name", DeniedError{Op: policy.OpTCPConnect, Addr: ap("192.0.2.7:80"), Names: []string{"Bad Name", "ok.example.test"}},
			"tcp://ok.example.test:80"},
		{"connect port 0", DeniedError{Op: policy.OpTCPConnect, Addr: ap("192.0.2.7:0")},
			"tcp://192.0.2.7:0"},
		{"udp connect", DeniedError{Op: policy.OpUDPConnect, Addr: ap("192.0.2.53:53"), Names: []string{"ns.example.test"}},
			"udp://ns.example.test:53"},
		{"udp send", DeniedError{Op: policy.OpUDPSend, Addr: ap("[2001:db8::53]:53")},
			"udp://[2001:db8::53]:53"},
		{"tcp bind", DeniedError{Op: policy.OpTCPBind, Addr: ap("127.0.0.1:8080")},
			"bind tcp://127.0.0.1:8080"},
		{"implicit bind of listen", DeniedError{Op: policy.OpTCPBind, Addr: ap("[::]:0")},
			"bind tcp://[::]:0"},
		{"tcp listen", DeniedError{Op: policy.OpTCPListen, Addr: ap("0.0.0.0:8080")},
			"bind tcp://0.0.0.0:8080"},
		{"udp bind", DeniedError{Op: policy.OpUDPBind, Addr: ap("[::1]:5353")},
			"bind udp://[::1]:5353"},
		{"accept uses the address, not names or port", DeniedError{Op: policy.OpTCPAccept, Addr: ap("203.0.113.9:5555"), Names: []string{"peer.example.test"}},
			"accept tcp://203.0.113.9"},
		{"udp recv", DeniedError{Op: policy.OpUDPRecv, Addr: ap("[2001:db8::9]:53")},
			"accept udp://[2001:db8::9]"},
		{"dns lookup", DeniedError{Op: policy.OpDNSLookup, Name: "api.example.test"},
			"dns://api.example.test"},
		{"dns lookup canonicalised", DeniedError{Op: policy.OpDNSLookup, Name: "API.Example.Test."},
			"dns://api.example.test"},
		{"dns answer", DeniedError{Op: policy.OpDNSAnswer, Name: "api.example.test", Addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 0)},
			"dns://api.example.test"},
		{"dns answer underscore", DeniedError{Op: policy.OpDNSAnswer, Name: "_sip._udp.example.test"},
			"dns://_sip._udp.example.test"},
		{"dns without name", DeniedError{Op: policy.OpDNSLookup}, ""},
		{"dns bad name", DeniedError{Op: policy.OpDNSLookup, Name: "a b"}, ""},
		{"dns numeric name", DeniedError{Op: policy.OpDNSLookup, Name: "127.1"}, ""},
		{"zoned address", DeniedError{Op: policy.OpTCPConnect, Addr: netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 80)}, ""},
		{"no address", DeniedError{Op: policy.OpTCPConnect}, ""},
		{"unknown op", DeniedError{Op: "tcp.teleport", Addr: ap("192.0.2.1:1")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SuggestRule(&tc.de)
			if got != tc.want {
				t.Fatalf("SuggestRule = %q, want %q", got, tc.want)
			}
			if got == "" {
				return
			}
			// The suggestion must be a rule the allowlist accepts and
			// that allows the request as Default would send it.
			r, err := policy.ParseRule(got)
			if err != nil {
				t.Fatalf("suggested rule does not parse: %v", err)
			}
			a, _ := CanonicalAddr(tc.de.Addr.Addr())
			n, _ := CanonicalName(tc.de.Name)
			req := &policy.Request{Op: tc.de.Op, Addr: a, Port: tc.de.Addr.Port(), Names: tc.de.Names, Name: n}
			if !r.Match(req) {
				t.Fatalf("suggested rule %q does not match %+v", got, req)
			}
		})
	}
	if SuggestRule(nil) != "" {
		t.Fatal("SuggestRule(nil) != \"\"")
	}
}

// staticResolver answers from a map.
type staticResolver map[string][]Answer

func (m staticResolver) Lookup(ctx context.Context, name string) ([]Answer, error) {
	if a, ok := m[name]; ok {
		return append([]Answer(nil), a...), nil
	}
	return nil, ErrNotFound
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := strings.SplitAfter(s.b.String(), "\n")
	if out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

func TestDenyNotifierLines(t *testing.T) {
	ap := netip.MustParseAddrPort
	var buf syncBuffer
	notify := DenyNotifier(&buf)
	connect := &DeniedError{Op: policy.OpTCPConnect, Addr: ap("198.51.100.10:443"), Names: []string{"api.example.test"},
		Reason: "no plugin allowed tcp.connect; manifest default is deny"}
	notify(connect)
	notify(connect) // same (op, destination): silent
	notify(&DeniedError{Op: policy.OpTCPConnect, Addr: ap("198.51.100.10:443"), Reason: "again"})
	notify(&DeniedError{Op: policy.OpTCPConnect, Addr: ap("198.51.100.10:80"), Plugin: "egress", Reason: "port 80 is plain text"})
	notify(&DeniedError{Op: policy.OpUDPSend, Addr: ap("198.51.100.10:443"), Reason: "r"}) // other op: new line
	notify(&DeniedError{Op: policy.OpTCPAccept, Addr: ap("203.0.113.9:5555"), Reason: "r"})
	notify(&DeniedError{Op: policy.OpTCPAccept, Addr: ap("203.0.113.9:5556"), Reason: "r"}) // same peer
	notify(&DeniedError{Op: policy.OpDNSLookup, Name: "evil.example.test", Reason: "r"})
	notify(&DeniedError{Op: policy.OpDNSAnswer, Name: "x.example.test", Addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 0), Plugin: "special", Reason: "private"})
	notify(&DeniedError{Op: policy.OpDNSAnswer, Name: "x.example.test", Addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), 0), Plugin: "special", Reason: "private"})
	notify(&DeniedError{Op: policy.OpTCPConnect, Addr: netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 1), Reason: "r"})
	notify(nil)

	want := []string{
		`wasmgate: denied tcp.connect 198.51.100.10:443 (api.example.test): no plugin allowed tcp.connect; manifest default is deny; to allow it add to an allowlist plugin: rules = ["tcp://api.example.test:443"]` + "\n",
		`wasmgate: denied tcp.connect 198.51.100.10:80 by egress: port 80 is plain text; plugin egress denied it and a deny wins over any allow, so an allowlist rule ("tcp://198.51.100.10:80") is not enough: change that plugin's config` + "\n",
		`wasmgate: denied udp.send 198.51.100.10:443: r; to allow it add to an allowlist plugin: rules = ["udp://198.51.100.10:443"]` + "\n",
		`wasmgate: denied tcp.accept 203.0.113.9:5555: r; to allow it add to an allowlist plugin: rules = ["accept tcp://203.0.113.9"]` + "\n",
		`wasmgate: denied dns.lookup evil.example.test: r; to allow it add to an allowlist plugin: rules = ["dns://evil.example.test"]` + "\n",
		`wasmgate: denied dns.answer 10.0.0.1 (x.example.test) by special: private; plugin special denied it and a deny wins over any allow, so an allowlist rule ("dns://x.example.test") is not enough: change that plugin's config` + "\n",
		`wasmgate: denied tcp.connect [fe80::1%eth0]:1: r` + "\n",
	}
	got := buf.lines()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), strings.Join(got, ""))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
	if buf.writes != len(want) {
		t.Errorf("%d writes for %d lines", buf.writes, len(want))
	}
}

func TestDenyNotifierNoPolicy(t *testing.T) {
	var buf syncBuffer
	ctx := context.Background()
	d := &Default{Network: &Simulated{}, Resolver: staticResolver{}, OnDeny: DenyNotifier(&buf)}
	s, err := d.Socket(ctx, TCP, IPv4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Connect(ctx, netip.MustParseAddrPort("127.0.0.1:80"))
	var de *DeniedError
	if !errors.As(err, &de) || !de.NoPolicy {
		t.Fatalf("Connect = %v, want a NoPolicy *DeniedError", err)
	}
	s.Connect(ctx, netip.MustParseAddrPort("127.0.0.2:80"))
	s.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0"))
	d.ResolveAddresses(ctx, "example.test")
	got := buf.lines()
	want := "wasmgate: network access denied: no --policy given (denied tcp.connect 127.0.0.1:80)\n"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("lines %q, want [%q]", got, want)
	}

	// With a policy, NoPolicy is false.
	d2 := &Default{Network: &Simulated{}, Policy: PolicyFunc(func(context.Context, *Request) (Verdict, error) {
		return policy.Deny("no"), nil
	})}
	s2, _ := d2.Socket(ctx, TCP, IPv4)
	defer s2.Close()
	if err := s2.Connect(ctx, netip.MustParseAddrPort("127.0.0.1:80")); !errors.As(err, &de) || de.NoPolicy {
		t.Fatalf("Connect = %v, want a *DeniedError without NoPolicy", err)
	}
}

func TestDenyNotifierBounded(t *testing.T) {
	var buf syncBuffer
	notify := DenyNotifier(&buf)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range MaxDenyNotices {
				// Workers overlap on half the destinations.
				port := uint16(1 + i + w%2*MaxDenyNotices/2)
				notify(&DeniedError{Op: policy.OpTCPConnect, Addr: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port), Reason: "r"})
			}
		}()
	}
	wg.Wait()
	got := buf.lines()
	// 1.5*MaxDenyNotices distinct destinations: MaxDenyNotices lines, then
	// one "more than" line, then nothing.
	if len(got) != MaxDenyNotices+1 {
		t.Fatalf("%d lines, want %d", len(got), MaxDenyNotices+1)
	}
	seen := map[string]bool{}
	for _, l := range got[:MaxDenyNotices] {
		if seen[l] || !strings.HasPrefix(l, "wasmgate: denied tcp.connect 192.0.2.1:") {
			t.Fatalf("bad or repeated line %q", l)
		}
		seen[l] = true
	}
	if !strings.Contains(got[MaxDenyNotices], "further ones are only in the audit log") {
		t.Fatalf("last line %q", got[MaxDenyNotices])
	}
	notify(&DeniedError{Op: policy.OpTCPConnect, Addr: netip.MustParseAddrPort("192.0.2.2:1"), Reason: "r"})
	if len(buf.lines()) != MaxDenyNotices+1 {
		t.Fatal("a line after the limit")
	}
}

func TestDenyNotifierSanitises(t *testing.T) {
	var buf syncBuffer
	notify := DenyNotifier(&buf)
	evil := "line one\nwasmgate: forged\x1b[31m red \u202e rtl \xff" + strings.Repeat("x", 500)
	notify(&DeniedError{Op: policy.OpTCPConnect, Addr: netip.MustParseAddrPort("192.0.2.1:1"), Plugin: "p\r\n", Reason: evil,
		Names: []string{"bad\nname"}})
	got := buf.lines()
	if len(got) != 1 {
		t.Fatalf("lines %q", got)
	}
	l := strings.TrimSuffix(got[0], "\n")
	for _, r := range l {
		if r < 0x20 || r == 0x7f || r == '\u202e' || r == '\uFFFD' {
			t.Fatalf("control or format character %U in %q", r, l)
		}
	}
	if len(l) > 3*maxNoticeText+200 {
		t.Fatalf("line of %d bytes", len(l))
	}
	if !strings.Contains(l, `rules = ["tcp://192.0.2.1:1"]`) && !strings.Contains(l, `("tcp://192.0.2.1:1")`) {
		t.Fatalf("no rule in %q", l)
	}
}

// TestDefaultOnDeny checks that OnDeny sees every denial exactly once,
// with the names, invisible ones included, and is called with no lock
// held (it calls back into the Default and tries the socket's lock).
func TestDefaultOnDeny(t *testing.T) {
	ctx := context.Background()
	sim := &Simulated{}
	res := staticResolver{"api.example.test": {{Addr: netip.MustParseAddr("192.0.2.10")}}}
	var (
		mu     sync.Mutex
		got    []string
		guards []*guardedSocket
	)
	var d *Default
	d = &Default{
		Network:  sim,
		Resolver: res,
		Policy: PolicyFunc(func(ctx context.Context, r *Request) (Verdict, error) {
			if r.Port == 666 || r.Name == "evil.example.test" {
				return policy.Deny("evil"), nil
			}
			return policy.Allow(""), nil
		}),
		OnDeny: func(de *DeniedError) {
			d.NamesFor(netip.MustParseAddr("192.0.2.10")) // would deadlock under d.mu
			mu.Lock()
			for _, g := range guards {
				if !g.recvMu.TryLock() {
					t.Errorf("OnDeny(%v) called with recvMu held", de)
					continue
				}
				g.recvMu.Unlock()
			}
			got = append(got, fmt.Sprintf("%s %v %s %q", de.Op, de.Addr, de.Name, de.Names))
			mu.Unlock()
		},
	}
	expect := func(want ...string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("OnDeny saw %q, want %q", got, want)
		}
		got = nil
	}
	if _, err := d.ResolveAddresses(ctx, "api.example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ResolveAddresses(ctx, "evil.example.test"); !errors.Is(err, ErrDenied) {
		t.Fatal(err)
	}
	expect(`dns.lookup invalid AddrPort evil.example.test []`)

	s, _ := d.Socket(ctx, TCP, IPv4)
	defer s.Close()
	if err := s.Connect(ctx, netip.MustParseAddrPort("192.0.2.10:666")); !errors.Is(err, ErrDenied) {
		t.Fatal(err)
	}
	expect(`tcp.connect 192.0.2.10:666  ["api.example.test"]`)

	u, _ := d.Socket(ctx, UDP, IPv4)
	defer u.Close()
	mu.Lock()
	guards = append(guards, u.(*guardedSocket))
	mu.Unlock()
	local := netip.MustParseAddrPort("127.0.0.1:5353")
	if err := u.Bind(ctx, local); err != nil {
		t.Fatal(err)
	}
	sim.Deliver(local, netip.MustParseAddrPort("192.0.2.10:666"), []byte("bad"))
	sim.Deliver(local, netip.MustParseAddrPort("192.0.2.11:666"), []byte("bad"))
	sim.Deliver(local, netip.MustParseAddrPort("192.0.2.10:53"), []byte("good"))
	buf := make([]byte, 8)
	n, from, _, err := u.Recv(ctx, [][]byte{buf}, 0)
	if err != nil || string(buf[:n]) != "good" || from.Port() != 53 {
		t.Fatalf("Recv = %d %v %v", n, from, err)
	}
	expect(`udp.recv 192.0.2.10:666  ["api.example.test"]`, `udp.recv 192.0.2.11:666  []`)
}
