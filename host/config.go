package host

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/wasmgate/wasmgate/network"
)

// Config says how to run one guest. It is immutable: every WithX method
// returns a new Config and leaves the receiver unchanged, so one base
// Config can be shared and specialised safely (the wazero.ModuleConfig
// style). Invalid values are not reported by WithX but all together by Run,
// so a caller sees every mistake at once.
type Config struct {
	args     []string
	env      []string // "K=V"
	mounts   []mount
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	network  network.Network
	listen   []listenSpec
	onListen func(Listening) error
	name     string
	maxFds   int    // 0 = DefaultMaxFds
	maxMem   uint64 // bytes, a multiple of the page size; 0 = the module's maximum

	cacheDir      string // "" = default under os.UserCacheDir()
	cacheDisabled bool
	closeOnDone   bool

	errs []error
}

// mount is one preopened directory: a host directory or a virtual fs.FS.
type mount struct {
	host     string // host directory; "" when fsys is set
	guest    string // guest path, cleaned; "/" or "/etc" or "." etc.
	readOnly bool
	fsys     fs.FS
}

// NewConfig returns the default Config: no arguments (not even argv[0]),
// no environment, no directories, stdin empty, stdout and stderr
// discarded, no network (every network operation denied), the on-disk
// compilation cache enabled, and guests interruptible by context
// cancellation.
//
// The guest's fds: 0-2 are stdio; the directories of WithDir and WithFS
// follow from fd 3 in the order they were added, as on every WASI
// runtime. Only when the guest has a network (WithNetwork with anything
// but a network.Default without a Policy) does the host add, after them,
// a virtual read-only /etc (resolv.conf naming the in-process DNS stub,
// hosts, nsswitch.conf) for guests that run their own DNS client, unless
// a directory is already mounted at "/", "/etc" or below "/etc". The
// WithListen and WithListener sockets come last.
func NewConfig() *Config {
	return &Config{closeOnDone: true}
}

func (c *Config) clone() *Config {
	n := *c
	n.args = append([]string(nil), c.args...)
	n.env = append([]string(nil), c.env...)
	n.mounts = append([]mount(nil), c.mounts...)
	n.listen = append([]listenSpec(nil), c.listen...)
	n.errs = append([]error(nil), c.errs...)
	return &n
}

// WithArgs sets the guest's argv, including argv[0] (the program name).
func (c *Config) WithArgs(args ...string) *Config {
	n := c.clone()
	n.args = append([]string(nil), args...)
	for _, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			n.errs = append(n.errs, fmt.Errorf("argument %q contains NUL", a))
		}
	}
	return n
}

// WithEnv adds one environment variable. Later values for the same key
// replace earlier ones.
func (c *Config) WithEnv(key, value string) *Config {
	n := c.clone()
	switch {
	case key == "":
		n.errs = append(n.errs, errors.New("environment variable with empty name"))
	case strings.ContainsAny(key, "=\x00"):
		n.errs = append(n.errs, fmt.Errorf("environment variable name %q contains '=' or NUL", key))
	case strings.IndexByte(value, 0) >= 0:
		n.errs = append(n.errs, fmt.Errorf("environment variable %s: value contains NUL", key))
	}
	kv := key + "="
	out := n.env[:0]
	for _, e := range n.env {
		if !strings.HasPrefix(e, kv) {
			out = append(out, e)
		}
	}
	n.env = append(out, kv+value)
	return n
}

// WithDir preopens the host directory hostDir as guestPath. Nothing
// outside hostDir is reachable by "..", symlinks or absolute paths, not
// even through a symlink swapped in during a call (on Linux the kernel
// checks every lookup: openat2 RESOLVE_BENEATH; os.Root elsewhere).
// ReadOnly refuses every modification with EROFS (and opening for write
// with EROFS too). A read-only directory mounted inside a writable one is
// writable through the outer mount. See docs/filesystem.md.
func (c *Config) WithDir(hostDir, guestPath string, access Access) *Config {
	n := c.clone()
	if hostDir == "" {
		n.errs = append(n.errs, errors.New("directory mount with empty host path"))
	}
	g, err := cleanGuestPath(guestPath)
	if err != nil {
		n.errs = append(n.errs, err)
	}
	n.mounts = append(n.mounts, mount{host: hostDir, guest: g, readOnly: bool(access)})
	return n
}

