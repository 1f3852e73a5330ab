//go:build linux

package network

import (
	"context"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxLingerSeconds bounds SO_LINGER: with lingering on, close(2) blocks
// (even on a non-blocking socket) for up to that long, and a guest must not
// be able to pin a host thread for hours.
const maxLingerSeconds = 10

// maxListenBacklog is net.core.somaxconn, read once as native Go does
// (net.maxListenerBacklog), or 4096, Linux's default since 5.4, when it
// cannot be read.
var maxListenBacklog = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 4096
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 4096
	}
	return min(n, math.MaxInt32)
})

type systemSocket struct {
	proto  Proto
	family Family

	// mu guards fd against Close: every operation holds it for reading
	// while it uses the descriptor, so a concurrent Close cannot let the
	// number be reused under a running syscall. Operations never block.
	mu sync.RWMutex
	fd int // -1 once closed

	// Splice state (splice_linux.go): spMu guards pipe, which holds
	// bytes read from this socket but not yet written; hasPipe lets Recv
	// skip spMu on sockets that never spliced.
	spMu    sync.Mutex
	pipe    *splicePipe
	hasPipe atomic.Bool
}

func newSystemSocket(proto Proto, family Family) (Socket, error) {
	domain, typ, p := unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_TCP
	if family == IPv6 {
		domain = unix.AF_INET6
	}
	if proto == UDP {
		typ, p = unix.SOCK_DGRAM, unix.IPPROTO_UDP
	}
	fd, err := unix.Socket(domain, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, p)
	if err != nil {
		return nil, opErr("socket", proto, netip.AddrPort{}, err)
	}
	if family == IPv6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			unix.Close(fd)
			return nil, opErr("socket", proto, netip.AddrPort{}, err)
		}
	}
	return &systemSocket{proto: proto, family: family, fd: fd}, nil
}

func (s *systemSocket) Proto() Proto   { return s.proto }
func (s *systemSocket) Family() Family { return s.family }

// with runs f on the open descriptor, or fails with EBADF after Close.
func (s *systemSocket) with(f func(fd int) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return syscall.EBADF
	}
	if testHookUse != nil {
		testHookUse(s.fd)
	}
	return f(s.fd)
}

// testHookUse, when set by a test, runs while a descriptor is in use.
var testHookUse func(fd int)

// sockaddr converts ap for this socket's family. An IPv6 socket takes an
// IPv4 address as IPv4-mapped; an IPv4 socket cannot take a real IPv6 one.
func (s *systemSocket) sockaddr(ap netip.AddrPort) (unix.Sockaddr, error) {
	a := ap.Addr()
	if !a.IsValid() {
		return nil, syscall.EINVAL
	}
	if s.family == IPv4 {
		a = a.Unmap()
		if !a.Is4() {
			return nil, syscall.EAFNOSUPPORT
		}
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			sa.ZoneId = uint32(n)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else {
			return nil, syscall.EINVAL
		}
	}
	return sa, nil
}

// addrPort converts a kernel address; IPv4-mapped is unmapped and the
// scope id is dropped (policy never sees zones).
func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

func (s *systemSocket) Bind(ctx context.Context, local netip.AddrPort) error {
	return opErr("bind", s.proto, local, s.with(func(fd int) error {
		sa, err := s.sockaddr(local)
		if err != nil {
			return err
		}
		return unix.Bind(fd, sa)
	}))
}

func (s *systemSocket) Connect(ctx context.Context, remote netip.AddrPort) error {
	return opErr("connect", s.proto, remote, s.with(func(fd int) error {
		sa, err := s.sockaddr(remote)
		if err != nil {
			return err
		}
		err = unix.Connect(fd, sa)
		if err == syscall.EINTR {
			// The connect goes on in the background; retrying would
			// give EALREADY.
			err = syscall.EINPROGRESS
		}
		return err
	}))
}

// Listen listens with backlog clamped to the system's maximum,
// net.core.somaxconn (a negative backlog means that maximum too), so that a
// guest asking for a huge backlog gets what native Go's net.Listen gets.
func (s *systemSocket) Listen(ctx context.Context, backlog int) error {
	if m := maxListenBacklog(); backlog < 0 || backlog > m {
		backlog = m
	}
	return opErr("listen", s.proto, netip.AddrPort{}, s.with(func(fd int) error {
		if s.proto != TCP {
			return syscall.EOPNOTSUPP
		}
		return unix.Listen(fd, backlog)
	}))
}

