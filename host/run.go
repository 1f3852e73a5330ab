// Package host runs WASI preview 1 guests on wazero with wasmgate's own
// implementation of wasi_snapshot_preview1: one fd table shared by stdio,
// preopened directories (through os.Root), files and sockets, so that
// sockets created at run time work with fd_read, fd_write and poll_oneoff.
// Every socket operation goes through a network.Network.
//
// Design in brief (details in fdtable.go):
//
//   - Host functions are api.GoModuleFunc closures over one state per
//     instance; every guest pointer and length is bounds-checked (EFAULT,
//     never a host panic), and every internal error becomes a WASI errno in
//     one place (internal/wasi.ToErrno; a policy denial is EACCES).
//   - Preopened directories are capabilities (internal/sysfs): on Linux
//     every path is resolved by the kernel with openat2(RESOLVE_BENEATH),
//     so "..", absolute paths and symlinks cannot leave them (EPERM), and
//     rename and link work between any two of them; os.Root elsewhere.
//     Read-only mounts refuse every modification with EROFS. Every fd_*
//     and path_* call checks the fd's WASI rights (docs/filesystem.md).
//   - Host fds are never blocking from the guest's point of view: the
//     guest's NONBLOCK flag lives in the fd table, and blocking mode is
//     emulated with ppoll(2) on the host fd plus a wake eventfd, so every
//     wait is cancellable and an idle guest costs no CPU.
//   - When ctx is done the guest is stopped: in wasm code by a flag check
//     that internal/interrupt compiles into every function entry and loop
//     header (wazero's close-on-context-done only for modules it cannot
//     rewrite; see Config.WithCloseOnContextDone), and inside a host wait
//     by closing the module on return.
//
// Use NewConfig and Run:
//
//	code, err := host.Run(ctx, wasm, host.NewConfig().
//		WithArgs("app", "-v").
//		WithDir("/srv/data", "/data", host.ReadOnly).
//		WithStdout(os.Stdout).
//		WithNetwork(&network.Default{Policy: p}))
//
// or, to start one guest many times, compile it once with a Runtime
// (NewRuntime, Runtime.Compile, CompiledGuest.Run; docs/embedding.md).
package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmgate/wasmgate/host/internal/sysfs"
	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/internal/interrupt"
	"github.com/wasmgate/wasmgate/network"
)

// ErrTrap is matched (errors.Is) by the error Run returns when the guest
// trapped (unreachable, out-of-bounds access, stack overflow, ...). The
// error text includes wazero's wasm stack trace.
var ErrTrap = errors.New("guest trapped")

// Run compiles and runs the command module wasm (its _start export) with
// cfg, and returns the guest's exit code: the value given to proc_exit, or
// 0 when _start returns. It is Runtime.Compile and CompiledGuest.Run in one
// call, on a Runtime shared by every Run with the same compilation
// settings, so Runs of the same module at the same time compile it once;
// the compiled code is released when the last of them ends. A program that
// starts the same guest often keeps a CompiledGuest instead, and saves
// loading the code from the cache at every start.
//
// err is non-nil when the configuration is invalid (every problem is
// reported, joined), the module cannot be compiled or instantiated, the
// guest trapped (errors.Is(err, ErrTrap); exitCode is then 1), or ctx was
// done before the guest finished (errors.Is(err, ctx.Err()); exitCode is
// then 1).
func Run(ctx context.Context, wasm []byte, cfg *Config) (exitCode int, err error) {
	if cfg == nil {
		cfg = NewConfig()
	}
	if err := cfg.validate(); err != nil {
		return 1, fmt.Errorf("wasmgate: invalid configuration: %w", err)
	}
	g, err := runtimeFor(ctx, cfg).Compile(ctx, wasm)
	if err != nil {
		return 1, err
	}
	defer g.Close(context.WithoutCancel(ctx))
	return g.c.run(ctx, cfg)
}