// Access says whether the guest may modify a WithDir directory.
type Access bool

// The two kinds of access to a WithDir directory.
const (
	ReadWrite Access = false
	ReadOnly  Access = true
)

// WithFS preopens the read-only virtual directory fsys as guestPath (for
// example a generated /etc). Paths in fsys follow io/fs rules; the guest
// can read files and list directories but never modify anything (EROFS).
func (c *Config) WithFS(guestPath string, fsys fs.FS) *Config {
	n := c.clone()
	if fsys == nil {
		n.errs = append(n.errs, fmt.Errorf("WithFS(%q): nil fs.FS", guestPath))
	}
	g, err := cleanGuestPath(guestPath)
	if err != nil {
		n.errs = append(n.errs, err)
	}
	n.mounts = append(n.mounts, mount{guest: g, readOnly: true, fsys: fsys})
	return n
}

// WithStdin sets the guest's fd 0. nil means empty input. If r is an
// *os.File its descriptor is polled for readiness (so a guest waiting on
// stdin stays cancellable and a non-blocking guest gets EAGAIN) but never
// switched to non-blocking mode. Any other reader is read directly and
// treated as always ready: a Read that blocks (an io.Pipe, say) blocks the
// guest and cannot be interrupted, so prefer an *os.File (os.Pipe) there.
//
// Writes to stdout and stderr (WithStdout, WithStderr) always complete:
// they block, whatever NONBLOCK flag the guest set, because Go's runtime
// aborts when they fail. A writer that never returns therefore holds the
// guest even after cancellation.
func (c *Config) WithStdin(r io.Reader) *Config {
	n := c.clone()
	n.stdin = r
	return n
}

// WithStdout sets the guest's fd 1. nil discards. w gets the guest's
// iovecs as they are: one fd_write may pass up to 1024 of them over the
// same guest buffer, so a w that keeps what it gets must bound itself
// (docs/sockets.md, "Limits on guest data").
func (c *Config) WithStdout(w io.Writer) *Config {
	n := c.clone()
	n.stdout = w
	return n
}

// WithStderr sets the guest's fd 2. nil discards.
func (c *Config) WithStderr(w io.Writer) *Config {
	n := c.clone()
	n.stderr = w
	return n
}

// WithNetwork sets the network every socket operation goes through. nil
// (the default) denies every network operation: it stands for a
// network.Default with a nil Policy. A guest without a network (nil, or
// such a Default) gets no virtual /etc (see NewConfig).
func (c *Config) WithNetwork(nw network.Network) *Config {
	n := c.clone()
	n.network = nw
	return n
}

// WithListen records an address ("host:port") on which the host opens a
// listening TCP socket before the guest starts, handed to the guest as a
// preopened fd after the directories. The bind and listen go through the
// configured Network like any other.
func (c *Config) WithListen(addr string) *Config {
	n := c.clone()
	if addr == "" {
		n.errs = append(n.errs, errors.New("empty listen address"))
	}
	n.listen = append(n.listen, listenSpec{addr: addr})
	return n
}

// WithListener hands the guest a listening TCP socket that the caller
// already has, such as a net.Listener from net.Listen or one passed in by
// a supervisor, in the fd order of WithListen (the two share one list, in
// the order they were added). l must be a *net.TCPListener or another
// listener of a TCP socket with a descriptor (syscall.Conn).
//
// The guest gets a duplicate of l's descriptor: l stays the caller's,
// who closes it as usual (the guest's copy stays open until the guest
// closes it or exits), and should not accept on it while the guest runs,
// or the two take turns at the connections. The configured Network must
// be able to adopt a socket (network.Adopter: network.Default over
// network.System can); a network.Default decides tcp.bind and tcp.listen
// of l's address before the guest starts, as for WithListen, and every
// connection as tcp.accept. Any failure, a denial included, fails the run.
func (c *Config) WithListener(l net.Listener) *Config {
	n := c.clone()
	sc, ok := l.(syscall.Conn)
	switch {
	case l == nil:
		n.errs = append(n.errs, errors.New("nil listener"))
	case !ok:
		n.errs = append(n.errs, fmt.Errorf("listener %T has no descriptor (want a *net.TCPListener)", l))
	}
	n.listen = append(n.listen, listenSpec{listener: sc, addr: listenerName(l)})
	return n
}

