//go:build wasip1

package socket

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Dialer connects to addresses through the host's sockets. The zero value
// is ready to use; its DialContext method fits http.Transport.DialContext.
type Dialer struct {
	// Timeout bounds the whole dial, including name resolution.
	Timeout time.Duration
	// Resolver resolves host names; nil uses the host's getaddrinfo.
	Resolver *Resolver
}

// Dial connects to address on the named network ("tcp", "tcp4", "tcp6",
// "udp", "udp4", "udp6").
func Dial(network, address string) (net.Conn, error) {
	return new(Dialer).DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context that bounds the connect.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return new(Dialer).DialContext(ctx, network, address)
}

// DialContext connects to address on the named network. A host name is
// resolved through the host and each address is tried in turn; the first
// error is returned when none connects.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	proto, fam, err := parseNetwork(network)
	if err != nil {
		return nil, opError("dial", network, nil, err)
	}
	addrs, err := d.Resolver.resolveAddrPorts(ctx, network, fam, address, false)
	if err != nil {
		return nil, opError("dial", network, nil, err)
	}
	var first error
	for _, ap := range addrs {
		c, err := dialOne(ctx, network, proto, ap)
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

type proto int

const (
	tcp proto = iota
	udp
)

// parseNetwork returns the protocol and the required family (0, 4 or 6).
func parseNetwork(network string) (proto, int, error) {
	switch network {
	case "tcp":
		return tcp, 0, nil
	case "tcp4":
		return tcp, 4, nil
	case "tcp6":
		return tcp, 6, nil
	case "udp":
		return udp, 0, nil
	case "udp4":
		return udp, 4, nil
	case "udp6":
		return udp, 6, nil
	}
	return 0, 0, net.UnknownNetworkError(network)
}

func opError(op, network string, addr net.Addr, err error) error {
	var ne *net.OpError
	if errors.As(err, &ne) {
		return err
	}
	return &net.OpError{Op: op, Net: network, Addr: addr, Err: err}
}

func sysError(call string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		return os.NewSyscallError(call, errno)
	}
	return err
}

func afOf(a netip.Addr) int32 {
	if a.Is4() {
		return afInet4
	}
	return afInet6
}

func netAddr(p proto, ap netip.AddrPort) net.Addr {
	if p == udp {
		return net.UDPAddrFromAddrPort(ap)
	}
	return net.TCPAddrFromAddrPort(ap)
}

// newSocket opens a non-blocking socket for addresses like a.
func newSocket(p proto, a netip.Addr) (int, error) {
	st := int32(sockStream)
	if p == udp {
		st = sockDgram
	}
	fd, err := openSocket(afOf(a), st)
	if err != nil {
		return -1, sysError("socket", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, sysError("setnonblock", err)
	}
	return fd, nil
}

func dialOne(ctx context.Context, network string, p proto, ap netip.AddrPort) (net.Conn, error) {
	raddr := netAddr(p, ap)
	fail := func(err error) (net.Conn, error) { return nil, opError("dial", network, raddr, err) }
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	fd, err := newSocket(p, ap.Addr())
	if err != nil {
		return fail(err)
	}
	cerr := connectSocket(fd, ap)
	// From here the *os.File owns fd: closing it closes the socket and
	// tells the runtime's netpoller to forget it.
	f := os.NewFile(uintptr(fd), "socket")
	switch {
	case cerr == nil:
	case cerr == syscall.EINPROGRESS && p == tcp:
		cerr = waitConnect(ctx, f, fd)
	}
	if cerr != nil {
		f.Close()
		if ctx.Err() != nil {
			cerr = ctx.Err()
		}
		return fail(sysError("connect", cerr))
	}
	if p == udp {
		return newPacketConn(f, fd, ap)
	}
	return fileConn(f)
}

// waitConnect waits for a non-blocking connect to complete: the socket
// becomes writable, then SO_ERROR holds the outcome. A spurious wake-up is
// recognised because the peer address is still unknown (ENOTCONN).
func waitConnect(ctx context.Context, f *os.File, fd int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(aLongTimeAgo) })
	defer stop()
	var result error
	werr := rc.Write(func(uintptr) bool {
		v, err := getsockoptInt(fd, solSocket, soError)
		if err != nil {
			result = err
			return true
		}
		switch e := syscall.Errno(v); e {
		case 0:
		case syscall.EINPROGRESS, syscall.EALREADY, syscall.EAGAIN, syscall.EINTR:
			return false
		default:
			result = e
			return true
		}
		if _, err := peerAddr(fd); err == syscall.ENOTCONN {
			return false
		} else if err != nil {
			result = err
		}
		return true
	})
	if werr != nil {
		return werr
	}
	return result
}

