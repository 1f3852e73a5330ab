package host

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"golang.org/x/sys/unix"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/internal/testenv"
	"github.com/wasmgate/wasmgate/network"
)

// TestAcceptPastLimit: a server guest at its limit (the fd limit of
// WithMaxFds, or the network's MaxSockets) gets EMFILE from accept, and a
// flood of clients past the limit is refused at once, each with a reset
// (never accepted and closed in order, never left hanging in the kernel's
// queue); the guest stays responsive (a slot freed is a connection served)
// and no host fd leaks.
func TestAcceptPastLimit(t *testing.T) {
	wasm := probeWasm(t)
	for _, tc := range []struct {
		name string
		cfg  func(nw *network.Default) *Config
	}{
		// fds 0-2 stdio, 3 the virtual /etc, 4 the listener: 3 more.
		{"max_fds", func(nw *network.Default) *Config { return NewConfig().WithNetwork(nw).WithMaxFds(8) }},
		// The listener and 3 connections.
		{"max_sockets", func(nw *network.Default) *Config {
			nw.MaxSockets = 4
			return NewConfig().WithNetwork(nw)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := openFds(t)
			nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
			g := startGuest(t, wasm, tc.cfg(nw), "echoserve", "127.0.0.1:0", "-1")
			addr := strings.TrimPrefix(strings.TrimSpace(g.out.wait(t, "[0] listening ", time.Minute)), "[0] listening ")

			echo := func(c net.Conn, msg string) error {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte(msg)); err != nil {
					return err
				}
				buf := make([]byte, len(msg))
				if _, err := io.ReadFull(c, buf); err != nil {
					return err
				}
				if string(buf) != msg {
					return errors.New("wrong echo " + string(buf))
				}
				return nil
			}
			var held []net.Conn
			for i := range 3 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if err := echo(c, "held"); err != nil {
					t.Fatalf("held connection %d: %v", i, err)
				}
				held = append(held, c)
			}

			// The flood, all at once: every client past the limit is
			// reset, quickly.
			const flood = 64
			start := time.Now()
			errs := make(chan error, flood)
			var wg sync.WaitGroup
			for range flood {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("tcp", addr)
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					// The reset is reported once, by whichever call
					// comes first (later reads then see EOF).
					if _, err := c.Write([]byte("x")); err != nil {
						errs <- err
						return
					}
					_, err = c.Read(make([]byte, 1))
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.EPIPE) {
					t.Fatalf("a client past the limit got %v, want a reset (connection refused by the host)", err)
				}
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%d refusals took %v", flood, d)
			}
			g.out.wait(t, "[0] accept: ", 10*time.Second) // the guest saw EMFILE

			// Still serving the held ones, and a freed slot serves a new
			// client.
			for i, c := range held {
				if err := echo(c, "still"); err != nil {
					t.Fatalf("held connection %d after the flood: %v", i, err)
				}
			}
			held[0].Close()
			var ok bool
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !ok; {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				ok = echo(c, "again") == nil
				c.Close()
			}
			if !ok {
				t.Fatal("no new connection was served after a slot was freed")
			}
			for _, c := range held {
				c.Close()
			}
			g.cancel()
			g.finish(t)
			if after := openFds(t); after > before {
				t.Errorf("open fds: %d before the guest, %d after", before, after)
			}
		})
	}
}

// TestMaxFdsConfig: WithMaxFds's bounds, and the default.
func TestMaxFdsConfig(t *testing.T) {
	if got := NewConfig().MaxFds(); got != DefaultMaxFds || got < 10000+100 {
		t.Fatalf("default MaxFds %d: must let a server hold 10,000 connections", got)
	}
	if got := NewConfig().WithMaxFds(100).WithMaxFds(0).MaxFds(); got != DefaultMaxFds {
		t.Fatalf("WithMaxFds(0) gives %d, want the default", got)
	}
	for _, n := range []int{-1, MaxMaxFds + 1, 2} {
		if err := NewConfig().WithMaxFds(n).validate(); err == nil {
			t.Errorf("WithMaxFds(%d) is valid", n)
		}
	}
	if err := NewConfig().WithMaxFds(MaxMaxFds).validate(); err != nil {
		t.Error(err)
	}
}

