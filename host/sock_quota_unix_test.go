//go:build unix

package host

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
)

// quotaGuest runs wasm with args on nw in the background, counting its
// poll_oneoff calls, and returns its output and the count.
func quotaGuest(t *testing.T, wasm []byte, nw *network.Default, args ...string) (*guestRun, *atomic.Int64) {
	t.Helper()
	polls := new(atomic.Int64)
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), pollCounterKey{}, polls), guestDeadline)
	g := &guestRun{out: newLines(), done: make(chan struct{}), cancel: cancel}
	cfg := NewConfig().WithNetwork(nw).WithArgs(append([]string{"guest"}, args...)...).
		WithStdout(g.out).WithStderr(g.out).WithCompilationCacheDir(sockCacheDir)
	go func() {
		defer close(g.done)
		g.code, g.err = Run(ctx, wasm, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		<-g.done
	})
	return g, polls
}

// quotaNet is a Default allowing loopback with quotas q.
func quotaNet(q network.Quotas) *network.Default {
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	nw.SetQuotas(q)
	return nw
}

// send_rate throttles a Go guest (non-blocking sockets, netpoll): all its
// bytes arrive intact, no sooner than the rate allows, and the guest waits
// in poll_oneoff rather than spinning on EAGAIN (the throttled socket is
// not reported writable before its tokens are there).
func TestQuotaSendRateGuest(t *testing.T) {
	const (
		rate  = 200 << 10
		burst = 20 << 10
		total = burst + rate // ≥ 1 s
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		n       int64
		elapsed time.Duration
		err     error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		start := time.Now()
		r := bufio.NewReader(c)
		var n int64
		for {
			b, err := r.ReadByte()
			if err == io.EOF {
				break
			}
			if err != nil {
				res <- result{n, 0, err}
				return
			}
			if b != byte(n%251) {
				res <- result{n, 0, fmt.Errorf("byte %d is %d, want %d", n, b, n%251)}
				return
			}
			n++
		}
		res <- result{n, time.Since(start), nil}
	}()
	nw := quotaNet(network.Quotas{SendRate: rate, SendBurst: burst})
	g, polls := quotaGuest(t, probeWasm(t), nw, "sendpattern", ln.Addr().String(), fmt.Sprint(total))
	out := g.finish(t)
	if g.err != nil || g.code != 0 || !strings.Contains(out, fmt.Sprintf("sent %d <nil>", total)) {
		t.Fatalf("guest: %v, code %d:\n%s", g.err, g.code, out)
	}
	r := <-res
	if r.err != nil || r.n != total {
		t.Fatalf("server got %d bytes: %v", r.n, r.err)
	}
	if want := time.Duration(float64(total-burst) / rate * float64(time.Second)); r.elapsed < want-20*time.Millisecond {
		t.Errorf("%d bytes at %d B/s (burst %d) took %v, want ≥ %v", total, rate, burst, r.elapsed, want)
	}
	// Waits are 10 ms worth of tokens: ~100 a second, plus the guest's
	// own polls; a spinning guest makes tens of thousands.
	if n := polls.Load(); n > 2000 {
		t.Errorf("guest polled %d times in %v: spinning on the throttle", n, r.elapsed)
	}
	if th := nw.QuotaCounters().ThrottledOut; th < 500*time.Millisecond {
		t.Errorf("ThrottledOut = %v, want most of the run", th)
	}
	t.Logf("%d bytes in %v, %d polls, throttled %v", r.n, r.elapsed, polls.Load(), nw.QuotaCounters().ThrottledOut)
}

// recv_rate throttles a C guest with blocking sockets (the host waits for
// the tokens inside sock_recv): the echo comes back whole, no sooner than
// the rate allows.
func TestQuotaRecvRateGuest(t *testing.T) {
	const (
		rate  = 200 << 10
		burst = 20 << 10
		total = burst + rate
	)
	nw := quotaNet(network.Quotas{RecvRate: rate, RecvBurst: burst})
	g, _ := quotaGuest(t, cGuest(t, "cserver"), nw, "echoloop")
	addr := strings.TrimPrefix(strings.TrimSpace(g.out.wait(t, "[0] listening ", time.Minute)), "[0] listening ")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	start := time.Now()
	sent := make([]byte, total)
	for i := range sent {
		sent[i] = byte(i % 251)
	}
	cpu0 := processCPU(t)
	werr := make(chan error, 1)
	go func() { _, err := c.Write(sent); werr <- err }()
	got := make([]byte, total)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo: %v", err)
	}
	elapsed := time.Since(start)
	cpu := processCPU(t) - cpu0
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != sent[i] {
			t.Fatalf("echo byte %d is %d, want %d", i, got[i], sent[i])
		}
	}
	if want := time.Duration(float64(total-burst) / rate * float64(time.Second)); elapsed < want-20*time.Millisecond {
		t.Errorf("%d bytes at %d B/s (burst %d) took %v, want ≥ %v", total, rate, burst, elapsed, want)
	}
	// The guest sleeps while throttled: a guest retrying on EAGAIN (its
	// fd is readable all along) would burn the whole second.
	if cpu > elapsed/2 {
		t.Errorf("%v of CPU in %v: the throttled guest spins", cpu, elapsed)
	}
	t.Logf("%d bytes echoed in %v (%v CPU), throttled %v", total, elapsed, cpu, nw.QuotaCounters().ThrottledIn)
}