var aLongTimeAgo = time.Unix(1, 0)

// fileConn turns a connected stream socket into a net.Conn that reports
// its real addresses (asked of the host on first use, see tcpConn).
func fileConn(f *os.File) (net.Conn, error) {
	c, err := net.FileConn(f)
	f.Close() // FileConn shares the descriptor with a reference count
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, syscall.ENOTSOCK
	}
	return &tcpConn{TCPConn: tc}, nil
}

// tcpConn is a *net.TCPConn with the addresses that net.FileConn and
// wasip1's accept cannot learn. Embedding keeps CloseWrite, CloseRead,
// SetNoDelay and friends.
//
// The addresses are asked of the host on the first LocalAddr or
// RemoteAddr call, not when the connection is made: two host calls (and
// their garbage) per connection are a measurable part of what a plain
// accept loop costs in a wasm guest, and many servers never ask. Once
// known, an address is kept, like net.TCPConn's, so it is still reported
// after Close. An address first asked for after Close can no longer be
// learned (the descriptor is gone, and its number may already name another
// socket), nor a peer first asked for after the peer reset the connection
// (the kernel forgets it then); it is then the zero *net.TCPAddr, as Go's
// own wasip1 connections always report. Ask early (net/http does, for
// every connection) if the address must survive either.
type tcpConn struct {
	*net.TCPConn

	mu sync.Mutex
	// laddr and raddr are nil until learned; written under mu.
	laddr, raddr *net.TCPAddr
}

// Read reads from the connection. It first waits for the connection to
// be readable in the runtime's network poller, even when data is already
// there, so that the goroutine gives the thread up (docs/sockets.md,
// "Fairness").
//
// A wasip1 program has one thread and no preemption, and the runtime
// polls the network only once no goroutine is runnable. A connection whose
// peer sends its next request before the server reads again (a keep-alive
// client under load) never waits in the poller on its own: its goroutine
// runs request after request, and every connection that became readable
// meanwhile waits, seconds at a thousand connections. runtime.Gosched
// does not help: the goroutine goes back to the run queue, which the
// runtime empties before it polls. Waiting in the poller does: the next
// poll wakes every ready connection at once, each gets one read, and then
// waits in the poller again, so ready connections take turns. When no
// data is there the wait is the one the Read would have made anyway.
// Waiting only every fourth Read, or only once 10 ms passed since the
// last wait, brought the starvation back (p99 4-5 s at a thousand
// connections); 1 ms gained nothing over every Read (internal/httpbench).
func (c *tcpConn) Read(b []byte) (int, error) {
	if len(b) > 0 { // an empty Read returns at once, as net.TCPConn's does
		c.yield()
	}
	return c.TCPConn.Read(b)
}

// yield waits once for the connection to be readable in the runtime's
// poller (RawConn.Read waits when its function returns false). Errors,
// a closed connection or a passed deadline among them, are left to the
// Read that follows, which reports them as a Read does.
func (c *tcpConn) yield() {
	rc, err := c.TCPConn.SyscallConn()
	if err != nil {
		return
	}
	waited := false
	_ = rc.Read(func(uintptr) bool {
		if waited {
			return true
		}
		waited = true
		return false
	})
}

// LocalAddr returns the local address reported by the host.
func (c *tcpConn) LocalAddr() net.Addr { return c.addr(false) }

// RemoteAddr returns the peer address reported by the host.
func (c *tcpConn) RemoteAddr() net.Addr { return c.addr(true) }

// addr returns the local (peer false) or remote address, asking the host
// the first time. It is never nil, so that callers can always format it.
func (c *tcpConn) addr(peer bool) *net.TCPAddr {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &c.laddr
	if peer {
		p = &c.raddr
	}
	if *p != nil {
		return *p
	}
	ap, ok := c.fetchAddr(peer)
	if !ok {
		// Closed (or the host does not know): not kept, see tcpConn.
		return &net.TCPAddr{}
	}
	*p = net.TCPAddrFromAddrPort(ap)
	return *p
}