// listenSpec is one WithListen address or WithListener listener.
type listenSpec struct {
	addr     string       // WithListen's address, or the listener's for reports
	listener syscall.Conn // WithListener's, or nil
}

func listenerName(l net.Listener) string {
	if l == nil {
		return "<nil>"
	}
	return l.Addr().String()
}

// Listening is one WithListen socket, bound and listening.
type Listening struct {
	Addr  string         // the address given to WithListen, or the WithListener listener's
	Bound netip.AddrPort // the address it is bound to: the real port when WithListen asked for port 0
	Fd    int32          // the guest's fd of the socket
}

// WithOnListen sets fn, which Run calls once for every WithListen and
// WithListener socket,
// in the order they were added, when all of them are bound and listening
// and before the guest starts: so a caller learns the port the system
// chose for ":0", and the fd the guest finds the socket at. A connection
// made from fn waits in the socket's queue until the guest accepts it. fn
// runs on the goroutine of Run; the guest starts when it returns nil. An
// error from fn stops the run before the guest starts, and Run returns it.
func (c *Config) WithOnListen(fn func(Listening) error) *Config {
	n := c.clone()
	n.onListen = fn
	return n
}

// DefaultMaxFds is the default cap on a guest's open fds (stdio,
// directories, files and sockets together; WithMaxFds): enough for a
// server holding 10,000 connections with room to spare.
const DefaultMaxFds = 16384

// MaxMaxFds is the largest value WithMaxFds accepts.
const MaxMaxFds = 1 << 20

// WithMaxFds caps the guest's open fds at n (docs/sockets.md, "Limits"):
// past it every call that would create an fd fails with EMFILE, and a
// listener's pending connections are refused (reset) while the guest
// cannot accept them. 0 restores DefaultMaxFds; n must be at most
// MaxMaxFds, and at least 3 plus the directories (stdio and preopens need
// their fds), or Run reports the configuration invalid. Each open fd may
// hold a host descriptor, so the process's RLIMIT_NOFILE must allow for
// them (`wasmgate run` raises its soft limit and warns when it cannot).
func (c *Config) WithMaxFds(n int) *Config {
	nc := c.clone()
	nc.maxFds = n
	if n < 0 || n > MaxMaxFds {
		nc.errs = append(nc.errs, fmt.Errorf("max fds %d: must be between 0 (the default, %d) and %d", n, DefaultMaxFds, MaxMaxFds))
	}
	return nc
}

// MaxMemoryLimit is the largest memory a wasm32 guest can have, 4 GiB
// (65536 pages of 64 KiB); WithMemoryLimit accepts at most this.
const MaxMemoryLimit = 1 << 32

// WithMemoryLimit caps the guest's linear memory at bytes, rounded down to
// whole 64 KiB WebAssembly pages (docs/sockets.md, "Limits"); 0 restores
// the default, the module's declared maximum (4 GiB when it declares
// none). A limit below the module's declared maximum wins. Past it
// memory.grow returns -1 to the guest, as when the module's own maximum
// is reached: a Go guest then dies with "fatal error: out of memory"
// (exit code 2), a C guest's malloc returns NULL. A limit below one page,
// or above MaxMemoryLimit, makes the configuration invalid; one below the
// memory the module starts with makes Run fail before the guest runs.
func (c *Config) WithMemoryLimit(bytes uint64) *Config {
	nc := c.clone()
	nc.maxMem = bytes &^ (wasmPageSize - 1)
	if bytes > MaxMemoryLimit || (bytes > 0 && nc.maxMem == 0) {
		nc.errs = append(nc.errs, fmt.Errorf("memory limit %d bytes: must be 0 (the module's maximum) or between one 64 KiB page and 4 GiB", bytes))
	}
	return nc
}