// run runs one instance of the compiled guest with cfg (validated).
func (c *compiledGuest) run(ctx context.Context, cfg *Config) (int, error) {
	s, err := newState(cfg)
	if err != nil {
		return 1, fmt.Errorf("wasmgate: invalid configuration: %w", err)
	}
	defer s.close()
	s.bindHostFunctions(c.imports)
	stop := context.AfterFunc(ctx, s.wake.wake)
	defer stop()
	if err := s.openPreopenedSockets(ctx); err != nil {
		return 1, fmt.Errorf("wasmgate: %w", err)
	}

	name := cfg.name
	if name == "" {
		name = "guest"
	}
	// Module names are unique in a wazero runtime: instances after the
	// first of a compiled guest get a numbered name.
	if n := c.names.Add(1); n > 1 {
		name = fmt.Sprintf("%s#%d", name, n)
	}
	// The host functions find this instance's state in the context.
	ctx = withHostState(ctx, s)
	// Instantiate without running anything, so that link errors (a missing
	// import) are told apart from what _start does (exit, trap).
	mc := wazero.NewModuleConfig().WithName(name).WithStartFunctions()
	// The guest's memory is reserved up front and grows in place
	// (memory.go); wazero takes the allocator from the context.
	// The memory limit (Config.WithMemoryLimit) lowers the maximum there.
	if limit := cfg.maxMem; limit > 0 && c.minMem > limit {
		return 1, fmt.Errorf("wasmgate: memory limit %d bytes is below the %d bytes the module's memory starts with", limit, c.minMem)
	}
	mctx := experimental.WithMemoryAllocator(ctx, guestMemoryAllocator(cfg.maxMem))
	mod, err := c.instantiate(mctx, mc, cfg.maxMem)
	if err != nil {
		var ee *sys.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			return s.result(ctx, err)
		}
		return 1, fmt.Errorf("wasmgate: instantiate: %w", err)
	}
	defer mod.Close(context.WithoutCancel(ctx))
	flag := interrupt.Find(mod)
	if flag != nil {
		defer context.AfterFunc(ctx, flag.Raise)()
	}
	start := mod.ExportedFunction("_start")
	if start == nil {
		return 1, errors.New("wasmgate: the module exports no _start function (not a WASI command)")
	}
	_, err = start.Call(ctx)
	if err != nil && flag.Raised() {
		// The trap is the interruption check we compiled in, not the
		// guest's doing: report only why the guest was stopped.
		return 1, fmt.Errorf("wasmgate: guest stopped: %w", ctx.Err())
	}
	return s.result(ctx, err)
}

// instantiate instantiates the guest. wazero panics when the memory
// allocator cannot give a memory its initial size, which happens when the
// memory limit is below the initial size of a memory the module neither
// exports nor imports (compile could not see it): that is an error, not a
// host crash. Every instance has its own module name, so a half-registered
// one left behind cannot collide with a later one.
func (c *compiledGuest) instantiate(ctx context.Context, mc wazero.ModuleConfig, limit uint64) (mod api.Module, err error) {
	defer func() {
		if p := recover(); p != nil {
			mod = nil
			if limit > 0 {
				err = fmt.Errorf("wasmgate: memory limit %d bytes is below the module's initial memory (%v)", limit, p)
			} else {
				err = fmt.Errorf("wasmgate: instantiate: %v", p)
			}
		}
	}()
	return c.rt.InstantiateModule(ctx, c.mod, mc)
}

// wazeroInit runs initWazero once per process.
var wazeroInit sync.Once

// initWazero creates and closes one runtime before any Run does its work:
// wazero works out its own version lazily and without synchronisation on
// the first runtime or file cache (internal/version), which is a data race
// when two Runs start at once.
func initWazero() {
	ctx := context.Background()
	_ = wazero.NewRuntime(ctx).Close(ctx)
}

