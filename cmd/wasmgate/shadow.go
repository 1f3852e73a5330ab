package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins"
)

// maxShadowInFlight bounds the shadow decisions running at once
// (docs/operations.md#shadow): past it, shadow decisions are skipped
// rather than queued, so a slow candidate never holds memory or the guest.
const maxShadowInFlight = 64

// shadowPolicy is the guest's policy with a candidate chain beside it
// (`run --shadow`): every decision is made by the enforced policy, whose
// verdict alone counts, and then, in the background, by the candidate,
// whose records go to the audit log marked "shadow": true and, where its
// verdict differs, "diverged": true.
type shadowPolicy struct {
	enforced network.Explainer
	// path is the candidate manifest; shadow decides with the candidate
	// in force, which a reload replaces (docs/operations.md#shadow).
	path   string
	shadow *plugins.Live
	mets   *metrics.Metrics // nil: none
	stderr io.Writer

	sem      chan struct{}
	mu       sync.RWMutex // guards closed against wg.Add
	closed   bool
	wg       sync.WaitGroup
	warnOnce sync.Once
}

var _ network.Explainer = (*shadowPolicy)(nil)

// enforcedKey carries the enforced verdict to the shadow chain's audit
// handler.
type enforcedKey struct{}

func (s *shadowPolicy) Decide(ctx context.Context, req *network.Request) (network.Verdict, error) {
	d, err := s.DecideExplain(ctx, req)
	return d.Verdict, err
}

// DecideExplain decides with the enforced policy and starts the shadow
// decision of the same request. Nothing of the shadow's reaches the
// caller: not its verdict, not its failures, not its time.
func (s *shadowPolicy) DecideExplain(ctx context.Context, req *network.Request) (network.Decision, error) {
	d, err := s.enforced.DecideExplain(ctx, req)
	allowed := err == nil && d.Allowed()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return d, err
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.warnOnce.Do(func() {
			fmt.Fprintf(s.stderr, "wasmgate: --shadow: %d shadow decisions in flight; skipping shadow decisions until they finish\n", maxShadowInFlight)
		})
		return d, err
	}
	// The request is copied: the caller may reuse it. Its slices are
	// never written after a decision.
	r := *req
	sctx := context.WithValue(context.WithoutCancel(ctx), enforcedKey{}, allowed)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		o := s.shadow.DecideOutcome(sctx, &r)
		if o.Verdict.Allowed() != allowed && s.mets != nil {
			s.mets.ShadowDivergence()
		}
	}()
	return d, err
}

// close waits for the shadow decisions in flight, then closes the
// candidate's plugins.
func (s *shadowPolicy) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	s.shadow.Close()
}

// shadowAudit marks the shadow chain's audit records: "shadow": true,
// and "diverged": whether its verdict (allow and would_deny let the
// operation through, deny does not) differs from the enforced one.
type shadowAudit struct{ slog.Handler }

func (h shadowAudit) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(slog.Bool("shadow", true))
	if enforcedAllowed, ok := ctx.Value(enforcedKey{}).(bool); ok {
		shadowAllowed := true
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "verdict" {
				shadowAllowed = a.Value.String() != "deny"
				return false
			}
			return true
		})
		r.AddAttrs(slog.Bool("diverged", shadowAllowed != enforcedAllowed))
	}
	return h.Handler.Handle(ctx, r)
}

func (h shadowAudit) WithAttrs(as []slog.Attr) slog.Handler {
	return shadowAudit{h.Handler.WithAttrs(as)}
}

func (h shadowAudit) WithGroup(name string) slog.Handler {
	return shadowAudit{h.Handler.WithGroup(name)}
}

// loadShadow loads the --shadow manifest (only its chain: default, mode
// and plugins) with opts, its audit records marked by shadowAudit and its
// decisions kept out of the decision metrics.
func loadShadow(ctx context.Context, path string, opts plugins.Options) (*plugins.Policy, error) {
	return loadPolicy(ctx, path, shadowOptions(opts))
}

// shadowOptions are the enforced policy's load options as the candidate
// uses them: audit records marked, no decision metrics.
func shadowOptions(opts plugins.Options) plugins.Options {
	if opts.Audit != nil {
		opts.Audit = slog.New(shadowAudit{opts.Audit.Handler()})
	}
	opts.Metrics = nil
	return opts
}

// reload loads the candidate again and swaps it in, like the enforced
// policy's reload; a failure keeps the candidate in force. It returns
// the manifest's sha256 (hex, empty when unread).
func (s *shadowPolicy) reload(ctx context.Context, opts plugins.Options) (string, error) {
	if strings.HasPrefix(s.path, ociScheme) {
		return "", errPinned
	}
	p, sum, err := plugins.LoadSum(ctx, s.path, shadowOptions(opts))
	hexSum := ""
	if sum != [32]byte{} {
		hexSum = hex.EncodeToString(sum[:])
	}
	if err != nil {
		return hexSum, err
	}
	s.shadow.Swap(p)
	return hexSum, nil
}
