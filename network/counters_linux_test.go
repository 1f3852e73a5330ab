//go:build linux

package network

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
	"golang.org/x/sys/unix"
)

// Counters add up the payload bytes the guest's sockets really moved
// (stream reads and writes, datagrams sent and delivered, splices both
// ways; not a dropped datagram, not a peek) and its name lookups by
// outcome (not IP literals).
func TestDefaultCounters(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	d, _, _ := newTestDefault(rec)
	denied := netip.MustParseAddr("127.0.0.2")
	rec.setFn(func(r *Request) (Verdict, error) {
		if r.Name == "nope.test" || r.Addr == denied {
			return policy.Deny("no"), nil
		}
		return policy.Allow(""), nil
	})

	// DNS: one answered, one denied, one failed, a literal not counted.
	d.ResolveAddresses(ctx, "svc.test")
	d.ResolveAddresses(ctx, "nope.test")
	d.ResolveAddresses(ctx, "missing.test")
	d.ResolveAddresses(ctx, "127.0.0.1")

	// TCP: 5 bytes out, 7 in (a peek of them first).
	peer := newLoopbackTCP(t)
	c := mustSocket(t, d, TCP, IPv4)
	connectWait(t, c, peer.addr())
	pc := peer.expectOne(t)
	defer pc.Close()
	if _, err := c.Send(ctx, [][]byte{[]byte("hello")}, netip.AddrPort{}, 0); err != nil {
		t.Fatal(err)
	}
	pc.Write([]byte("1234567"))
	waitFd(t, c, unix.POLLIN)
	buf := make([]byte, 64)
	c.Recv(ctx, [][]byte{buf}, RecvPeek)
	if n, _, _, err := c.Recv(ctx, [][]byte{buf}, 0); err != nil || n != 7 {
		t.Fatalf("recv %d %v", n, err)
	}

	// UDP: 3 bytes sent, a 4-byte datagram delivered, one from a denied
	// sender dropped.
	u := mustSocket(t, d, UDP, IPv4)
	if err := u.Bind(ctx, netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	ua, _ := u.LocalAddr()
	up, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if _, err := u.Send(ctx, [][]byte{[]byte("abc")}, netip.MustParseAddrPort(up.LocalAddr().String()), 0); err != nil {
		t.Fatal(err)
	}
	bad, err := net.ListenUDP("udp", &net.UDPAddr{IP: denied.AsSlice()})
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	defer bad.Close()
	bad.WriteToUDPAddrPort([]byte("dropped!"), ua)
	time.Sleep(10 * time.Millisecond) // the denied datagram first in the queue
	up.WriteToUDPAddrPort([]byte("wxyz"), ua)
	waitFd(t, u, unix.POLLIN)
	for {
		n, _, _, err := u.Recv(ctx, [][]byte{buf}, 0)
		if err == nil {
			if n != 4 {
				t.Fatalf("datagram of %d bytes", n)
			}
			break
		}
		waitFd(t, u, unix.POLLIN)
	}

	// Splice: an accepted connection echoing 6 bytes into itself.
	l := mustSocket(t, d, TCP, IPv4)
	if err := l.Listen(ctx, 4); err != nil {
		t.Fatal(err)
	}
	la, _ := l.LocalAddr()
	cc, err := net.Dial("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), la.Port()).String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	a := acceptWait(t, l)
	cc.Write([]byte("splice"))
	waitFd(t, a, unix.POLLIN)
	if n, _, err := a.(Splicer).Splice(ctx, a, 0); err != nil || n != 6 {
		t.Fatalf("splice %d %v", n, err)
	}

	want := Counters{BytesIn: 7 + 4 + 6, BytesOut: 5 + 3 + 6, DNSAllowed: 1, DNSDenied: 1, DNSFailed: 1}
	if got := d.Counters(); got != want {
		t.Errorf("Counters() = %+v, want %+v", got, want)
	}
}

// BenchmarkCounterUpdate is what counting costs a socket call: one atomic
// addition on a counter shared by every goroutine of the guest (the
// parallel case is the contended worst case).
func BenchmarkCounterUpdate(b *testing.B) {
	d := &Default{}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			d.bytesIn.Add(100)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.bytesIn.Add(100)
			}
		})
	})
}
