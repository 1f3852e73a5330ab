package plugins

import (
	"context"
	"testing"
)

// The per-guest instance cost of a compiled three-plugin policy
// (perGuestTOML: ratelimit, which is stateful, special-ranges and
// allowlist): BENCHMARKS.md, "Per-guest policy instance". Without
// OwnInstances a guest's Policy is a chain over the shared plugin
// instances; with it, the guest gets its own ratelimit instance.

func BenchmarkInstantiateThree(b *testing.B) {
	benchInstantiate(b, GuestOptions{Name: "g"})
}

func BenchmarkInstantiateThreeOwnInstances(b *testing.B) {
	benchInstantiate(b, GuestOptions{Name: "g", OwnInstances: true})
}

func BenchmarkInstantiateThreeDecideClose(b *testing.B) {
	benchInstantiateDecide(b, GuestOptions{Name: "g"})
}

func BenchmarkInstantiateThreeOwnInstancesDecideClose(b *testing.B) {
	benchInstantiateDecide(b, GuestOptions{Name: "g", OwnInstances: true})
}

// benchInstantiate is Instantiate alone (with OwnInstances, making the
// ratelimit instance and its _initialize, not deferred to the first
// decision). The policies are closed in batches outside the timer.
func benchInstantiate(b *testing.B, g GuestOptions) {
	c := compileTOML(b, perGuestTOML, Options{})
	ctx := context.Background()
	var open []*Policy
	closeAll := func() {
		for _, p := range open {
			p.Close(ctx)
		}
		open = open[:0]
	}
	defer closeAll()
	b.ReportAllocs()
	for b.Loop() {
		p, err := c.Instantiate(ctx, g)
		if err != nil {
			b.Fatal(err)
		}
		open = append(open, p)
		if len(open) == 64 {
			b.StopTimer()
			closeAll()
			b.StartTimer()
		}
	}
}

// benchInstantiateDecide is a guest's whole policy life with one
// decision: Instantiate, a first tcp.connect through all three plugins
// (nothing cached for this guest), Close. Each guest's connect is a
// minute after the last one's, so that guests sharing the ratelimit
// instance under one name stay inside its 2/1m budget.
func benchInstantiateDecide(b *testing.B, g GuestOptions) {
	c := compileTOML(b, perGuestTOML, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	var now int64
	for b.Loop() {
		p, err := c.Instantiate(ctx, g)
		if err != nil {
			b.Fatal(err)
		}
		now += 60_000
		if d, _ := p.DecideExplain(ctx, guestConnect(p, now)); !d.Allowed() {
			b.Fatal(d)
		}
		p.Close(ctx)
	}
}
