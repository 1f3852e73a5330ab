package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins"
)

// reloader reloads the --policy manifest of a running guest
// (docs/operations.md#reload): on SIGHUP, and with --watch when the
// manifest or one of its plugin files changes.
type reloader struct {
	path   string
	opts   plugins.Options
	live   *plugins.Live
	d      *network.Default
	mets   *metrics.Metrics // nil: none
	stderr io.Writer
	// start is the manifest the guest started with: the limits that
	// cannot change while it runs are its.
	start *plugins.Manifest
	// shadow, with --shadow, is the candidate, reloaded with the policy.
	shadow *shadowPolicy

	mu sync.Mutex // one reload at a time
}

// errPinned is the reload of an oci:// policy, pinned by its digest.
var errPinned = errors.New("pinned by its digest")

// reload loads the manifest again, completely (plugins compiled, describe
// and validate called), and only then swaps it in. On any failure the
// policy in force stays, the error (each problem with file:line) goes to
// stderr and the audit log, and the guest notices nothing. cause says what
// asked for it ("SIGHUP", "watch").
func (r *reloader) reload(ctx context.Context, cause string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The candidate first: the enforced reload's revalidation decisions
	// are shadowed too, and should be by the new candidate.
	if r.shadow != nil {
		r.reloadShadow(ctx, cause)
	}
	return r.reloadEnforced(ctx, cause)
}

// reloadShadow reloads the --shadow candidate (docs/operations.md#shadow):
// like the enforced policy, loaded completely before the swap, kept on
// failure, one audit record either way (marked "shadow": true); nothing
// is revoked, and the reload metrics count the enforced policy only.
func (r *reloader) reloadShadow(ctx context.Context, cause string) {
	sum, err := r.shadow.reload(ctx, r.opts)
	switch {
	case errors.Is(err, errPinned):
		fmt.Fprintf(r.stderr, "wasmgate: reload (%s): the --shadow candidate %s is pinned by its digest and cannot change\n", cause, r.shadow.path)
		return
	case err != nil:
		fmt.Fprintf(r.stderr, "wasmgate: reload (%s) of the --shadow candidate %s failed; the candidate in force is unchanged:\n%v\n", cause, r.shadow.path, err)
	default:
		fmt.Fprintf(r.stderr, "wasmgate: reloaded the --shadow candidate %s (%s, sha256 %s)\n", r.shadow.path, cause, sum)
	}
	if r.opts.Audit != nil {
		attrs := []slog.Attr{
			slog.String("manifest", r.shadow.path),
			slog.String("sha256", sum),
			slog.String("cause", cause),
			slog.Bool("shadow", true),
		}
		if err != nil {
			attrs = append(attrs, slog.String("result", "error"), slog.String("error", err.Error()))
		} else {
			attrs = append(attrs, slog.String("result", "ok"))
		}
		r.opts.Audit.LogAttrs(ctx, slog.LevelInfo, "reload", attrs...)
	}
}

// reloadEnforced reloads the --policy manifest.
func (r *reloader) reloadEnforced(ctx context.Context, cause string) error {
	if strings.HasPrefix(r.path, ociScheme) {
		// Pinned by digest: the same bytes would be loaded again.
		fmt.Fprintf(r.stderr, "wasmgate: reload (%s): %s is pinned by its digest and cannot change; to change the policy, push a new one and start with its digest\n", cause, r.path)
		return nil
	}
	p, sum, err := plugins.LoadSum(ctx, r.path, r.opts)
	hexSum := ""
	if sum != [32]byte{} {
		hexSum = hex.EncodeToString(sum[:])
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "wasmgate: reload (%s) of %s failed; the policy in force is unchanged:\n%v\n", cause, r.path, err)
		r.auditReload(ctx, cause, hexSum, err, 0)
		if r.mets != nil {
			r.mets.Reload(false)
		}
		return err
	}
	r.warnFixed(p.Manifest)
	r.live.Swap(p)
	r.d.SetMaxSockets(p.Manifest.MaxSockets)
	r.d.SetQuotas(p.Manifest.Quotas) // for new operations; unchanged rates keep their buckets
	revoked := 0
	if p.Manifest.Revoke {
		// After the swap: every standing socket is asked again under
		// the new policy (docs/operations.md#revoke).
		revoked = r.d.Revalidate(ctx)
	}
	r.auditReload(ctx, cause, hexSum, nil, revoked)
	if r.mets != nil {
		r.mets.Reload(true)
	}
	fmt.Fprintf(r.stderr, "wasmgate: reloaded %s (%s, sha256 %s); %d sockets revoked\n", r.path, cause, hexSum, revoked)
	return nil
}