// processCPU is this process's user and system CPU time so far.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The refusing quotas as a Go guest sees them: a connect over
// connect_rate fails with ECONNREFUSED; a lookup over dns_rate fails, by
// sock_getaddrinfo and by the DNS stub alike; past send_total a write
// fails with EDQUOT.
func TestQuotaRefusalsGuest(t *testing.T) {
	addr := tcpEcho(t)
	t.Run("connect_rate", func(t *testing.T) {
		nw := quotaNet(network.Quotas{ConnectRate: 0.01, ConnectBurst: 1})
		var refusals atomic.Int32
		nw.OnQuota = func(q network.QuotaRefusal) { refusals.Add(1) }
		out, _ := runGuest(t, probeWasm(t), NewConfig().WithNetwork(nw), "dial", addr, "--", "dial", addr)
		if !strings.Contains(out, "[0] connected") || !strings.Contains(out, "[1] error:") || !strings.Contains(strings.ToLower(out), "connection refused") {
			t.Fatalf("want the 2nd dial refused:\n%s", out)
		}
		if refusals.Load() != 1 {
			t.Errorf("%d refusals reported, want 1", refusals.Load())
		}
	})
	t.Run("max_conns_out", func(t *testing.T) {
		nw := quotaNet(network.Quotas{MaxConnsOut: 2})
		out, _ := runGuest(t, probeWasm(t), NewConfig().WithNetwork(nw), "dialmany", addr, "3")
		if !strings.Contains(strings.ToLower(out), "connection refused") {
			t.Fatalf("want a 3rd concurrent connection refused:\n%s", out)
		}
	})
	t.Run("dns_rate", func(t *testing.T) {
		nw := quotaNet(network.Quotas{DNSRate: 0.01, DNSBurst: 1})
		nw.Resolver = staticResolver{"svc.test": "127.0.0.1"}
		out, _ := runGuest(t, probeWasm(t), NewConfig().WithNetwork(nw),
			"lookup", "svc.test", "--", "lookup", "svc.test", "--", "golookup", "svc.test")
		if !strings.Contains(out, "[0] addrs 127.0.0.1") || !strings.Contains(out, "[1] error:") || !strings.Contains(out, "[2] error:") {
			t.Fatalf("want the lookups after the first refused:\n%s", out)
		}
		// EAI_AGAIN (78) from sock_getaddrinfo, SERVFAIL from the stub.
		if !strings.Contains(out, "[1] error: lookup svc.test: getaddrinfo error 78") || !strings.Contains(out, "server misbehaving") {
			t.Errorf("want EAI_AGAIN and SERVFAIL:\n%s", out)
		}
	})
	t.Run("send_total", func(t *testing.T) {
		nw := quotaNet(network.Quotas{SendTotal: 100 << 10})
		out, _ := runGuest(t, probeWasm(t), NewConfig().WithNetwork(nw), "sendpattern", addr, fmt.Sprint(1<<20))
		if !strings.Contains(out, fmt.Sprintf("[0] sent %d ", 100<<10)) || !strings.Contains(out, "Quota exceeded") {
			t.Fatalf("want exactly send_total bytes sent, then EDQUOT:\n%s", out)
		}
	})
}

// max_conns_in and accept_rate on a Go server guest: a client past the
// cap is reset at once, the guest sees nothing of it and goes on serving;
// when a connection closes, the next client is served.
func TestQuotaAcceptGuest(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    network.Quotas
	}{
		{"max_conns_in", network.Quotas{MaxConnsIn: 1}},
		{"accept_rate", network.Quotas{AcceptRate: 2, AcceptBurst: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nw := quotaNet(tc.q)
			var refused atomic.Int32
			nw.OnQuota = func(q network.QuotaRefusal) {
				if q.Quota == tc.name {
					refused.Add(1)
				}
			}
			g, _ := quotaGuest(t, probeWasm(t), nw, "echoserve", "127.0.0.1:0", "-1")
			addr := strings.TrimPrefix(strings.TrimSpace(g.out.wait(t, "[0] listening ", time.Minute)), "[0] listening ")
			echo := func(c net.Conn) error {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte("hi")); err != nil {
					return err
				}
				buf := make([]byte, 2)
				_, err := io.ReadFull(c, buf)
				return err
			}
			first, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := echo(first); err != nil {
				t.Fatalf("first client: %v", err)
			}
			start := time.Now()
			second, err := net.Dial("tcp", addr)
			if err == nil {
				defer second.Close()
				err = echo(second)
			} // else: reset before the dial saw it complete
			if err == nil {
				t.Fatal("the client past the quota was served")
			} else if time.Since(start) > 5*time.Second {
				t.Fatalf("the client past the quota hung: %v", err)
			}
			first.Close()
			// Once the guest has closed its end (and, for accept_rate
			// 2/s, a token later) the next client is served; until
			// then clients are reset, so try again for a while.
			time.Sleep(500 * time.Millisecond)
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				third, err := net.Dial("tcp", addr)
				if err == nil {
					err = echo(third)
					third.Close()
				}
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no client served after the close: %v; guest:\n%s", err, g.out.String())
				}
			}
			if refused.Load() == 0 {
				t.Error("no refusal reported")
			}
			if strings.Contains(g.out.String(), "error") {
				t.Errorf("the guest saw an error:\n%s", g.out.String())
			}
		})
	}
}

// staticResolver answers names from a map, one address each.
type staticResolver map[string]string

func (r staticResolver) Lookup(ctx context.Context, name string) ([]network.Answer, error) {
	a, ok := r[name]
	if !ok {
		return nil, network.ErrNotFound
	}
	return []network.Answer{{Addr: netip.MustParseAddr(a)}}, nil
}