// RefusePending implements Refuser: it accepts up to max pending
// connections and closes each with SO_LINGER 0 (a reset), until the queue
// is empty (EAGAIN). The fds live only for the three syscalls this takes.
func (s *systemSocket) RefusePending(max int) int {
	n := 0
	_ = s.with(func(fd int) error {
		for n < max {
			nfd, _, err := accept4(fd)
			switch err {
			case nil:
			case syscall.EINTR, syscall.ECONNABORTED:
				continue
			default:
				return err
			}
			_ = unix.SetsockoptLinger(nfd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			_ = unix.Close(nfd)
			n++
		}
		return nil
	})
	return n
}

func (s *systemSocket) Accept(ctx context.Context) (Socket, error) {
	c, _, err := s.acceptPeer(ctx)
	return c, err
}

// acceptPeer is Accept that also returns the peer's address, which the
// kernel hands over with the connection: Default's tcp.accept check needs
// it for every connection, and asking for it again (getpeername) would be
// one more syscall per accept.
func (s *systemSocket) acceptPeer(ctx context.Context) (Socket, netip.AddrPort, error) {
	var c Socket
	var peer netip.AddrPort
	err := s.with(func(fd int) error {
		for {
			nfd, ap, err := accept4(fd)
			switch err {
			case nil:
				c, peer = &systemSocket{proto: s.proto, family: s.family, fd: nfd}, ap
				return nil
			case syscall.EINTR, syscall.ECONNABORTED:
				continue // the connection went away before we took it: try the next
			}
			return err
		}
	})
	if err != nil {
		return nil, netip.AddrPort{}, opErr("accept", s.proto, netip.AddrPort{}, err)
	}
	return c, peer, nil
}

func (s *systemSocket) Recv(ctx context.Context, bufs [][]byte, flags RecvFlags) (int, netip.AddrPort, RecvResult, error) {
	var (
		n    int
		from netip.AddrPort
		out  RecvResult
	)
	f := 0
	if flags&RecvPeek != 0 {
		f |= unix.MSG_PEEK
	}
	if flags&RecvWaitAll != 0 {
		f |= unix.MSG_WAITALL
	}
	if s.hasPipe.Load() {
		// What a Splice read from this socket but did not write comes
		// first (see Splicer).
		if n, ok, err := s.recvPending(bufs, flags); ok {
			if err != nil {
				return 0, netip.AddrPort{}, 0, opErr("recv", s.proto, netip.AddrPort{}, err)
			}
			return n, netip.AddrPort{}, 0, nil
		}
	}
	err := s.with(func(fd int) error {
		return ignoringEINTR(func() error {
			var rflags int
			var sa unix.Sockaddr
			var err error
			n, _, rflags, sa, err = unix.RecvmsgBuffers(fd, bufs, nil, f)
			if err != nil {
				return err
			}
			if rflags&unix.MSG_TRUNC != 0 {
				out |= RecvTruncated
			}
			if s.proto == UDP && sa != nil {
				from = addrPort(sa)
			}
			return nil
		})
	})
	if err != nil {
		return 0, netip.AddrPort{}, 0, opErr("recv", s.proto, netip.AddrPort{}, err)
	}
	return n, from, out, nil
}

func (s *systemSocket) Send(ctx context.Context, bufs [][]byte, to netip.AddrPort, flags SendFlags) (int, error) {
	var n int
	err := s.with(func(fd int) error {
		var sa unix.Sockaddr
		if to.IsValid() {
			if s.proto == TCP {
				return syscall.EISCONN // a stream has one peer, chosen by connect
			}
			var err error
			if sa, err = s.sockaddr(to); err != nil {
				return err
			}
		}
		return ignoringEINTR(func() error {
			var err error
			n, err = unix.SendmsgBuffers(fd, bufs, nil, sa, unix.MSG_NOSIGNAL)
			return err
		})
	})
	if err != nil {
		return 0, opErr("send", s.proto, to, err)
	}
	return n, nil
}

func (s *systemSocket) Shutdown(how ShutdownHow) error {
	var h int
	switch how {
	case ShutRead:
		h = unix.SHUT_RD
	case ShutWrite:
		h = unix.SHUT_WR
	case ShutBoth:
		h = unix.SHUT_RDWR
	default:
		return opErr("shutdown", s.proto, netip.AddrPort{}, syscall.EINVAL)
	}
	return opErr("shutdown", s.proto, netip.AddrPort{}, s.with(func(fd int) error { return unix.Shutdown(fd, h) }))
}

// sockOpts maps the options that are plain integers.
var sockOpts = map[SockOption][2]int{
	SockOptReuseAddr:  {unix.SOL_SOCKET, unix.SO_REUSEADDR},
	SockOptDontRoute:  {unix.SOL_SOCKET, unix.SO_DONTROUTE},
	SockOptBroadcast:  {unix.SOL_SOCKET, unix.SO_BROADCAST},
	SockOptSndBuf:     {unix.SOL_SOCKET, unix.SO_SNDBUF},
	SockOptRcvBuf:     {unix.SOL_SOCKET, unix.SO_RCVBUF},
	SockOptKeepAlive:  {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
	SockOptOOBInline:  {unix.SOL_SOCKET, unix.SO_OOBINLINE},
	SockOptRcvLowat:   {unix.SOL_SOCKET, unix.SO_RCVLOWAT},
	SockOptAcceptConn: {unix.SOL_SOCKET, unix.SO_ACCEPTCONN},
	SockOptTCPNoDelay: {unix.IPPROTO_TCP, unix.TCP_NODELAY},
}

// GetOption reads opt. SockOptType gives the WASI values (1 datagram, 2
// stream); SockOptError gives the pending errno and clears it;
// SockOptSndBuf/RcvBuf give half of what Linux reports, i.e. the value
// that was set (Linux doubles it for bookkeeping); SockOptLinger gives
// seconds or -1 when off. SockOptRcvTimeo, SockOptSndTimeo,
// SockOptBindToDevice and unknown options fail with ENOPROTOOPT: the host
// implements timeouts itself, and device binding would route around policy.
// SockOptTCPNoDelay on a UDP socket fails with ENOPROTOOPT too.
func (s *systemSocket) GetOption(opt SockOption) (int, error) {
	var v int
	err := s.with(func(fd int) error {
		var err error
		switch opt {
		case SockOptType:
			v = 2
			if s.proto == UDP {
				v = 1
			}
		case SockOptError:
			v, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		case SockOptLinger:
			var l *unix.Linger
			if l, err = unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER); err == nil {
				v = -1
				if l.Onoff != 0 {
					v = int(l.Linger)
				}
			}
		case SockOptSndBuf, SockOptRcvBuf:
			o := sockOpts[opt]
			if v, err = unix.GetsockoptInt(fd, o[0], o[1]); err == nil {
				v /= 2
			}
		default:
			o, ok := sockOpts[opt]
			if !ok || (opt == SockOptTCPNoDelay && s.proto != TCP) {
				return syscall.ENOPROTOOPT
			}
			v, err = unix.GetsockoptInt(fd, o[0], o[1])
		}
		return err
	})
	if err != nil {
		return 0, opErr("getsockopt", s.proto, netip.AddrPort{}, err)
	}
	return v, nil
}

// SetOption sets opt. Read-only options (Type, Error, AcceptConn) and the
// unsupported ones (see GetOption) fail with ENOPROTOOPT. SockOptLinger
// takes seconds, -1 for off, and is capped at 10 s because close(2) blocks
// while lingering.
func (s *systemSocket) SetOption(opt SockOption, value int) error {
	err := s.with(func(fd int) error {
		switch opt {
		case SockOptType, SockOptError, SockOptAcceptConn:
			return syscall.ENOPROTOOPT
		case SockOptLinger:
			l := &unix.Linger{}
			if value >= 0 {
				l.Onoff, l.Linger = 1, int32(min(value, maxLingerSeconds))
			}
			return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, l)
		}
		o, ok := sockOpts[opt]
		if !ok || (opt == SockOptTCPNoDelay && s.proto != TCP) {
			return syscall.ENOPROTOOPT
		}
		return unix.SetsockoptInt(fd, o[0], o[1], value)
	})
	return opErr("setsockopt", s.proto, netip.AddrPort{}, err)
}

