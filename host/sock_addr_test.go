package host

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
)

// End-to-end test of the addresses of accepted connections in a Go guest
// (sdk/socket asks the host for them on first use) with
// testdata/sockguests/addrprobe.

// TestSockAcceptedAddrs: accepted connections report their real local and
// peer addresses on a preopened (--listen) listener and on listeners the
// guest opened itself, IPv4 and IPv6; an address asked for before Close is
// still reported after it; one first asked for after Close is the zero
// address (the descriptor is gone); concurrent first calls agree, and
// asking does not disturb a Read blocked on the same connection.
func TestSockAcceptedAddrs(t *testing.T) {
	args := []string{"fd:4", "127.0.0.1:0"}
	if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		l6.Close()
		args = append(args, "[::1]:0")
	}
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	cfg := NewConfig().WithNetwork(nw).WithListen("127.0.0.1:0")
	g := startGuest(t, sockProbeWasm(t, "addrprobe"), cfg, args...)
	for i := range args {
		// Generous: it includes compiling the guest when the shared cache
		// misses (slow under -race on a busy machine).
		line := g.out.wait(t, fmt.Sprintf("listening[%d] ", i), 3*time.Minute)
		srv, err := netip.ParseAddrPort(line[strings.IndexByte(line, ' ')+1:])
		if err != nil || srv.Port() == 0 {
			t.Fatalf("listener %d reports %q", i, line)
		}
		dial := func() (net.Conn, netip.AddrPort) {
			c, err := net.Dial("tcp", srv.String())
			if err != nil {
				t.Fatal(err)
			}
			return c, netip.MustParseAddrPort(c.LocalAddr().String())
		}
		pfx := fmt.Sprintf("[%d] ", i)

		a, me := dial()
		want := fmt.Sprintf("%s %s", srv, me)
		if got := g.out.wait(t, pfx+"a open ", 30*time.Second); got != pfx+"a open "+want {
			t.Errorf("listener %d: %q, want local and peer %s", i, got, want)
		}
		if got := g.out.wait(t, pfx+"a closed ", 30*time.Second); got != pfx+"a closed "+want {
			t.Errorf("listener %d after Close: %q, want %s", i, got, want)
		}
		a.Close()

		b, _ := dial()
		if got := g.out.wait(t, pfx+"b closed ", 30*time.Second); got != pfx+"b closed :0 :0" {
			t.Errorf("listener %d, first asked after Close: %q, want the zero addresses", i, got)
		}
		b.Close()

		c, me := dial()
		want = fmt.Sprintf("%s%s same true local %s", pfx+"c peer ", me, srv)
		if got := g.out.wait(t, pfx+"c peer ", 30*time.Second); got != want {
			t.Errorf("listener %d: %q, want %q", i, got, want)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if s, err := bufio.NewReader(c).ReadString('\n'); s != "ping\n" {
			t.Errorf("listener %d: echo %q, %v", i, s, err)
		}
		c.Close()
	}
	out := g.finish(t)
	if g.err != nil || g.code != 0 || !strings.HasSuffix(out, "\ndone") {
		t.Fatalf("code %d err %v output:\n%s", g.code, g.err, out)
	}
}