// result turns the instantiation error into (exit code, error).
func (s *state) result(ctx context.Context, err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		s.exitMu.Lock()
		explicit := s.exitCode != nil
		s.exitMu.Unlock()
		if explicit {
			return int(ee.ExitCode()), nil
		}
		switch ee.ExitCode() {
		case sys.ExitCodeContextCanceled, sys.ExitCodeDeadlineExceeded:
			if cerr := ctx.Err(); cerr != nil {
				return 1, fmt.Errorf("wasmgate: guest stopped: %w", cerr)
			}
		}
		return int(ee.ExitCode()), nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return 1, fmt.Errorf("wasmgate: guest stopped: %w (%v)", cerr, err)
	}
	return 1, fmt.Errorf("%w: %v", ErrTrap, err)
}

// newState builds the instance state: stdio as fds 0-2, then the mounts in
// configuration order (fds 3...; the virtual /etc and --listen sockets come
// after them, see openPreopenedSockets). Every mount that cannot be opened
// is reported.
func newState(cfg *Config) (*state, error) {
	w, err := newWaker()
	if err != nil {
		return nil, err
	}
	s := &state{cfg: cfg, net: cfg.network, wake: w, start: time.Now()}
	s.fds.max = cfg.MaxFds() // EMFILE beyond: a guest cannot exhaust the host's descriptors
	if s.net == nil {
		// No network configured: a Default with no Policy denies every
		// operation, so sockets fail closed with EACCES.
		s.net = &network.Default{}
	}
	s.args = cfg.args
	s.env = cfg.env
	stdin := &fdEntry{file: newStdin(cfg.stdin), rightsBase: wasi.RightsStdio &^ wasi.RightFdWrite}
	stdout := &fdEntry{file: newOut(cfg.stdout), rightsBase: wasi.RightsStdio &^ wasi.RightFdRead}
	stderr := &fdEntry{file: newOut(cfg.stderr), rightsBase: wasi.RightsStdio &^ wasi.RightFdRead}
	for _, e := range []*fdEntry{stdin, stdout, stderr} {
		if _, err := s.fds.insert(e); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, m := range cfg.mounts {
		var d sysfs.Dir
		if m.fsys != nil {
			d = sysfs.NewFSDir(m.fsys)
		} else {
			var err error
			d, err = sysfs.OpenHostDir(m.host, m.readOnly)
			if err != nil {
				errs = append(errs, fmt.Errorf("directory %s: %w", m.host, err))
				continue
			}
		}
		if _, err := s.fds.insert(preopenEntry(d, m.guest)); err != nil {
			_ = d.Close()
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		s.close()
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// preopenEntry is the fd-table entry of a preopened directory: every
// directory right, less those that modify anything on a read-only mount
// (the file system refuses those with EROFS anyway; the rights tell the
// guest up front). Files opened below it may still ask for FD_WRITE, so
// that opening one for writing fails with EROFS rather than quietly
// opening it read-only.
func preopenEntry(d sysfs.Dir, guest string) *fdEntry {
	base, inh := wasi.RightsDirBase, wasi.RightsDirInheriting
	if d.ReadOnly() {
		base &^= wasi.RightsDirModify
		inh &^= wasi.RightsDirModify
	}
	return &fdEntry{file: newSysFile(d), preopen: guest, rightsBase: base, rightsInheriting: inh}
}

// close releases everything the instance holds: every fd and the waker.
func (s *state) close() {
	s.wake.wake()
	s.fds.closeAll()
	s.wake.close()
}

// cacheRoot is the compilation cache's directory (the default is under the
// user cache dir), or "" when caching is disabled or there is no place.
func (c *Config) cacheRoot() string {
	if c.cacheDisabled {
		return ""
	}
	if c.cacheDir != "" {
		return c.cacheDir
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(base, "wasmgate", "wazero")
}

// compilationCache opens the on-disk cache, or returns nil when it is
// disabled or cannot be created (the guest then just compiles slower).
func (c *Config) compilationCache() wazero.CompilationCache {
	dir := c.cacheRoot()
	if dir == "" {
		return nil
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil
	}
	return cache
}