func (s *systemSocket) LocalAddr() (netip.AddrPort, error) {
	var ap netip.AddrPort
	err := s.with(func(fd int) error {
		var err error
		ap, err = sockName(fd, false)
		return err
	})
	return ap, opErr("getsockname", s.proto, netip.AddrPort{}, err)
}

func (s *systemSocket) PeerAddr() (netip.AddrPort, error) {
	var ap netip.AddrPort
	err := s.with(func(fd int) error {
		var err error
		ap, err = sockName(fd, true)
		return err
	})
	return ap, opErr("getpeername", s.proto, netip.AddrPort{}, err)
}

func (s *systemSocket) Fd() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fd
}

// Close closes the descriptor once, and the splice pipe with any bytes
// still pending in it; later calls return nil.
func (s *systemSocket) Close() error {
	// spMu first (the lock order of Splice), held throughout, so that no
	// Splice can make a new pipe between freeing it and closing fd.
	s.spMu.Lock()
	defer s.spMu.Unlock()
	s.freePipe()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return nil
	}
	fd := s.fd
	s.fd = -1
	// close(2) releases the descriptor even when it reports an error.
	return opErr("close", s.proto, netip.AddrPort{}, unix.Close(fd))
}

// accept4 takes the next connection and decodes its peer's address here:
// unix.Accept4 would spend an extra getsockopt(SO_PROTOCOL) syscall on
// decoding an AF_INET address (see sockName). The address is the zero
// value if the kernel reports something that is not IPv4 or IPv6.
func accept4(fd int) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	l := uint32(unsafe.Sizeof(rsa))
	nfd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&l)),
		uintptr(unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC), 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(nfd), rawAddrPort(&rsa, l), nil
}

