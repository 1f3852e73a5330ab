package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/network"
)

// patternSink accepts one connection on loopback, checks that it carries
// the probe's pattern (byte i is i % 251) and reports how many bytes came
// and how long they took from the first.
type sinkResult struct {
	n       int64
	elapsed time.Duration
	err     error
}

func patternSink(t *testing.T) (int, <-chan sinkResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	res := make(chan sinkResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- sinkResult{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReader(c)
		var n int64
		var start time.Time
		for {
			b, err := r.ReadByte()
			if n == 0 {
				start = time.Now()
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				res <- sinkResult{n, 0, err}
				return
			}
			if b != byte(n%251) {
				res <- sinkResult{n, 0, fmt.Errorf("byte %d is %d, want %d", n, b, n%251)}
				return
			}
			n++
		}
		res <- sinkResult{n, time.Since(start), nil}
	}()
	return ln.Addr().(*net.TCPAddr).Port, res
}

// `wasmgate run` enforces the manifest's quotas: over send_rate the guest
// is throttled (all its bytes arrive intact, no sooner than the rate
// allows); over send_total it gets EDQUOT after exactly the total, with
// an audit record, a stderr line and the metric.
func TestRunQuotas(t *testing.T) {
	wasm := guestWasm(t, "probe")
	dir := t.TempDir()
	t.Run("send_rate", func(t *testing.T) {
		const rate, burst = 200 << 10, 20 << 10
		port, res := patternSink(t)
		manifest := filepath.Join(dir, "rate.toml")
		writeFile(t, manifest, echoManifest(port, true, "", `[limits]
send_rate = "200KiB"
send_burst = "20KiB"`))
		total := burst + rate
		code, out, errOut := runCLI(t, "", "run", "--policy", manifest, wasm, "sendpattern", fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprint(total))
		if code != 0 || !strings.Contains(out, fmt.Sprintf("sent %d <nil>", total)) {
			t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
		}
		r := <-res
		if r.err != nil || r.n != int64(total) {
			t.Fatalf("sink got %d bytes: %v", r.n, r.err)
		}
		if want := time.Second - 20*time.Millisecond; r.elapsed < want {
			t.Errorf("%d bytes at send_rate 200KiB (burst 20KiB) took %v, want ≥ 1s", total, r.elapsed)
		}
	})
	t.Run("send_total", func(t *testing.T) {
		port, res := patternSink(t)
		manifest, auditPath := filepath.Join(dir, "total.toml"), filepath.Join(dir, "audit.jsonl")
		writeFile(t, manifest, echoManifest(port, true, "", `[limits]
send_total = "64KiB"`))
		code, out, errOut := runCLI(t, "", "run", "--policy", manifest, "--audit", auditPath, wasm,
			"sendpattern", fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprint(1<<20))
		if !strings.Contains(out, fmt.Sprintf("sent %d ", 64<<10)) || !strings.Contains(out, "Quota exceeded") {
			t.Fatalf("exit %d: want 64KiB sent, then EDQUOT:\n%s\n%s", code, out, errOut)
		}
		if r := <-res; r.err != nil || r.n != 64<<10 {
			t.Fatalf("sink got %d bytes: %v", r.n, r.err)
		}
		if !strings.Contains(errOut, "wasmgate: quota send_total exceeded (tcp.send 127.0.0.1:") || !strings.Contains(errOut, "the guest gets EDQUOT") {
			t.Errorf("stderr lacks the quota line:\n%s", errOut)
		}
		recs := auditOf(t, auditPath, "quota")
		if len(recs) == 0 {
			t.Fatal("no quota audit record")
		}
		r := recs[0]
		if r["quota"] != "send_total" || r["reason"] != "quota send_total exceeded" || r["errno"] != "EDQUOT" ||
			r["op"] != "tcp.send" || r["addr"] != "127.0.0.1" || r["port"] != float64(port) {
			t.Errorf("audit record %v", r)
		}
	})
}

// `wasmgate check` refuses bad quota keys with file:line, like every
// other manifest problem.
func TestCheckQuotas(t *testing.T) {
	manifest := filepath.Join(t.TempDir(), "q.toml")
	writeFile(t, manifest, `default = "deny"

[limits]
connect_burst = 5
send_rate = "fast"
max_conns_in = 3
`)
	code, _, errOut := runCLI(t, "", "check", manifest)
	for _, want := range []string{
		manifest + ":4: limits.connect_burst: is a burst of connect_rate, which is not set",
		manifest + `:5: limits.send_rate: "fast" is not a size`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("check output lacks %q:\n%s", want, errOut)
		}
	}
	if code == 0 || strings.Contains(errOut, "max_conns_in") {
		t.Errorf("exit %d:\n%s", code, errOut)
	}
}

// A reload applies the new [limits] quotas to the running guest's
// network, keeping a bucket whose rate is unchanged; a failed reload
// leaves them alone.
func TestReloadQuotas(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "policy.toml")
	writeFile(t, manifest, "default = \"allow\"\n[limits]\ndns_rate = 1\ndns_burst = 1\n")
	var errb syncBuf
	d, _, rel, release, err := guestNetwork(context.Background(), manifest, "", "g", true, slog.New(slog.DiscardHandler), nil, &errb)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if q := d.Quotas(); q.DNSRate != 1 || q.DNSBurst != 1 {
		t.Fatalf("quotas at start %+v", q)
	}
	var refused atomic.Int32
	d.OnQuota = func(network.QuotaRefusal) { refused.Add(1) }
	d.Resolver = staticResolver{}
	ctx := context.Background()
	d.ResolveAddresses(ctx, "a.invalid")
	d.ResolveAddresses(ctx, "a.invalid")
	if refused.Load() != 1 {
		t.Fatalf("%d refusals before the reload, want 1", refused.Load())
	}
	writeFile(t, manifest, "default = \"allow\"\n[limits]\ndns_rate = 1\ndns_burst = 1\nmax_conns_out = 4\n")
	if err := rel.reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if q := d.Quotas(); q.MaxConnsOut != 4 {
		t.Fatalf("quotas after reload %+v", q)
	}
	d.ResolveAddresses(ctx, "a.invalid")
	if refused.Load() != 2 {
		t.Fatal("the unchanged dns_rate bucket was refilled by the reload")
	}
	writeFile(t, manifest, "default = \"maybe\"\n")
	rel.reload(ctx, "test")
	if q := d.Quotas(); q.MaxConnsOut != 4 || q.DNSRate != 1 {
		t.Fatalf("a failed reload changed the quotas: %+v", q)
	}
}

// The metrics pre-create a series for every quota that refuses.
func TestQuotaMetricNames(t *testing.T) {
	m := metrics.New()
	for _, q := range network.QuotaNames {
		m.QuotaRefusal(q)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wasmgate_quota_refusals_total" {
			continue
		}
		if len(mf.GetMetric()) != len(network.QuotaNames) {
			t.Fatalf("%d series for %d quotas: the names differ", len(mf.GetMetric()), len(network.QuotaNames))
		}
		return
	}
	t.Fatal("no wasmgate_quota_refusals_total")
}

// staticResolver knows no names: lookups fail after the quota, which is
// all these tests need (and no query leaves the machine).
type staticResolver struct{}

func (staticResolver) Lookup(ctx context.Context, name string) ([]network.Answer, error) {
	return nil, network.ErrNotFound
}
