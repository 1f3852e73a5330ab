package host

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// lineEcho serves a line echo on 127.0.0.1 and returns its address.
func lineEcho(t *testing.T) string {
	return serveTCP(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(c, line)
		}
	})
}

// TestSockTCP: 200 concurrent connections in one guest, a half-close
// (CloseWrite = sock_shutdown WR reaches the peer as EOF, and the guest
// still reads the reply), and a refused connect's error.
func TestSockTCP(t *testing.T) {
	addr := lineEcho(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %d bytes: %s", len(b), b)
	}()
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	args := []string{"dialmany", addr, "200", "--", "halfclose", ln.Addr().String(), "--",
		"dial", "127.0.0.1:" + closedPort(t), "--", "dial", addr}
	// IPv6 loopback (16-byte addresses, storage form with family 2), where
	// the machine has it.
	var addr6 string
	if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		defer l6.Close()
		addr6 = l6.Addr().String()
		go func() {
			for {
				c, err := l6.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		args = append(args, "--", "dial", addr6)
	}
	out, code := runGuest(t, probeWasm(t), NewConfig().WithNetwork(nw), args...)
	if addr6 != "" && (!strings.Contains(out, "[4] connected [::1]:") || !strings.Contains(out+"\n", " "+addr6+"\n")) {
		t.Errorf("IPv6 dial: want [4] connected [::1]:... %s\n%s", addr6, out)
	}
	for _, want := range []string{
		"[0] ok 200\n",
		`[1] reply "got 7 bytes: request"` + "\n",
		"[2] error: dial tcp 127.0.0.1:",
		": connect: connection refused\n",
		"[3] connected 127.0.0.1:", // the addresses net.FileConn cannot learn on wasip1
		" " + addr + "\n",
	} {
		if !strings.Contains(strings.ToLower(out+"\n"), strings.ToLower(want)) {
			t.Errorf("missing %q", want)
		}
	}
	if code != 1 || t.Failed() {
		t.Fatalf("code %d output:\n%s", code, out)
	}
	if n := nw.OpenSockets(); n != 0 {
		t.Fatalf("%d sockets still open after the guest exited", n)
	}
}

// closedPort returns a loopback port nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

func TestSockCConnectRefused(t *testing.T) {
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	out, code := runGuest(t, cGuest(t, "cserver"), NewConfig().WithNetwork(nw), "refused", closedPort(t))
	if code != 0 || !strings.Contains(out, "connect errno 14") { // ECONNREFUSED, from a blocking connect
		t.Fatalf("code %d output:\n%s", code, out)
	}
}

// TestSockCGuestV1 runs a C guest that imports the WasmEdge v1 shapes
// (2-parameter sock_accept, 4-parameter getlocaladdr/getpeeraddr, getsockopt
// with a length pointer) with blocking sockets.
func TestSockCGuestV1(t *testing.T) {
	wasm := cGuest(t, "cserver")
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	g := startGuest(t, wasm, NewConfig().WithNetwork(nw), "echo")
	line := g.out.wait(t, "listening ", 30*time.Second)
	var a string
	var typ, sotype, olen int
	if _, err := fmt.Sscanf(line, "listening %s type %d sotype %d len %d", &a, &typ, &sotype, &olen); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	if typ != 4 || sotype != 2 || olen != 4 || !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":0") {
		t.Fatalf("listener line %q", line)
	}
	c, err := net.DialTimeout("tcp", a, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "hello c")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "HELLO C" {
		t.Fatalf("reply %q %v", b, err)
	}
	out := g.finish(t)
	if g.code != 0 || !strings.Contains(out, "peer 127.0.0.1 type 4") || !strings.Contains(out, "echoed 7") {
		t.Fatalf("code %d err %v output:\n%s", g.code, g.err, out)
	}
}

// TestSockNoFdLeak checks that the host's fd count is back to its
// baseline after guests exit, and after a guest is cancelled in the middle
// of a connect (blocked in the policy decision).
func TestSockNoFdLeak(t *testing.T) {
	wasm := probeWasm(t)
	addr := lineEcho(t)
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	base := openFds(t)

	out, code := runGuest(t, wasm, NewConfig().WithNetwork(nw), "dialmany", addr, "50")
	if code != 0 {
		t.Fatalf("code %d: %s", code, out)
	}
	waitFds(t, base)

	entered := make(chan struct{}, 1)
	hang := network.PolicyFunc(func(ctx context.Context, req *network.Request) (network.Verdict, error) {
		if req.Op == policy.OpTCPConnect {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return network.Verdict{}, ctx.Err()
		}
		return allowLoopback(ctx, req)
	})
	hnw := &network.Default{Policy: hang}
	g := startGuest(t, wasm, NewConfig().WithNetwork(hnw), "dial", addr)
	select {
	case <-entered:
	case <-time.After(60 * time.Second):
		t.Fatalf("guest never reached connect: %s", g.out.String())
	}
	g.cancel()
	g.finish(t)
	// Either the host stopped the guest (an error) or the guest saw its
	// connect fail and exited 1 first: both are fine, success is not.
	if g.err == nil && g.code == 0 {
		t.Fatalf("cancelled guest succeeded: %s", g.out.String())
	}
	waitFds(t, base)
	if n := hnw.OpenSockets(); n != 0 {
		t.Fatalf("%d sockets open after cancel", n)
	}
}

// waitFds waits briefly for the fd count to return to base: the test's own
// echo server closes its side asynchronously.
func waitFds(t *testing.T, base int) {
	t.Helper()
	var n int
	for i := 0; i < 100; i++ {
		if n = openFds(t); n <= base {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("host fds: %d, baseline %d", n, base)
}
