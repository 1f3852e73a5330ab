package plugins

import (
	"context"
	"crypto/sha256"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// LoadSum is Load that also returns the SHA-256 of the manifest bytes it
// loaded (zero when the file could not be read), so that a reload's audit
// record names exactly the manifest it tried (docs/operations.md).
func LoadSum(ctx context.Context, path string, opts Options) (p *Policy, sum [sha256.Size]byte, err error) {
	data, err := readLimited(path, maxManifest)
	if err != nil {
		return nil, sum, &ManifestError{[]Problem{{File: path, Msg: err.Error()}}}
	}
	sum = sha256.Sum256(data)
	m, err := ParseManifestData(path, data, opts.builtins())
	if err != nil {
		return nil, sum, err
	}
	p, err = LoadManifest(ctx, m, opts)
	return p, sum, err
}

// Live is a loaded policy that can be replaced while guests use it (the
// reload of docs/operations.md): it is the network.Policy and the
// network.Resolver of a guest's network.Default, and each decision or
// lookup goes to the policy current when it starts.
//
// Swap replaces the policy atomically. A decision that started on the old
// chain finishes on it (it is neither lost nor decided again), and the old
// policy is closed when its last decision in flight is done, never before.
//
// A Live is safe for concurrent use.
type Live struct {
	cur atomic.Pointer[generation]
	mu  sync.Mutex // serialises Swap and Close

	// onClose, when set, is called after a policy was closed (tests).
	onClose func(*Policy)
}

// generation is one policy of a Live, with its decisions in flight.
type generation struct {
	p        *Policy
	resolver network.Resolver
	ttl      time.Duration

	inflight  atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
	onClose   func(*Policy)
}

// NewLive returns a Live deciding with p. The Live owns p from then on:
// Swap and Close close it.
func NewLive(p *Policy) *Live {
	l := &Live{}
	l.cur.Store(l.newGeneration(p))
	return l
}

func (l *Live) newGeneration(p *Policy) *generation {
	return &generation{p: p, resolver: p.Manifest.Resolver(), ttl: p.Manifest.NameTTL, onClose: l.onClose}
}

// Policy returns the current policy (for its Manifest; decide through the
// Live itself).
func (l *Live) Policy() *Policy { return l.cur.Load().p }

// Swap makes p the policy of every decision that starts from now on and
// returns the policy it replaced, which is closed once its decisions in
// flight are done: the caller must not use or close it. A Live that was
// closed closes p at once.
func (l *Live) Swap(p *Policy) (old *Policy) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.cur.Load()
	if g == nil {
		p.Close(context.Background())
		return nil
	}
	l.cur.Store(l.newGeneration(p))
	g.retire()
	return g.p
}

// Close retires the current policy: it is closed when its last decision
// is done. Decisions that start after Close deny (no policy).
func (l *Live) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if g := l.cur.Swap(nil); g != nil {
		g.retire()
	}
}

// acquire returns the current generation with a decision counted in
// flight (release it), or nil after Close. The count is taken before the
// generation is checked to still be current: a Swap that retired it in
// between may have seen no decision in flight and closed it, so the
// acquire starts over on the new one rather than use a closed chain.
func (l *Live) acquire() *generation {
	for {
		g := l.cur.Load()
		if g == nil {
			return nil
		}
		g.inflight.Add(1)
		if l.cur.Load() == g {
			return g
		}
		g.release()
	}
}

func (g *generation) release() {
	if g.inflight.Add(-1) == 0 && g.retired.Load() {
		g.close()
	}
}

func (g *generation) retire() {
	g.retired.Store(true)
	if g.inflight.Load() == 0 {
		g.close()
	}
}

func (g *generation) close() {
	g.closeOnce.Do(func() {
		g.p.Close(context.Background())
		if g.onClose != nil {
			g.onClose(g.p)
		}
	})
}

var (
	_ network.Policy    = (*Live)(nil)
	_ network.Explainer = (*Live)(nil)
	_ network.Resolver  = (*Live)(nil)
)

// Decide implements network.Policy on the current policy.
func (l *Live) Decide(ctx context.Context, req *network.Request) (network.Verdict, error) {
	d, err := l.DecideExplain(ctx, req)
	return d.Verdict, err
}

// DecideExplain implements network.Explainer on the current policy.
func (l *Live) DecideExplain(ctx context.Context, req *network.Request) (network.Decision, error) {
	g := l.acquire()
	if g == nil {
		return network.Decision{Verdict: policy.Deny("the policy was closed")}, nil
	}
	defer g.release()
	return g.p.Chain.DecideExplain(ctx, req)
}

// DecideOutcome is Chain.DecideOutcome on the current policy: the
// decision with what its audit record says. After Close it denies.
func (l *Live) DecideOutcome(ctx context.Context, req *network.Request) Outcome {
	g := l.acquire()
	if g == nil {
		d := network.Decision{Verdict: policy.Deny("the policy was closed")}
		return Outcome{Decision: d, Audit: "deny"}
	}
	defer g.release()
	return g.p.Chain.DecideOutcome(ctx, req)
}

// Lookup implements network.Resolver with the current manifest's [dns]
// resolver. Answers without a TTL get the manifest's [dns] ttl, so that a
// reload changes the binding TTL of later lookups too.
func (l *Live) Lookup(ctx context.Context, name string) ([]network.Answer, error) {
	g := l.cur.Load()
	if g == nil {
		return nil, &network.OpError{Op: "resolve", Net: "dns", Addr: name, Err: network.ErrNotFound}
	}
	answers, err := g.resolver.Lookup(ctx, name)
	if err != nil || g.ttl <= 0 {
		return answers, err
	}
	copied := false
	for i := range answers {
		if answers[i].TTL > 0 {
			continue
		}
		if !copied {
			answers = slices.Clone(answers) // the resolver's slice may be shared
			copied = true
		}
		answers[i].TTL = g.ttl
	}
	return answers, nil
}