// sockName is getsockname(2) (peer false) or getpeername(2), decoded here.
// unix.Getsockname and unix.Getpeername spend a getsockopt(SO_PROTOCOL)
// syscall on every AF_INET/AF_INET6 address to recognise L2TP sockets,
// which ours never are; strace showed five of them per accepted guest
// connection.
func sockName(fd int, peer bool) (netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	l := uint32(unsafe.Sizeof(rsa))
	trap := uintptr(unix.SYS_GETSOCKNAME)
	if peer {
		trap = unix.SYS_GETPEERNAME
	}
	_, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return netip.AddrPort{}, e
	}
	return rawAddrPort(&rsa, l), nil
}

// rawAddrPort converts a kernel address of length l like addrPort does
// (IPv4-mapped unmapped, scope dropped); anything else is the zero value.
func rawAddrPort(rsa *unix.RawSockaddrAny, l uint32) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		if l < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), portOf(&sa.Port))
	case unix.AF_INET6:
		if l < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}
		}
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), portOf(&sa.Port))
	}
	return netip.AddrPort{}
}

// portOf reads a sockaddr port, which is in network byte order.
func portOf(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}

// adoptSystemListener duplicates l's descriptor (close-on-exec,
// non-blocking) after checking that it is a listening TCP socket of an
// IP family: the guest must not be handed a UNIX socket or a connection
// under the name of a listener.
func adoptSystemListener(l syscall.Conn) (Socket, error) {
	fail := func(err error) (Socket, error) {
		return nil, opErr("adopt", TCP, netip.AddrPort{}, err)
	}
	rc, err := l.SyscallConn()
	if err != nil {
		return fail(err)
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return fail(err)
	}
	if derr != nil {
		return fail(derr)
	}
	check := func() (Family, error) {
		if t, err := unix.GetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || t != unix.SOCK_STREAM {
			return 0, syscall.ENOTSOCK
		}
		// Go's net.Listen makes Multipath TCP listeners by default
		// (Go 1.24 on): that is TCP to the guest and to the policy.
		if p, err := unix.GetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil || p != unix.IPPROTO_TCP && p != unix.IPPROTO_MPTCP {
			return 0, syscall.ENOTSOCK
		}
		if a, err := unix.GetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || a != 1 {
			return 0, syscall.ENOTSOCK
		}
		d, err := unix.GetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			return 0, syscall.ENOTSOCK
		}
		switch d {
		case unix.AF_INET:
			return IPv4, nil
		case unix.AF_INET6:
			return IPv6, nil
		}
		return 0, syscall.ENOTSOCK
	}
	fam, err := check()
	if err == nil {
		// The duplicate shares the file status flags with l: l is
		// non-blocking already when it is a Go net.Listener.
		err = unix.SetNonblock(nfd, true)
	}
	if err != nil {
		unix.Close(nfd)
		return fail(err)
	}
	return &systemSocket{proto: TCP, family: fam, fd: nfd}, nil
}