// TestSDKListenBacklog: an sdk/socket listener gets the system's maximum
// backlog (net.core.somaxconn), as native Go's net.Listen does, not 128.
func TestSDKListenBacklog(t *testing.T) {
	want := somaxconn(t)
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	g := startGuest(t, probeWasm(t), NewConfig().WithNetwork(nw), "echoserve", "127.0.0.1:0", "-1")
	addr := strings.TrimPrefix(strings.TrimSpace(g.out.wait(t, "[0] listening ", time.Minute)), "[0] listening ")
	if got := listenBacklogOf(t, netip.MustParseAddrPort(addr).Port()); got != want {
		t.Fatalf("listen backlog %d, want somaxconn %d", got, want)
	}
}

// TestPreopenListenBacklog: a --listen socket gets the system's maximum
// backlog too (it was 128: at 1000 clients at once the kernel dropped
// SYNs).
func TestPreopenListenBacklog(t *testing.T) {
	want := somaxconn(t)
	// A free port, named, so the listener can be found among our fds.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	cfg := NewConfig().WithNetwork(nw).WithListen(addr)
	g := startGuest(t, webProbeWasm(t), cfg, "serve", "1", "fd:4")
	g.out.wait(t, "listening[0] ", time.Minute)
	got := listenBacklogOf(t, netip.MustParseAddrPort(addr).Port())
	if body, err := httpFrom(t, "127.0.0.1", "http://"+addr+"/a"); err != nil {
		t.Fatalf("GET: %q %v", body, err)
	}
	if out := g.finish(t); g.err != nil || g.code != 0 {
		t.Fatalf("code %d err %v output:\n%s", g.code, g.err, out)
	}
	if got != want {
		t.Fatalf("--listen backlog %d, want somaxconn %d", got, want)
	}
}

func somaxconn(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		testenv.Missing(t, "/proc/sys/net/core/somaxconn", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// listenBacklogOf finds, among this process's fds, the IPv4 TCP socket
// bound to port and listening, and returns its backlog (TCP_INFO's
// tcpi_sacked of a listening socket).
func listenBacklogOf(t *testing.T, port uint16) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		fd, _ := strconv.Atoi(de.Name())
		sa, err := unix.Getsockname(fd)
		if err != nil {
			continue
		}
		if in4, ok := sa.(*unix.SockaddrInet4); !ok || in4.Port != int(port) {
			continue
		}
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil || ti.State != 10 { // TCP_LISTEN
			continue
		}
		return int(ti.Sacked)
	}
	t.Fatalf("no listening fd on port %d", port)
	return 0
}

// TestPollManySubscriptions: one poll_oneoff may wait on every fd a
// server can hold (Go's runtime polls all its blocked connections in one
// call; 4096 made a Go server holding more connections die with "fatal
// error: poll_oneoff failed"); past 2 × the fd limit + 64 it is ENOTSUP.
func TestPollManySubscriptions(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	// A memory of 128 pages (8 MiB), exported.
	mod, err := r.Instantiate(ctx, []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x05, 0x04, 0x01, 0x00, 0x80, 0x01,
		0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, nil)
	h.m = mod
	const n = 10000
	const evOff, nOff = n * subSize, 8<<20 - 8
	for i := range uint32(n) {
		putSub(h, i*subSize, uint64(i), wasi.EventtypeFdWrite, 1, 0, 0) // stdout: writable
	}
	if e := h.call("poll_oneoff", 0, evOff, n, nOff); e != 0 {
		t.Fatalf("poll_oneoff with %d subscriptions: %v", n, e)
	}
	if got := h.u32(nOff); got != n {
		t.Fatalf("%d events, want %d", got, n)
	}
	limit := uint64(2*DefaultMaxFds + 64)
	if e := h.call("poll_oneoff", 0, evOff, limit+1, nOff); e != wasi.ENOTSUP {
		t.Fatalf("poll_oneoff with %d subscriptions: %v, want ENOTSUP", limit+1, e)
	}
}
