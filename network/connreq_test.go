package network

import (
	"context"
	"net/netip"
	"testing"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestConnectRequestsStay: a policy may keep the requests it was asked
// about. A socket's first connect request lives in the socket itself; a
// second connect (UDP may connect again) must get a request of its own,
// not rewrite the first, and the socket stands on the latest.
func TestConnectRequestsStay(t *testing.T) {
	var seen []*Request
	d := &Default{Network: &Simulated{}, Policy: PolicyFunc(func(_ context.Context, r *Request) (Verdict, error) {
		seen = append(seen, r)
		return policy.Allow("ok"), nil
	})}
	ctx := context.Background()
	s, err := d.Socket(ctx, UDP, IPv4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := netip.MustParseAddrPort("192.0.2.1:53")
	b := netip.MustParseAddrPort("192.0.2.2:5353")
	for _, ap := range []netip.AddrPort{a, b} {
		if err := s.Connect(ctx, ap); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 2 || seen[0] == seen[1] {
		t.Fatalf("requests %v: want two distinct", seen)
	}
	if got := netip.AddrPortFrom(seen[0].Addr, seen[0].Port); got != a || seen[0].Op != policy.OpUDPConnect {
		t.Errorf("first request now %v %v, want %v", seen[0].Op, got, a)
	}
	if got := netip.AddrPortFrom(seen[1].Addr, seen[1].Port); got != b {
		t.Errorf("second request %v, want %v", got, b)
	}
	if st := s.(*guardedSocket).standing.Load(); st != seen[1] {
		t.Errorf("the socket stands on %p, want the second request %p", st, seen[1])
	}
}
