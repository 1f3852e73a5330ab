package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins"
)

// exitManifest is `wasmgate run`'s exit code when the --policy manifest or
// one of its plugins is bad: 1, as `wasmgate check` and `decide` exit for
// the same problems, so scripts see one convention. The guest never starts.
const exitManifest = 1

// usageError is a guestNetwork error in the command line (exit 2) rather
// than in the manifest (exit 1).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// errNoPolicyAudit refuses --audit without --policy: without a policy no
// decision is made (all network access is denied by Default itself), so
// the audit file would stay empty and mislead whoever reads it.
var errNoPolicyAudit = usageError{errors.New("--audit needs --policy: without a policy nothing is decided, all network access is denied")}

// guestLimits are the manifest's [limits] that the host enforces (0:
// unset, the host's default).
type guestLimits struct {
	maxFds    int
	maxMemory uint64
}

// guestNetwork builds the network of one `wasmgate run` guest: the
// manifest at policyPath, a file or oci://REF@sha256:... (loadPolicy; its chain, resolver, guest identity, labels, name
// TTL and socket limit; its other limits, max_fds and max_memory, are
// returned, 0 when unset), audit records to auditSpec ("" none, "-" stderr, else a file
// appended to), plugin logs to logger, decisions to mets (nil: none), and
// the hint (docs/policy.md#hint) on stderr for every new denied
// destination. guest names the guest when the manifest does not.
//
// The Default's policy and resolver are a plugins.Live, which the returned
// reloader replaces on a reload (docs/operations.md#reload).
//
// policyPath == "" means no policy: Default denies everything (Policy nil)
// and DenyNotifier says so once; the reloader is nil.
//
// The audit log gets the start record first (auditStart). The returned
// release closes the plugins and then the audit file; call it
// after the guest has finished and the reloader is stopped. A command-line
// problem is a usageError; a manifest problem is the plugins.Load error (a
// *plugins.ManifestError listing every problem).
func guestNetwork(ctx context.Context, policyPath, auditSpec, guest string, noCache bool, logger *slog.Logger, mets *metrics.Metrics, stderr io.Writer) (d *network.Default, lim guestLimits, rel *reloader, release func(), err error) {
	onDeny := network.DenyNotifier(stderr)
	if policyPath == "" {
		if auditSpec != "" {
			return nil, guestLimits{}, nil, nil, errNoPolicyAudit
		}
		return &network.Default{Policy: nil, Guest: guest, OnDeny: onDeny}, guestLimits{}, nil, func() {}, nil
	}
	audit, closeAudit, err := openAudit(auditSpec, stderr)
	if err != nil {
		return nil, guestLimits{}, nil, nil, usageError{err}
	}
	opts := plugins.Options{Audit: audit, Logger: logger, Metrics: mets}
	if noCache {
		opts.CacheDir = "-"
	}
	p, err := loadPolicy(ctx, policyPath, opts)
	if err != nil {
		closeAudit()
		return nil, guestLimits{}, nil, nil, err
	}
	auditStart(ctx, audit, policyPath, p)
	live := plugins.NewLive(p)
	d = p.NewDefault(nil)
	d.Policy, d.Resolver = live, live
	if d.Guest == "" {
		d.Guest = guest
	}
	d.OnDeny = onDeny
	d.OnRevoke = onRevoke(audit, mets, stderr)
	d.OnQuota = onQuota(d.Guest, audit, mets, stderr)
	rel = &reloader{path: policyPath, opts: opts, live: live, d: d, mets: mets, stderr: stderr, start: p.Manifest}
	release = func() {
		live.Close()
		closeAudit()
	}
	return d, guestLimits{maxFds: p.Manifest.MaxFds, maxMemory: p.Manifest.MaxMemory}, rel, release, nil
}
