package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// TestSockHTTPClient: a Go guest's net/http client, dialing through
// sdk/socket, reaches a loopback server by a name the policy allows (name
// binding: the connect to 127.0.0.1 carries the name app.test), while a
// connect the policy denies fails with "permission denied" in the guest
// and never reaches its server.
func TestSockHTTPClient(t *testing.T) {
	dnsAddr, _ := startDNS(t)
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "app")
	}))
	defer allowed.Close()
	var deniedHits atomic.Int32
	denied := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "must not be reached")
	}))
	denied.Config.ConnState = func(net.Conn, http.ConnState) { deniedHits.Add(1) }
	// On 127.0.0.2: app.test is bound to 127.0.0.1 only (binding is per
	// address, not per port).
	l2, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	denied.Listener.Close()
	denied.Listener = l2
	denied.Start()
	defer denied.Close()
	_, port, _ := net.SplitHostPort(allowed.Listener.Addr().String())
	nw := &network.Default{
		Policy:   network.PolicyFunc(namePolicy),
		Resolver: network.DNSResolver{Servers: []string{dnsAddr}},
	}
	out, code := runGuest(t, webProbeWasm(t), NewConfig().WithNetwork(nw), "get",
		"http://app.test:"+port+"/", denied.URL+"/")
	if code != 1 || !strings.Contains(out, `[0] status 200 body "app"`) ||
		!strings.Contains(strings.ToLower(out), "[1] error: get \""+denied.URL+"/\": dial tcp "+strings.TrimPrefix(denied.URL, "http://")+": connect: permission denied") {
		t.Fatalf("code %d output:\n%s", code, out)
	}
	if n := deniedHits.Load(); n != 0 {
		t.Fatalf("the denied server saw %d connection events", n)
	}
}

// denyFrom returns a policy that allows loopback but denies op when the
// address is addr.
func denyFrom(op network.Op, addr string) network.PolicyFunc {
	return func(ctx context.Context, req *network.Request) (network.Verdict, error) {
		if req.Op == op && req.Addr.String() == addr {
			return network.Verdict{Verdict: policy.ActionDeny, Reason: "test"}, nil
		}
		return allowLoopback(ctx, req)
	}
}

// httpFrom GETs url with the client bound to local address src.
func httpFrom(t *testing.T, src, url string) (string, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestSockHTTPServer: a Go guest serves HTTP at once on a --listen socket
// (preopened, fd 4 after the virtual /etc at fd 3) and on a listener it
// opened itself. A peer the policy denies (tcp.accept from 127.0.0.2) is
// closed by the host and never reaches the handler; the handler sees the
// real peer address.
func TestSockHTTPServer(t *testing.T) {
	nw := &network.Default{Policy: denyFrom(policy.OpTCPAccept, "127.0.0.2")}
	cfg := NewConfig().WithNetwork(nw).WithListen("127.0.0.1:0")
	g := startGuest(t, webProbeWasm(t), cfg, "serve", "4", "fd:4", "127.0.0.1:0")
	for i := 0; i < 2; i++ {
		line := g.out.wait(t, fmt.Sprintf("listening[%d] ", i), 60*time.Second)
		addr := line[strings.IndexByte(line, ' ')+1:]
		if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Fatalf("guest listener reports %q", addr)
		}
		if body, err := httpFrom(t, "127.0.0.2", "http://"+addr+"/denied"); err == nil {
			t.Fatalf("denied peer got an answer: %q", body)
		}
		for _, p := range []string{"/a", "/b"} {
			body, err := httpFrom(t, "127.0.0.1", "http://"+addr+p)
			if err != nil || !strings.HasPrefix(body, "hello "+p+" from 127.0.0.1:") {
				t.Fatalf("listener %d GET %s: %q %v", i, p, body, err)
			}
		}
	}
	out := g.finish(t)
	if g.err != nil || g.code != 0 || !strings.Contains(out, "served 4") || strings.Contains(out, "denied") {
		t.Fatalf("code %d err %v output:\n%s", g.code, g.err, out)
	}
}

// TestSockListenDenied: a --listen address the policy refuses stops the
// start with the denial; the guest never runs.
func TestSockListenDenied(t *testing.T) {
	cfg := NewConfig().WithNetwork(&network.Default{Policy: denyFrom(policy.OpTCPListen, "127.0.0.1")}).
		WithListen("127.0.0.1:0").WithCompilationCacheDir(sockCacheDir)
	code, err := Run(context.Background(), probeWasm(t), cfg)
	if err == nil || code == 0 || !errors.Is(err, network.ErrDenied) {
		t.Fatalf("start with a denied --listen: %d %v", code, err)
	}
}

func TestSockUDP(t *testing.T) {
	wasm := probeWasm(t)
	nw := &network.Default{Policy: denyFrom(policy.OpUDPRecv, "127.0.0.2")}
	srv, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	t.Run("send_to/recv_from and connected", func(t *testing.T) {
		srvAddr := srv.LocalAddr().String()
		out, code := runGuest(t, wasm, NewConfig().WithNetwork(nw), "udpecho", srvAddr, "--", "udpconn", srvAddr)
		want0 := fmt.Sprintf("[0] got %q from %s local 127.0.0.1:", "echo ping", srvAddr)
		want1 := fmt.Sprintf("[1] got %q remote %s", "echo hello", srvAddr)
		if code != 0 || !strings.Contains(out, want0) || !strings.Contains(out, want1) {
			t.Fatalf("code %d output:\n%s\nwant %s\nand %s", code, out, want0, want1)
		}
	})
	t.Run("denied peer dropped", func(t *testing.T) {
		g := startGuest(t, wasm, NewConfig().WithNetwork(nw), "udpserve", "127.0.0.1:0", "1")
		addr := strings.TrimPrefix(g.out.wait(t, "[0] listening ", 60*time.Second), "[0] listening ")
		dst, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		bad, err := net.ListenPacket("udp4", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		good, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer good.Close()
		if _, err := bad.WriteTo([]byte("bad"), dst); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // let "bad" arrive first
		if _, err := good.WriteTo([]byte("good"), dst); err != nil {
			t.Fatal(err)
		}
		good.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 100)
		n, _, err := good.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "good" {
			t.Fatalf("echo: %q %v", buf[:n], err)
		}
		bad.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := bad.ReadFrom(buf); err == nil {
			t.Fatalf("denied peer got %q", buf[:n])
		}
		out := g.finish(t)
		if g.code != 0 || strings.Contains(out, "bad") || !strings.Contains(out, `[0] from 127.0.0.1:`) || !strings.Contains(out, `"good"`) {
			t.Fatalf("guest output:\n%s", out)
		}
	})
}