// MemoryLimit is the memory cap set by WithMemoryLimit in bytes (a whole
// number of pages), or 0 when the module's own maximum applies.
func (c *Config) MemoryLimit() uint64 { return c.maxMem }

// MaxFds is the fd cap Run applies: the value of WithMaxFds, or
// DefaultMaxFds.
func (c *Config) MaxFds() int {
	if c.maxFds <= 0 {
		return DefaultMaxFds
	}
	return c.maxFds
}

// WithName sets the wazero module name of the guest (default "guest"); it
// shows in stack traces. Names are unique within a compiled guest's
// runtime, so the second and later instances of one CompiledGuest are
// named NAME#2, NAME#3, ...
func (c *Config) WithName(name string) *Config {
	n := c.clone()
	n.name = name
	return n
}

// WithCompilationCacheDir sets the directory of the on-disk compilation
// cache; "" restores the default (os.UserCacheDir()/wasmgate/wazero). Only
// Run uses it; a CompiledGuest has its Runtime's (WithCacheDir).
func (c *Config) WithCompilationCacheDir(dir string) *Config {
	n := c.clone()
	n.cacheDir = dir
	n.cacheDisabled = false
	return n
}

// WithoutCompilationCache disables the on-disk compilation cache: every Run
// compiles the guest from scratch. Only Run uses it; a CompiledGuest has
// its Runtime's (WithoutCache, WithInMemoryCache).
func (c *Config) WithoutCompilationCache() *Config {
	n := c.clone()
	n.cacheDisabled = true
	return n
}

// WithCloseOnContextDone controls whether guest code is interrupted when
// the context is done (default true), so that a guest spinning in a loop
// can be stopped by cancellation or a timeout. Waits inside host functions
// (poll_oneoff, blocking reads) are cancellable either way.
//
// How: Run rewrites the guest (internal/interrupt) so that every function
// entry and loop header counts down a budget and, every 4096 checks,
// tests a flag that the context's cancellation raises; that costs about
// two nanoseconds per loop iteration (BenchmarkLoop, the tightest loop
// there is: 1.4x the uninterruptible time; real code much less). wazero's own
// close-on-context-done, which calls out of the guest into Go at every loop
// back-edge (~8x slower on a tight loop), is used only for modules the
// rewriter refuses (a start function, features outside WebAssembly 2.0).
// Turn this off only for trusted guests whose running time is bounded.
// Only Run uses it; a CompiledGuest has its Runtime's (WithInterruptible).
func (c *Config) WithCloseOnContextDone(on bool) *Config {
	n := c.clone()
	n.closeOnDone = on
	return n
}

// cleanGuestPath validates and normalises a preopen's guest path. It keeps
// a leading "/" because Go and wasi-libc match absolute paths against
// preopen names textually.
func cleanGuestPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty guest path")
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("guest path %q contains NUL", p)
	}
	return path.Clean(p), nil
}

// validate returns every configuration error at once.
func (c *Config) validate() error {
	errs := append([]error(nil), c.errs...)
	if need := 3 + len(c.mounts) + len(c.listen); c.maxFds > 0 && c.maxFds < need {
		errs = append(errs, fmt.Errorf("max fds %d: stdio, the directories and the listen sockets need %d", c.maxFds, need))
	}
	seen := map[string]bool{}
	for _, m := range c.mounts {
		if seen[m.guest] {
			errs = append(errs, fmt.Errorf("guest path %q mounted twice", m.guest))
		}
		seen[m.guest] = true
		if m.host == "" {
			continue
		}
		if fi, err := os.Stat(m.host); err != nil {
			errs = append(errs, fmt.Errorf("directory %s: %w", m.host, err))
		} else if !fi.IsDir() {
			errs = append(errs, fmt.Errorf("directory %s: not a directory", m.host))
		}
	}
	return errors.Join(errs...)
}
