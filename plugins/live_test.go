package plugins

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
)

// countingHandler counts the audit records written through it.
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

const allowAllPlugin = `
default = "deny"
[[plugins]]
name = "all"
path = "MULTI"
timeout = "10s"
[plugins.config]
behave = "allowall"
`

// Swapping the policy under concurrent decisions: every decision finishes
// on a chain that is still open (a closed one would deny, "plugin is
// closed"), each writes exactly one audit record (none lost, none decided
// twice), and every replaced policy is closed exactly once, after its last
// decision. Run with -race.
func TestLiveSwapUnderLoad(t *testing.T) {
	var records atomic.Int64
	opts := Options{Audit: slog.New(countingHandler{&records}), CacheEntries: -1, PoolSize: 2}
	load := func() *Policy {
		p, err := loadTOMLErr(t, allowAllPlugin, opts)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var mu sync.Mutex
	closed := map[*Policy]int{}
	first := load()
	l := &Live{onClose: func(p *Policy) { mu.Lock(); closed[p]++; mu.Unlock() }}
	l.cur.Store(l.newGeneration(first))
	all := []*Policy{first}

	const workers, swaps = 6, 8
	var decided atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := connect("198.51.100.7", uint16(1000+w))
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, err := l.DecideExplain(context.Background(), req)
				decided.Add(1)
				if err != nil || !d.Allowed() {
					errs <- d.Reason
					return
				}
			}
		}()
	}
	for range swaps {
		time.Sleep(5 * time.Millisecond)
		p := load()
		all = append(all, p)
		if old := l.Swap(p); old != all[len(all)-2] {
			t.Errorf("Swap returned %p, want the previous policy", old)
		}
	}
	time.Sleep(5 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for r := range errs {
		t.Errorf("a decision denied during the swaps: %s", r)
	}
	l.Close()
	if d, r := decided.Load(), records.Load(); d != r || d == 0 {
		t.Errorf("%d decisions, %d audit records; want as many, more than 0", d, r)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, p := range all {
		if closed[p] != 1 {
			t.Errorf("policy %d closed %d times, want once", i, closed[p])
		}
	}
	// After Close nothing is decided by a closed chain: a deny.
	if d, _ := l.DecideExplain(context.Background(), connect("198.51.100.7", 1)); d.Allowed() {
		t.Error("a closed Live allowed")
	}
}

// A policy with a decision in flight is not closed by Swap, only when
// that decision returns.
func TestLiveClosesAfterLastDecision(t *testing.T) {
	opts := Options{CacheEntries: -1}
	p1, err := loadTOMLErr(t, allowAllPlugin, opts)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := loadTOMLErr(t, allowAllPlugin, opts)
	if err != nil {
		t.Fatal(err)
	}
	var closed atomic.Int32
	l := &Live{onClose: func(*Policy) { closed.Add(1) }}
	l.cur.Store(l.newGeneration(p1))
	g := l.acquire() // a decision in flight on p1
	l.Swap(p2)
	if closed.Load() != 0 {
		t.Fatal("the old policy was closed with a decision in flight")
	}
	if d, _ := g.p.Chain.DecideExplain(context.Background(), connect("198.51.100.7", 1)); !d.Allowed() {
		t.Errorf("the decision in flight was denied: %s", d.Reason)
	}
	g.release()
	if closed.Load() != 1 {
		t.Fatalf("the old policy was not closed after its last decision (%d)", closed.Load())
	}
	l.Close()
	if closed.Load() != 2 {
		t.Fatalf("Close did not close the current policy")
	}
}

// Lookup answers from the current manifest's [dns]: hosts and ttl change
// with a Swap.
func TestLiveLookup(t *testing.T) {
	manifest := func(addr, ttl string) *Policy {
		p, err := loadTOMLErr(t, `
[dns]
hosts = { "svc.test" = ["`+addr+`"] }
ttl = "`+ttl+`"
`, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	l := NewLive(manifest("192.0.2.1", "1m"))
	defer l.Close()
	ans, err := l.Lookup(context.Background(), "svc.test")
	if err != nil || len(ans) != 1 || ans[0].Addr != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("%v %v", ans, err)
	}
	if ans[0].TTL <= 0 {
		t.Errorf("TTL %v, want a positive TTL", ans[0].TTL)
	}
	l.Swap(manifest("192.0.2.2", "2m"))
	ans, err = l.Lookup(context.Background(), "svc.test")
	if err != nil || len(ans) != 1 || ans[0].Addr != netip.MustParseAddr("192.0.2.2") {
		t.Fatalf("after Swap: %v %v", ans, err)
	}
	if l.Policy().Manifest.NameTTL != 2*time.Minute {
		t.Errorf("Policy is not the swapped-in one")
	}
	// The Live is what a Default asks.
	d := &network.Default{Policy: l, Resolver: l}
	if _, err := d.ResolveAddresses(context.Background(), "svc.test"); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Errorf("a manifest without plugins allowed a lookup: %v", err)
	}
}
