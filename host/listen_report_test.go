package host

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestOnListenReportsBoundAddress: every WithListen socket is reported
// once bound, in order, with the port the system chose for port 0 and the
// guest fd it gets (stdio 0-2, the directory 3, the virtual /etc 4, then
// the listeners), before the guest starts; a connection made then is
// accepted by the kernel and waits for the guest.
func TestOnListenReportsBoundAddress(t *testing.T) {
	var got []Listening
	cfg := NewConfig().WithArgs("hello").
		WithNetwork(&network.Default{Policy: network.PolicyFunc(allowLoopback)}).
		WithDir(t.TempDir(), "/data", ReadWrite).
		WithListen("127.0.0.1:0").
		WithListen("[::1]:0").
		WithOnListen(func(l Listening) error {
			got = append(got, l)
			c, err := net.DialTimeout("tcp", l.Bound.String(), 5*time.Second)
			if err != nil {
				t.Errorf("dial the reported %s: %v", l.Bound, err)
				return nil
			}
			return c.Close()
		})
	code, _, errOut, err := hostRunGuest(t, hostGoGuest(t, "hello"), cfg, time.Minute)
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v; stderr %s", code, err, errOut)
	}
	if len(got) != 2 {
		t.Fatalf("reported %d listeners, want 2: %v", len(got), got)
	}
	for i, want := range []struct {
		addr string
		ip   string
		fd   int32
	}{{"127.0.0.1:0", "127.0.0.1", 5}, {"[::1]:0", "::1", 6}} {
		l := got[i]
		if l.Addr != want.addr || l.Bound.Addr().String() != want.ip || l.Bound.Port() == 0 || l.Fd != want.fd {
			t.Errorf("listener %d: %+v; want %s bound on %s with a port, fd %d", i, l, want.addr, want.ip, want.fd)
		}
	}
}

// TestOnListenErrorStopsRun: an error from the WithOnListen callback stops
// the run before the guest starts, and Run returns it.
func TestOnListenErrorStopsRun(t *testing.T) {
	boom := errors.New("boom")
	cfg := NewConfig().WithArgs("hello", "ran").
		WithNetwork(&network.Default{Policy: network.PolicyFunc(allowLoopback)}).
		WithListen("127.0.0.1:0").
		WithOnListen(func(Listening) error { return boom })
	code, out, _, err := hostRunGuest(t, hostGoGuest(t, "hello"), cfg, time.Minute)
	if !errors.Is(err, boom) || code == 0 || out != "" {
		t.Fatalf("exit %d, %v, stdout %q; want boom and no guest output", code, err, out)
	}
}

// TestWithListenerAdopted: a listener the caller opened is handed to the
// guest in the shared WithListen order (here after a WithListen socket),
// reported with its address and fd, decided as tcp.bind and tcp.listen of
// its address, and the guest accepts on it and sees the right addresses.
// The caller's listener stays open and usable after the run.
func TestWithListenerAdopted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := netip.MustParseAddrPort(ln.Addr().String())
	var mu sync.Mutex
	var ops []string
	policyFn := func(ctx context.Context, r *network.Request) (network.Verdict, error) {
		if r.Addr == srv.Addr() && r.Port == srv.Port() || r.Op == policy.OpTCPAccept {
			mu.Lock()
			ops = append(ops, string(r.Op))
			mu.Unlock()
		}
		return allowLoopback(ctx, r)
	}
	var got []Listening
	cfg := NewConfig().
		WithNetwork(&network.Default{Policy: network.PolicyFunc(policyFn)}).
		WithListen("127.0.0.1:0").
		WithListener(ln).
		WithOnListen(func(l Listening) error { got = append(got, l); return nil })
	g := startGuest(t, sockProbeWasm(t, "addrprobe"), cfg, "fd:5")
	line := g.out.wait(t, "listening[0] ", 3*time.Minute)
	if line != "listening[0] "+srv.String() {
		t.Fatalf("guest listens at %q, want %s", line, srv)
	}
	if len(got) != 2 || got[1].Addr != srv.String() || got[1].Bound != srv || got[1].Fd != 5 || got[0].Fd != 4 {
		t.Fatalf("reported %+v; want the WithListen socket at fd 4, then %s at fd 5", got, srv)
	}
	mu.Lock()
	if want := "tcp.bind tcp.listen"; strings.Join(ops, " ") != want {
		t.Errorf("decided %q for the adopted listener before the guest ran, want %q", ops, want)
	}
	mu.Unlock()
	c, err := net.Dial("tcp", srv.String())
	if err != nil {
		t.Fatal(err)
	}
	me := c.LocalAddr().String()
	if l := g.out.wait(t, "[0] a open ", 30*time.Second); l != "[0] a open "+srv.String()+" "+me {
		t.Errorf("guest reports %q, want local %s and peer %s", l, srv, me)
	}
	c.Close()
	mu.Lock()
	if !slices.Contains(ops, "tcp.accept") {
		t.Errorf("the connection was not decided as tcp.accept: %q", ops)
	}
	mu.Unlock()
	g.cancel()
	<-g.done

	// The caller's listener still works: the guest had a duplicate.
	go func() {
		if c, err := net.Dial("tcp", srv.String()); err == nil {
			c.Close()
		}
	}()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	if c, err := ln.Accept(); err != nil {
		t.Errorf("the caller's listener after the run: %v", err)
	} else {
		c.Close()
	}
}

// TestWithListenerRefused: a listener the policy does not allow, one that
// is not a TCP socket, and a nil one each fail the run before the guest
// starts, with an error that says why; the caller's listener is left open.
func TestWithListenerRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deny := network.PolicyFunc(func(ctx context.Context, r *network.Request) (network.Verdict, error) {
		if r.Op == "tcp.listen" {
			return policy.Deny("no listening"), nil
		}
		return allowLoopback(ctx, r)
	})
	ux, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ux.Close()
	for _, c := range []struct {
		name string
		cfg  *Config
		want string
	}{
		{"denied", NewConfig().WithNetwork(&network.Default{Policy: deny}).WithListener(ln), "no listening"},
		{"no network", NewConfig().WithListener(ln), "denied"},
		{"unix", NewConfig().WithNetwork(&network.Default{Policy: network.PolicyFunc(allowLoopback)}).WithListener(ux), "socket operation on non-socket"},
		{"nil", NewConfig().WithListener(nil), "nil listener"},
	} {
		code, out, _, err := hostRunGuest(t, hostGoGuest(t, "hello"), c.cfg.WithArgs("hello", "ran"), time.Minute)
		if err == nil || !strings.Contains(err.Error(), c.want) || out != "" {
			t.Errorf("%s: exit %d, %v, stdout %q; want an error with %q and no guest output", c.name, code, err, out, c.want)
		}
	}
	if err := ln.(*net.TCPListener).SetDeadline(time.Now()); err != nil {
		t.Errorf("the caller's listener was closed: %v", err)
	}
}
