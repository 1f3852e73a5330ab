package network

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// AuditEntry is what an audit record says about a decision besides the
// request (docs/manifest.md, "Audit records").
type AuditEntry struct {
	// Verdict is "allow", "deny" or "would_deny" (report mode: denied by
	// the policy, allowed anyway).
	Verdict string
	// Plugin names what decided; empty when no single plugin did.
	Plugin string
	Reason string
	// Cached is true when the verdict came from a cache and nothing ran.
	Cached bool
	// Duration is how long deciding took; written in whole microseconds,
	// 0 when it is unknown or negative (a cached verdict).
	Duration time.Duration
}

// WriteAudit writes one audit record for the decision of r to l, at level
// Info with message "decision", in the format of wasmgate's audit log
// (docs/manifest.md, "Audit records"): the plugin chain writes its records
// with it, and any other Policy can, through Audited.
func WriteAudit(ctx context.Context, l *slog.Logger, r *Request, e AuditEntry) {
	names := r.Names
	if names == nil {
		names = []string{}
	}
	addr := ""
	if r.Addr.IsValid() {
		addr = r.Addr.String()
	}
	us := max(e.Duration.Microseconds(), 0)
	attrs := make([]slog.Attr, 0, 13)
	attrs = append(attrs,
		slog.String("guest", r.Guest),
		slog.String("op", string(r.Op)),
		slog.String("proto", r.Proto),
		slog.String("addr", addr),
		slog.Int("port", int(r.Port)),
		slog.Any("names", names),
	)
	if r.Name != "" {
		attrs = append(attrs, slog.String("name", r.Name))
	}
	if r.Local.IsValid() {
		attrs = append(attrs, slog.String("local", r.Local.String()))
	}
	attrs = append(attrs,
		slog.String("verdict", e.Verdict),
		slog.String("plugin", e.Plugin),
		slog.String("reason", e.Reason),
		slog.Bool("cached", e.Cached),
		slog.Int64("duration_us", us),
	)
	l.LogAttrs(ctx, slog.LevelInfo, "decision", attrs...)
}

// Audited returns a Policy that decides with p and writes one audit
// record per decision to l (WriteAudit): the audit log of wasmgate's
// plugin chain, for a Go policy. A verdict is "allow" only when p allowed
// with a nil error; anything else is recorded as "deny" (what Default
// does with it), with the error as the reason when p failed. The plugin
// named is the one p's Explainer reports, if p has one.
//
// Do not wrap a plugin chain that audits itself (plugins.Options.Audit),
// or its decisions are recorded twice.
func Audited(p Policy, l *slog.Logger) Policy {
	return &audited{p: p, l: l}
}

type audited struct {
	p Policy
	l *slog.Logger
}

func (a *audited) Decide(ctx context.Context, req *Request) (Verdict, error) {
	d, err := a.DecideExplain(ctx, req)
	return d.Verdict, err
}

func (a *audited) DecideExplain(ctx context.Context, req *Request) (Decision, error) {
	start := time.Now()
	d, err := safeExplain(ctx, a.p, req)
	e := AuditEntry{Verdict: "deny", Plugin: d.Plugin, Reason: d.Reason, Duration: time.Since(start)}
	switch {
	case err != nil:
		e.Reason = err.Error()
	case d.Allowed():
		e.Verdict = "allow"
	}
	WriteAudit(ctx, a.l, req, e)
	return d, err
}

// safeExplain is explain with a panic of p turned into an error, so that
// the decision is still recorded (as a deny).
func safeExplain(ctx context.Context, p Policy, req *Request) (d Decision, err error) {
	defer func() {
		if r := recover(); r != nil {
			d, err = Decision{}, fmt.Errorf("policy panicked: %v", r)
		}
	}()
	return explain(ctx, p, req)
}

// explain asks p, through its Explainer when it has one.
func explain(ctx context.Context, p Policy, req *Request) (Decision, error) {
	if x, ok := p.(Explainer); ok {
		return x.DecideExplain(ctx, req)
	}
	v, err := p.Decide(ctx, req)
	return Decision{Verdict: v}, err
}

// All combines policies with the rules of the plugin chain (docs/policy.md,
// "The plugin chain"), each policy taking the place of a plugin: they are
// asked in order; the first deny, or error, ends it and denies; otherwise
// the first allow decides; when every policy abstained the result is an
// abstain, which Default treats as a deny. Use it to put a Go policy in
// front of or behind a plugin chain:
//
//	network.All(myGoPolicy, chain) // the Go policy first; either may deny
//
// A plugin chain applies its manifest's default when all its plugins
// abstain, so it never abstains itself: an allow from a Go policy cannot
// override a chain whose default denies. Give the manifest default =
// "allow" (with plugins that deny what they must) when the Go policy is
// to decide what the chain leaves open.
//
// The Decision names the deciding policy's plugin (its Explainer's) or,
// for a policy without one, nothing. Every policy must be safe for
// concurrent use; All is then too.
func All(policies ...Policy) Policy {
	return all(append([]Policy(nil), policies...))
}

type all []Policy

func (ps all) Decide(ctx context.Context, req *Request) (Verdict, error) {
	d, err := ps.DecideExplain(ctx, req)
	return d.Verdict, err
}

func (ps all) DecideExplain(ctx context.Context, req *Request) (Decision, error) {
	var allowed *Decision
	for _, p := range ps {
		d, err := explain(ctx, p, req)
		if err != nil {
			return Decision{Verdict: Verdict{Verdict: policy.ActionDeny, Reason: err.Error()}, Plugin: d.Plugin}, err
		}
		switch d.Verdict.Verdict {
		case policy.ActionAllow:
			if allowed == nil {
				allowed = &d
			}
		case policy.ActionAbstain:
		default: // deny, and anything a policy should not have said
			if d.Verdict.Verdict != policy.ActionDeny {
				d.Verdict = Verdict{Verdict: policy.ActionDeny, Reason: "unknown verdict " + string(d.Verdict.Verdict)}
			}
			return d, nil
		}
	}
	if allowed != nil {
		return *allowed, nil
	}
	return Decision{Verdict: Verdict{Verdict: policy.ActionAbstain}}, nil
}
