package plugins

import (
	"context"

	"github.com/wasmgate/wasmgate/network"
)

// Decide makes a loaded manifest a network.Policy: it decides with its
// chain, so a *Policy can be given to network.Default or combined with Go
// policies (network.All) directly.
func (p *Policy) Decide(ctx context.Context, req *network.Request) (network.Verdict, error) {
	return p.Chain.Decide(ctx, req)
}

// DecideExplain implements network.Explainer: the decision names the
// plugin that decided.
func (p *Policy) DecideExplain(ctx context.Context, req *network.Request) (network.Decision, error) {
	return p.Chain.DecideExplain(ctx, req)
}

var (
	_ network.Policy    = (*Policy)(nil)
	_ network.Explainer = (*Policy)(nil)
)
