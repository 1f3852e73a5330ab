package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins/builtin"
	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
)

// perGuestTOML is the three-plugin policy of the per-guest tests and
// benchmarks: a stateful ratelimit (two connects a minute), the special
// ranges and a cached allowlist.
const perGuestTOML = `
[guest]
name = "app"
labels = { tier = "web" }
[[plugins]]
name = "limit"
use = "ratelimit"
timeout = "10s"
[plugins.config]
limits = { "tcp.connect" = "2/1m" }
[[plugins]]
name = "no-special-ranges"
use = "special-ranges"
[plugins.config]
except = ["198.51.100.0/24"]
[[plugins]]
name = "egress"
use = "allowlist"
[plugins.config]
rules = ["tcp://api.example.test:443"]
cache_ttl = "1h"
`

func compileTOML(t testing.TB, text string, opts Options) *CompiledPolicy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if opts.CompilationCache == nil {
		opts.CompilationCache = testbuild.Cache()
	}
	if opts.Builtins == nil {
		opts.Builtins = builtin.Lookup
	}
	c, err := Compile(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func instantiate(t testing.TB, c *CompiledPolicy, g GuestOptions) *Policy {
	t.Helper()
	p, err := c.Instantiate(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// guestConnect is a connect by p's guest, as its NewDefault makes it.
func guestConnect(p *Policy, timeMs int64) *network.Request {
	r := connect("198.51.100.10", 443)
	r.Guest, r.Labels, r.TimeMs = p.Manifest.Guest, p.Manifest.Labels, timeMs
	return r
}

// TestCompiledRatelimitPerGuest: each guest instantiated from one compiled
// policy has its own ratelimit budget: by its own guest name, which
// reaches the plugins, or, with OwnInstances, by its own instance, also
// under the name of another guest.
func TestCompiledRatelimitPerGuest(t *testing.T) {
	c := compileTOML(t, perGuestTOML, Options{})
	ctx := context.Background()
	a := instantiate(t, c, GuestOptions{Name: "a"})
	b := instantiate(t, c, GuestOptions{Name: "b"})
	sameName := instantiate(t, c, GuestOptions{Name: "a"})
	own := instantiate(t, c, GuestOptions{Name: "a", OwnInstances: true})
	if a.Manifest.Guest != "a" || b.Manifest.Guest != "b" || c.Manifest.Guest != "app" {
		t.Fatalf("guest names %q %q, compiled %q", a.Manifest.Guest, b.Manifest.Guest, c.Manifest.Guest)
	}
	if d := a.NewDefault(nil); d.Guest != "a" || d.Labels["tier"] != "web" {
		t.Fatalf("NewDefault: guest %q labels %v", d.Guest, d.Labels)
	}
	for i := range 2 {
		if d, _ := a.DecideExplain(ctx, guestConnect(a, int64(1000+i))); !d.Allowed() {
			t.Fatalf("a's connect %d: %+v", i, d)
		}
	}
	d, _ := a.DecideExplain(ctx, guestConnect(a, 1002))
	if d.Allowed() || d.Plugin != "limit" || !strings.Contains(d.Reason, `guest "a" exceeded`) {
		t.Fatalf("a's third connect: %+v", d)
	}
	for _, p := range []*Policy{b, own} {
		for i := range 2 {
			if d, _ := p.DecideExplain(ctx, guestConnect(p, int64(1003+i))); !d.Allowed() {
				t.Fatalf("%s (own instances %v): connect %d after a's budget ran out: %+v", p.Manifest.Guest, len(p.own) > 0, i, d)
			}
		}
	}
	// A guest of the same name without instances of its own is the same
	// guest to the shared ratelimit instance (GuestOptions.OwnInstances).
	if d, _ := sameName.DecideExplain(ctx, guestConnect(sameName, 1005)); d.Allowed() {
		t.Fatalf("a's namesake: %+v", d)
	}
	if len(own.own) != 1 || len(a.own) != 0 {
		t.Fatalf("own instances: %d, a's %d", len(own.own), len(a.own))
	}
}

// TestCompiledCachePerGuest: a verdict cached for one guest is not another
// guest's, even under the same guest name.
func TestCompiledCachePerGuest(t *testing.T) {
	c := compileTOML(t, perGuestTOML, Options{})
	a := instantiate(t, c, GuestOptions{Name: "same"})
	b := instantiate(t, c, GuestOptions{Name: "same"})
	ctx := context.Background()
	entries := func(p *Policy) int {
		p.Chain.cache.mu.RLock()
		defer p.Chain.cache.mu.RUnlock()
		return len(p.Chain.cache.m)
	}
	if d, _ := a.DecideExplain(ctx, guestConnect(a, 5000)); !d.Allowed() {
		t.Fatal(d)
	}
	// The cacheable verdicts (allowlist, special-ranges) are in a's cache
	// only.
	na := entries(a)
	if nb := entries(b); na == 0 || nb != 0 {
		t.Fatalf("after a's decision: a's cache has %d entries, b's %d", na, nb)
	}
	if d, _ := b.DecideExplain(ctx, guestConnect(b, 5001)); !d.Allowed() {
		t.Fatal(d)
	}
	if nb := entries(b); entries(a) != na || nb != na {
		t.Fatalf("after b's decision: a's cache has %d entries, b's %d", na, nb)
	}
	if nc := instantiate(t, c, GuestOptions{CacheEntries: -1}); nc.Chain.cache != nil {
		t.Fatal("CacheEntries -1 has a cache")
	}
}

// TestCompiledAuditPerGuest: each guest's records go to its own logger
// with its own attributes; a guest without one uses Options.Audit.
func TestCompiledAuditPerGuest(t *testing.T) {
	var shared, own bytes.Buffer
	c := compileTOML(t, perGuestTOML, Options{Audit: slog.New(slog.NewJSONHandler(&shared, nil))})
	a := instantiate(t, c, GuestOptions{Name: "a", AuditAttrs: []slog.Attr{slog.String("tenant", "t-a")}})
	b := instantiate(t, c, GuestOptions{Name: "b", Labels: map[string]string{},
		Audit: slog.New(slog.NewJSONHandler(&own, nil)), AuditAttrs: []slog.Attr{slog.String("tenant", "t-b")}})
	ctx := context.Background()
	a.Decide(ctx, guestConnect(a, 1))
	b.Decide(ctx, guestConnect(b, 1))
	if len(b.Manifest.Labels) != 0 {
		t.Errorf("b's labels: %v", b.Manifest.Labels)
	}
	check := func(buf *bytes.Buffer, guest, tenant string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 1 {
			t.Fatalf("%s: %d records: %s", guest, len(lines), buf)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["guest"] != guest || rec["tenant"] != tenant || rec["verdict"] != "allow" || rec["msg"] != "decision" {
			t.Errorf("%s's record: %v", guest, rec)
		}
	}
	check(&shared, "a", "t-a")
	check(&own, "b", "t-b")
}

// TestCompiledClose: closing one guest's policy leaves the others working
// and makes its own decisions deny (cached verdicts too); closing the
// compiled policy stops Instantiate but not the open policies, and its
// code is released with the last of them.
func TestCompiledClose(t *testing.T) {
	c := compileTOML(t, perGuestTOML, Options{})
	ctx := context.Background()
	a := instantiate(t, c, GuestOptions{Name: "a"})
	b := instantiate(t, c, GuestOptions{Name: "b"})
	if d, _ := a.DecideExplain(ctx, guestConnect(a, 1)); !d.Allowed() {
		t.Fatal(d)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a.Close(ctx) // again: nothing
	if d, _ := a.DecideExplain(ctx, guestConnect(a, 2)); d.Allowed() || d.Reason != "the policy was closed" {
		t.Fatalf("closed a: %+v", d)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Instantiate(ctx, GuestOptions{}); err == nil {
		t.Fatal("Instantiate after Close")
	}
	for i := range 2 {
		if d, _ := b.DecideExplain(ctx, guestConnect(b, int64(3+i))); !d.Allowed() {
			t.Fatalf("b after a and the compiled policy were closed: %+v", d)
		}
	}
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done {
		t.Fatal("compiled code released while b is open")
	}
	b.Close(ctx)
	c.mu.Lock()
	done = c.done
	c.mu.Unlock()
	if !done {
		t.Fatal("compiled code not released after the last policy was closed")
	}
}

// TestCompiledConcurrent: guests instantiated, used and closed at the same
// time (run under -race) each get their own budget.
func TestCompiledConcurrent(t *testing.T) {
	c := compileTOML(t, perGuestTOML, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half share the ratelimit instance under names of their
			// own, half have their own instance under one name.
			opts := GuestOptions{Name: fmt.Sprintf("g%d", g)}
			if g%2 == 1 {
				opts = GuestOptions{Name: "g", OwnInstances: true}
			}
			p, err := c.Instantiate(ctx, opts)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer p.Close(ctx)
			for i := range 3 {
				d, _ := p.DecideExplain(ctx, guestConnect(p, int64(100+i)))
				if d.Allowed() != (i < 2) {
					errs <- fmt.Sprintf("connect %d: %+v", i, d)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestLoadIsOneInstance: a Load's policy is a compiled policy's only
// instance, for the manifest's guest, and closing it releases everything.
func TestLoadIsOneInstance(t *testing.T) {
	p, err := loadTOMLErr(t, perGuestTOML, Options{Builtins: builtin.Lookup})
	if err != nil {
		t.Fatal(err)
	}
	if p.Manifest.Guest != "app" || p.Manifest.Labels["tier"] != "web" {
		t.Fatalf("guest %q, labels %v", p.Manifest.Guest, p.Manifest.Labels)
	}
	for i, pl := range p.Chain.plugins {
		if pl != p.Compiled().plugins[i] {
			t.Fatalf("plugin %s is not the compiled policy's", pl.name)
		}
	}
	c := p.Compiled()
	p.Close(context.Background())
	if !c.done {
		t.Fatal("Load's policy closed without releasing its compiled policy")
	}
}

// TestCompiledCloseDeniesShared: a closed guest's policy denies even when
// every plugin it has is shared with open guests (stateless) and its
// verdict is cached.
func TestCompiledCloseDeniesShared(t *testing.T) {
	c := compileTOML(t, `
[[plugins]]
name = "egress"
use = "allowlist"
[plugins.config]
rules = ["tcp://api.example.test:443"]
cache_ttl = "1h"
`, Options{})
	ctx := context.Background()
	a := instantiate(t, c, GuestOptions{Name: "a"})
	b := instantiate(t, c, GuestOptions{Name: "b"})
	if d, _ := a.DecideExplain(ctx, guestConnect(a, 1)); !d.Allowed() {
		t.Fatal(d)
	}
	a.Close(ctx)
	if d, _ := a.DecideExplain(ctx, guestConnect(a, 2)); d.Allowed() || d.Reason != "the policy was closed" {
		t.Fatalf("closed a: %+v", d)
	}
	if d, _ := b.DecideExplain(ctx, guestConnect(b, 3)); !d.Allowed() {
		t.Fatalf("b after a was closed: %+v", d)
	}
}