// onRevoke is the Default's OnRevoke: an audit record, a line on stderr
// and the metric for each revoked socket.
func onRevoke(audit *slog.Logger, mets *metrics.Metrics, stderr io.Writer) func(network.Revoked) {
	return func(rv network.Revoked) {
		r := rv.Request
		addr := netip.AddrPortFrom(r.Addr, r.Port)
		by := ""
		if rv.Denied.Plugin != "" {
			by = " by " + rv.Denied.Plugin
		}
		fmt.Fprintf(stderr, "wasmgate: revoked %s %s%s, denied%s: %s; the guest now gets %s\n",
			r.Op, addr, namesSuffix(r.Names), by, rv.Denied.Reason, errnoName(rv.Errno))
		if mets != nil {
			mets.Revoked()
		}
		if audit == nil {
			return
		}
		names := r.Names
		if names == nil {
			names = []string{}
		}
		attrs := []slog.Attr{
			slog.String("guest", r.Guest),
			slog.String("op", string(r.Op)),
			slog.String("proto", r.Proto),
			slog.String("addr", r.Addr.String()),
			slog.Int("port", int(r.Port)),
			slog.Any("names", names),
		}
		if r.Local.IsValid() {
			attrs = append(attrs, slog.String("local", r.Local.String()))
		}
		attrs = append(attrs,
			slog.String("plugin", rv.Denied.Plugin),
			slog.String("reason", rv.Denied.Reason),
			slog.String("errno", errnoName(rv.Errno)),
		)
		audit.LogAttrs(context.Background(), slog.LevelInfo, "revoke", attrs...)
	}
}

// namesSuffix is " (a, b)" for the names bound to a revoked socket's
// address, "" for none.
func namesSuffix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// errnoName names the errnos of revoked sockets and quota refusals, as
// audit records and stderr give them.
func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.ECONNRESET:
		return "ECONNRESET"
	case syscall.ECONNABORTED:
		return "ECONNABORTED"
	case syscall.ECONNREFUSED:
		return "ECONNREFUSED"
	case syscall.EAGAIN:
		return "EAGAIN"
	case syscall.EDQUOT:
		return "EDQUOT"
	}
	return e.Error()
}

// warnFixed warns about the manifest keys whose change does not reach a
// running guest (docs/operations.md#reload).
func (r *reloader) warnFixed(m *plugins.Manifest) {
	fixed := func(key string, changed bool) {
		if changed {
			fmt.Fprintf(r.stderr, "wasmgate: reload: %s changed, but it is fixed when the guest starts; the running guest keeps the old value\n", key)
		}
	}
	fixed("[limits] max_fds", m.MaxFds != r.start.MaxFds)
	fixed("[limits] max_memory", m.MaxMemory != r.start.MaxMemory)
	fixed("[guest] name", m.Guest != r.start.Guest)
	fixed("[guest] labels", !maps.Equal(m.Labels, r.start.Labels))
}

// auditReload writes the audit record of one reload.
func (r *reloader) auditReload(ctx context.Context, cause, sum string, err error, revoked int) {
	if r.opts.Audit == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("manifest", r.path),
		slog.String("sha256", sum),
		slog.String("cause", cause),
	}
	if err != nil {
		attrs = append(attrs, slog.String("result", "error"), slog.String("error", err.Error()))
	} else {
		attrs = append(attrs, slog.String("result", "ok"), slog.Int("revoked", revoked))
	}
	r.opts.Audit.LogAttrs(ctx, slog.LevelInfo, "reload", attrs...)
}

// onSIGHUP reloads on every SIGHUP until the returned function is called.
func (r *reloader) onSIGHUP(ctx context.Context) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ch:
				r.reload(ctx, "SIGHUP")
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
		wg.Wait()
	}
}

// watchDebounce is how long --watch waits after the last change to a
// watched file before it reloads: an editor's save or a copy is several
// events, and the manifest and a plugin often change together.
const watchDebounce = 250 * time.Millisecond

// watch reloads when the manifest or a plugin file of the policy in force
// changes, until the returned function is called. It watches the files'
// directories rather than the files, so that a file replaced by a rename
// (what editors and atomic deploys do) is still seen, and after each
// reload it watches the files the manifest now names.
func (r *reloader) watch(ctx context.Context) (stop func(), err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	files := map[string]bool{}
	refresh := func() error {
		want := map[string]bool{}
		add := func(path string, m *plugins.Manifest) {
			if strings.HasPrefix(path, ociScheme) {
				return // pinned: nothing on disk to watch
			}
			want[absPath(path)] = true
			for _, p := range m.Plugins {
				if p.Path != "" {
					want[absPath(p.Path)] = true
				}
			}
		}
		add(r.path, r.live.Policy().Manifest)
		if r.shadow != nil {
			add(r.shadow.path, r.shadow.shadow.Policy().Manifest)
		}
		watching := map[string]bool{}
		for _, d := range w.WatchList() {
			watching[d] = true
		}
		for f := range want {
			if d := filepath.Dir(f); !watching[d] {
				if err := w.Add(d); err != nil {
					return fmt.Errorf("--watch %s: %w", d, err)
				}
				watching[d] = true
			}
		}
		files = want
		return nil
	}
	if err := refresh(); err != nil {
		w.Close()
		return nil, err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if files[filepath.Clean(ev.Name)] && !ev.Has(fsnotify.Chmod) {
					timer.Reset(watchDebounce)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflowed queue may have hidden a change.
				fmt.Fprintf(r.stderr, "wasmgate: --watch: %v\n", err)
				timer.Reset(watchDebounce)
			case <-timer.C:
				r.reload(ctx, "watch")
				if err := refresh(); err != nil {
					fmt.Fprintf(r.stderr, "wasmgate: %v\n", err)
				}
			case <-done:
				timer.Stop()
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		w.Close()
	}, nil
}

// absPath is filepath.Abs, or p cleaned when the working directory is
// unknown.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}
