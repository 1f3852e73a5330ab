package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/wasmgate/wasmgate/host"
	"github.com/wasmgate/wasmgate/metrics"
	"github.com/wasmgate/wasmgate/plugins"
)

// Exit codes of `wasmgate run` other than the guest's own.
const (
	exitUsage   = 2   // bad flags or configuration
	exitTimeout = 124 // --timeout expired (as timeout(1))
	exitSignal  = 130 // interrupted by SIGINT (128 + 2)
	exitTrap    = 134 // the guest trapped (as an abort: 128 + SIGABRT)
	exitHost    = 1   // the host failed (compile error, unreadable file)
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// cmdRun implements `wasmgate run`. Its exit code is the guest's exit code,
// or one of the exit* codes above when the guest did not exit by itself. A
// trap prints the error with the wasm stack trace on stderr.
func cmdRun(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wasmgate run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dirs, envs, listens multiFlag
	fs.Var(&dirs, "dir", "preopen `HOST[:GUEST][:ro]` (repeatable); GUEST defaults to HOST")
	fs.Var(&envs, "env", "set guest environment variable `K=V` (repeatable)")
	fs.Var(&listens, "listen", "open a listening TCP socket on `ADDR` for the guest, or hand it the listening socket at host fd N with \"fd:N\" (socket activation) (repeatable)")
	listenReport := fs.String("listen-report", "", "when every --listen socket is bound, write its address (the real port for :0) to `FILE`, one \"ADDR\\n\" line each in --listen order (- = stderr)")
	timeout := fs.Duration("timeout", 0, "stop the guest after `DUR` (exit 124); 0 = no limit")
	policyPath := fs.String("policy", "", "policy manifest `FILE`; without it all network access is denied")
	audit := fs.String("audit", "", "append the audit log (JSON Lines, one record per decision) to `FILE` (- = stderr); needs --policy")
	maxMemory := fs.String("max-memory", "", "cap the guest's linear memory at `SIZE` (bytes, or with K, M, G: KiB, MiB, GiB), rounded down to 64 KiB pages; past it memory.grow fails")
	noCache := fs.Bool("no-cache", false, "do not use the on-disk compilation cache (guest and plugins)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics while the guest runs (\":PORT\" listens on 127.0.0.1)")
	shadowPath := fs.String("shadow", "", "also evaluate the candidate manifest `FILE` (its default, mode and plugins) on every decision, in report mode: it changes nothing, its audit records say \"shadow\": true and \"diverged\" (docs/operations.md#shadow)")
	watch := fs.Bool("watch", false, "reload the --policy manifest when it or one of its plugin files changes (SIGHUP always reloads it)")
	logLevel := logLevelFlag(fs)
	setUsage(fs, "wasmgate run [FLAGS] WASM [ARGS...]", `Run the WASI (preview 1) program WASM with arguments ARGS. Flags come before WASM; what
follows WASM is the guest's. Without --policy the guest has no network access. SIGHUP (and,
with --watch, a change of the manifest or its plugin files) reloads --policy while the guest
runs; a manifest that fails to load leaves the policy in force (docs/operations.md).
Exit status: the guest's; 2 bad command line or configuration; 1 bad --policy or host
failure (unreadable or invalid WASM); 124 --timeout expired; 130 interrupted; 134 trap.
`)
	if err := parseFlags(fs, args, stdout); err != nil {
		return flagExit(err)
	}
	if fs.NArg() < 1 {
		fmt.Fprintln(stderr, "wasmgate run: missing WASM file\nRun 'wasmgate run --help' for usage.")
		return exitUsage
	}
	wasmPath := fs.Arg(0)

	cfg := host.NewConfig().
		WithArgs(append([]string{wasmPath}, fs.Args()[1:]...)...).
		WithStdin(stdin).WithStdout(stdout).WithStderr(stderr)
	if *noCache {
		cfg = cfg.WithoutCompilationCache()
	}
	var errs []error
	for _, d := range dirs {
		h, g, ro, err := parseDir(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg = cfg.WithDir(h, g, host.Access(ro))
	}
	for _, e := range envs {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("--env %q: want K=V", e))
			continue
		}
		cfg = cfg.WithEnv(k, v)
	}
	for _, l := range listens {
		if fd, ok := strings.CutPrefix(l, "fd:"); ok {
			ln, err := inheritedListener(fd)
			if err != nil {
				errs = append(errs, fmt.Errorf("--listen %s: %w", l, err))
				continue
			}
			defer ln.Close()
			cfg = cfg.WithListener(ln)
			continue
		}
		cfg = cfg.WithListen(l)
	}
	if *listenReport != "" {
		if len(listens) == 0 {
			errs = append(errs, errors.New("--listen-report needs --listen"))
		}
		cfg = cfg.WithOnListen(listenReporter(*listenReport, len(listens), stderr))
	}
	if *maxMemory != "" {
		if n, err := parseSize(*maxMemory); err != nil {
			errs = append(errs, fmt.Errorf("--max-memory %q: %w", *maxMemory, err))
		} else {
			cfg = cfg.WithMemoryLimit(n)
		}
	}
	if *audit != "" && *policyPath == "" {
		errs = append(errs, errNoPolicyAudit)
	}
	if *watch && *policyPath == "" {
		errs = append(errs, errors.New("--watch needs --policy"))
	}
	if *watch && strings.HasPrefix(*policyPath, ociScheme) {
		errs = append(errs, errors.New("--watch needs a manifest file: an oci:// policy is pinned by its digest and never changes"))
	}
	if *shadowPath != "" && *policyPath == "" {
		errs = append(errs, errors.New("--shadow needs --policy: the candidate is compared with the enforced policy"))
	}
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "wasmgate run: %v\n", errors.Join(errs...))
		return exitUsage
	}

	wasm, err := plugins.ReadRegularFile(wasmPath, plugins.MaxGuestFile)
	if err != nil {
		// *fs.PathError names the file already.
		fmt.Fprintf(stderr, "wasmgate run: %v\n", err)
		return exitHost
	}
	logs := newPluginLogs(stderr, *logLevel)
	defer logs.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// The manifest is loaded (plugins compiled and validated) before the
	// guest starts: a bad policy must never let the guest run, not even
	// briefly.
	var mets *metrics.Metrics
	if *metricsAddr != "" {
		mets = metrics.New()
		stopMetrics, err := serveMetrics(*metricsAddr, mets, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "wasmgate run: --metrics: %v\n", err)
			return exitUsage
		}
		defer stopMetrics()
	}
	nw, lim, rel, release, err := guestNetwork(ctx, *policyPath, *audit, wasmPath, *noCache, logs.Logger(), mets, stderr)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "wasmgate run: %v\n", err)
			return exitUsage
		}
		if ctx.Err() != nil { // interrupted while compiling plugins
			fmt.Fprintf(stderr, "wasmgate run: %v\n", ctx.Err())
			return exitSignal
		}
		// A *plugins.ManifestError has one problem per line, each
		// naming file, line and key.
		fmt.Fprintf(stderr, "wasmgate run: bad --policy, the guest was not started:\n%v\n", err)
		return exitManifest
	}
	defer release()
	if *shadowPath != "" {
		sp, err := loadShadow(ctx, *shadowPath, rel.opts)
		if err != nil {
			fmt.Fprintf(stderr, "wasmgate run: bad --shadow, the guest was not started:\n%v\n", err)
			return exitManifest
		}
		shadow := &shadowPolicy{enforced: rel.live, path: *shadowPath, shadow: plugins.NewLive(sp), mets: mets, stderr: stderr, sem: make(chan struct{}, maxShadowInFlight)}
		nw.Policy = shadow
		rel.shadow = shadow
		defer shadow.close() // before release closes the audit log
	}
	if rel != nil {
		// Reloads stop before the policy is released (defers run last
		// in, first out).
		defer rel.onSIGHUP(ctx)()
		if *watch {
			stopWatch, err := rel.watch(ctx)
			if err != nil {
				fmt.Fprintf(stderr, "wasmgate run: %v\n", err)
				return exitHost
			}
			defer stopWatch()
		}
	}
	if mets != nil {
		mets.WatchSockets(nw.OpenSockets)
		mets.WatchCounters(func() metrics.GuestCounters { return metrics.GuestCounters(nw.Counters()) })
		mets.WatchThrottled(func() metrics.Throttled {
			q := nw.QuotaCounters()
			return metrics.Throttled{In: q.ThrottledIn, Out: q.ThrottledOut}
		})
	}
	cfg = cfg.WithNetwork(nw).WithMaxFds(lim.maxFds)
	if lim.maxMemory > 0 && *maxMemory == "" { // --max-memory wins
		cfg = cfg.WithMemoryLimit(lim.maxMemory)
	}
	// The notice only matters to guests with a network (servers hold
	// thousands of fds); without one it would only be noise on every run.
	notice := stderr
	if *policyPath == "" {
		notice = io.Discard
	}
	raiseFdLimit(cfg.MaxFds(), notice)

	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	code, err := host.Run(ctx, wasm, cfg)
	if err == nil {
		return code
	}
	// host.Run's errors start with "wasmgate: "; the command prefixes
	// its own name once, and the file's.
	fmt.Fprintf(stderr, "wasmgate run: %s: %s\n", wasmPath, strings.TrimPrefix(err.Error(), "wasmgate: "))
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return exitTimeout
	case errors.Is(err, context.Canceled):
		return exitSignal
	case errors.Is(err, host.ErrTrap):
		return exitTrap
	}
	return exitHost
}

