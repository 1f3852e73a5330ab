//go:build linux

package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Every tcp.accept request carries the listener's address, also after the
// first accept (which caches it) and after EAGAIN; peers come out
// unmapped on an IPv6 listener reached over IPv4.
func TestAcceptRequestLocal(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var reqs []Request
	d := &Default{Policy: PolicyFunc(func(_ context.Context, r *Request) (Verdict, error) {
		mu.Lock()
		reqs = append(reqs, *r)
		mu.Unlock()
		return policy.Allow("test"), nil
	})}
	l, err := d.Socket(ctx, TCP, IPv6)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Bind(ctx, netip.AddrPortFrom(netip.IPv6Unspecified(), 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(ctx, 8); err != nil {
		t.Fatal(err)
	}
	la, err := l.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(ctx); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("Accept with nothing pending = %v, want EAGAIN", err)
	}
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp4", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), la.Port()).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var a Socket
		for deadline := time.Now().Add(5 * time.Second); ; {
			a, err = l.Accept(ctx)
			if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		want := netip.MustParseAddrPort(c.LocalAddr().String())
		if pa, err := a.PeerAddr(); err != nil || pa != want {
			t.Errorf("accepted PeerAddr = %v, %v; want %v", pa, err, want)
		}
		if sa, err := a.LocalAddr(); err != nil || sa.Addr() != want.Addr() || sa.Port() != la.Port() {
			t.Errorf("accepted LocalAddr = %v, %v", sa, err)
		}
		a.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, r := range reqs {
		if r.Op != policy.OpTCPAccept {
			continue
		}
		n++
		if r.Local != la {
			t.Errorf("request %d: Local = %v, want %v", n, r.Local, la)
		}
		if !r.Addr.Is4() || r.Addr != netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
			t.Errorf("request %d: Addr = %v, want 127.0.0.1", n, r.Addr)
		}
	}
	if n != 3 {
		t.Errorf("%d tcp.accept requests, want 3", n)
	}
}