// fetchAddr asks the host for one address of the open connection. Control
// holds a reference on the descriptor for the call, so a concurrent Close
// cannot let its number be reused under it.
func (c *tcpConn) fetchAddr(peer bool) (netip.AddrPort, bool) {
	rc, err := c.TCPConn.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, false
	}
	var ap netip.AddrPort
	var aerr error
	if err := rc.Control(func(fd uintptr) {
		if peer {
			ap, aerr = peerAddr(int(fd))
		} else {
			ap, aerr = localAddr(int(fd))
		}
	}); err != nil || aerr != nil {
		return netip.AddrPort{}, false
	}
	return ap, true
}

// Listen announces on the local address. network is "tcp", "tcp4" or
// "tcp6"; an empty host listens on the wildcard address of the family
// ("tcp" means IPv4 unless the host is an IPv6 literal or name).
func Listen(network, address string) (net.Listener, error) {
	ctx := context.Background()
	p, fam, err := parseNetwork(network)
	if err != nil || p != tcp {
		return nil, opError("listen", network, nil, net.UnknownNetworkError(network))
	}
	ap, err := listenAddr(ctx, network, fam, address)
	if err != nil {
		return nil, opError("listen", network, nil, err)
	}
	laddr := netAddr(p, ap)
	fail := func(err error) (net.Listener, error) { return nil, opError("listen", network, laddr, err) }
	fd, err := newSocket(p, ap.Addr())
	if err != nil {
		return fail(err)
	}
	// Like Go's own listeners: allow quick restarts. Hosts that refuse the
	// option are fine.
	_ = setsockoptInt(fd, solSocket, soReuseAddr, 1)
	if err := bindSocket(fd, ap); err != nil {
		syscall.Close(fd)
		return fail(sysError("bind", err))
	}
	// The largest backlog: the host clamps it to the system's maximum
	// (net.core.somaxconn on Linux), as native Go's net.Listen asks for
	// that maximum; 128 made the kernel drop SYNs under a burst of
	// connections (docs/sockets.md, "Limits").
	if err := listenSocket(fd, math.MaxInt32); err != nil {
		syscall.Close(fd)
		return fail(sysError("listen", err))
	}
	return FileListener(os.NewFile(uintptr(fd), "listener"))
}

// FileListener returns a listener for a listening socket the host handed
// to the program (for example a preopened socket from `wasmgate run
// --listen`), reporting real addresses for the listener and for every
// accepted connection. f is consumed.
func FileListener(f *os.File) (net.Listener, error) {
	// f.Fd would switch the socket to blocking mode; Control does not.
	var la netip.AddrPort
	var err error
	rc, rerr := f.SyscallConn()
	if rerr != nil {
		f.Close()
		return nil, rerr
	}
	if cerr := rc.Control(func(fd uintptr) {
		// A preopened socket starts in blocking mode; an accept that
		// blocks in the host would freeze every goroutine of the
		// program, so the runtime's netpoller must do the waiting.
		if err = syscall.SetNonblock(int(fd), true); err == nil {
			la, err = localAddr(int(fd))
		}
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		f.Close()
		return nil, sysError("getsockname", err)
	}
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	tl, ok := l.(*net.TCPListener)
	if !ok {
		l.Close()
		return nil, syscall.ENOTSOCK
	}
	return &listener{TCPListener: tl, addr: net.TCPAddrFromAddrPort(la)}, nil
}

// listener wraps *net.TCPListener to report addresses.
type listener struct {
	*net.TCPListener
	addr *net.TCPAddr
}

// Addr returns the listening address reported by the host.
func (l *listener) Addr() net.Addr { return l.addr }

// Accept waits for the next connection. Its addresses are asked of the
// host when first needed (see tcpConn).
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return &tcpConn{TCPConn: c}, nil
}

// listenAddr resolves a listening address: an empty host is the wildcard.
func listenAddr(ctx context.Context, network string, fam int, address string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	pn, err := parsePort(ctx, network, port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if host == "" {
		if fam == 6 {
			return netip.AddrPortFrom(netip.IPv6Unspecified(), pn), nil
		}
		return netip.AddrPortFrom(netip.IPv4Unspecified(), pn), nil
	}
	aps, err := (*Resolver)(nil).resolveAddrPorts(ctx, network, fam, address, true)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return aps[0], nil
}

func parsePort(ctx context.Context, network, port string) (uint16, error) {
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		return uint16(n), nil
	}
	n, err := net.DefaultResolver.LookupPort(ctx, network, port)
	if err != nil {
		return 0, err
	}
	return uint16(n), nil
}