// parseDir splits HOST[:GUEST][:ro]. A trailing ":ro" marks the mount
// read-only; GUEST defaults to HOST.
func parseDir(s string) (hostDir, guest string, ro bool, err error) {
	if strings.HasSuffix(s, ":ro") {
		ro = true
		s = strings.TrimSuffix(s, ":ro")
	}
	hostDir, guest, found := strings.Cut(s, ":")
	if !found {
		guest = hostDir
	}
	if hostDir == "" || guest == "" {
		return "", "", false, fmt.Errorf("--dir %q: want HOST[:GUEST][:ro]", s)
	}
	return hostDir, guest, ro, nil
}

// parseSize parses a --max-memory size: bytes, or a number with K, M or G
// (KiB, MiB, GiB; "KiB", "MiB", "GiB" and "B" are accepted too), between
// one 64 KiB page and 4 GiB.
func parseSize(v string) (uint64, error) {
	num := strings.TrimSuffix(strings.TrimSuffix(v, "B"), "i")
	shift := 0
	switch {
	case strings.HasSuffix(num, "K"):
		shift = 10
	case strings.HasSuffix(num, "M"):
		shift = 20
	case strings.HasSuffix(num, "G"):
		shift = 30
	}
	if shift > 0 {
		num = num[:len(num)-1]
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > host.MaxMemoryLimit>>shift {
		return 0, errors.New("want a size such as 67108864, 64M or 1G, at most 4G")
	}
	if n<<shift < 65536 {
		return 0, errors.New("below one 64 KiB page")
	}
	return n << shift, nil
}

// listenReporter returns the host.Config.WithOnListen callback of
// --listen-report: it collects the n bound addresses and, at the last,
// writes them to path ("-": w) as "ADDR\n" lines. The file appears whole
// (written beside it, then renamed), so a reader that waits for it never
// sees part of it. A file that cannot be written stops the run before the
// guest starts: whoever waits for it would wait forever.
func listenReporter(path string, n int, w io.Writer) func(host.Listening) error {
	var b strings.Builder
	seen := 0
	return func(l host.Listening) error {
		fmt.Fprintf(&b, "%s\n", l.Bound)
		if seen++; seen < n {
			return nil
		}
		if path == "-" {
			_, err := io.WriteString(w, b.String())
			return err
		}
		tmp := path + ".tmp"
		err := os.WriteFile(tmp, []byte(b.String()), 0o644)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("listen report: %w", err)
		}
		return nil
	}
}

// inheritedListener is the listening TCP socket at host fd n (a string of
// --listen fd:N), which the process inherited from whoever started it, as
// a supervisor's socket activation does (systemd passes them from fd 3).
// Stdio is refused: a guest must not get the host's terminal as a socket.
func inheritedListener(n string) (net.Listener, error) {
	fd, err := strconv.Atoi(n)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("want fd:N with N a descriptor number of 3 or more")
	}
	f := os.NewFile(uintptr(fd), "fd:"+n)
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("fd %d is not a listening socket the process inherited: %w", fd, err)
	}
	if _, ok := ln.(*net.TCPListener); !ok {
		ln.Close()
		return nil, fmt.Errorf("fd %d is not a TCP listener", fd)
	}
	return ln, nil
}
