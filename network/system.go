package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// System is the Network of the host operating system: real sockets and the
// system resolver, with no checks at all. Use it through Default unless the
// guest is fully trusted. The zero value is ready to use.
//
// Sockets are raw non-blocking, close-on-exec file descriptors (Linux). On
// other operating systems Socket fails with syscall.ENOSYS.
//
// Addresses: an IPv6 socket given an IPv4 address uses the IPv4-mapped
// form, which is the same destination, and IPv6 sockets are dual-stack
// (IPV6_V6ONLY is set to 0 so the behaviour does not depend on the host's
// net.ipv6.bindv6only). Addresses that System reports (LocalAddr, PeerAddr,
// the sender of a datagram) are what the kernel gives, with IPv4-mapped
// addresses unmapped and scope ids dropped.
//
// Options: SockOptType reads 1 (datagram) or 2 (stream), the WASI values;
// SockOptError reads and clears the pending errno (how a non-blocking
// connect reports its outcome); SockOptSndBuf/RcvBuf read half of what
// Linux reports, i.e. the value that was set (Linux doubles it for its
// bookkeeping); SockOptLinger is seconds, -1 for off, capped at 10 s
// because close(2) blocks while lingering. Read-only options (Type, Error,
// AcceptConn) cannot be set, and SockOptRcvTimeo/SndTimeo (the host
// implements timeouts), SockOptBindToDevice (it would route around address
// policy), TCP options on UDP sockets and unknown options fail with
// ENOPROTOOPT. Send uses MSG_NOSIGNAL: a closed peer is EPIPE, never
// SIGPIPE. A Send with a destination on a stream socket fails with EISCONN.
// Close is idempotent; every other method fails with EBADF after it.
type System struct{}

// ResolveAddresses resolves name with the system resolver. An IP literal
// resolves to itself (unmapped; a zone is an error).
func (System) ResolveAddresses(ctx context.Context, name string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		a, err = CanonicalAddr(a)
		if err != nil {
			return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: err}
		}
		return []netip.Addr{a}, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: err}
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// Socket creates a non-blocking socket.
func (System) Socket(ctx context.Context, proto Proto, family Family) (Socket, error) {
	if err := checkProtoFamily(proto, family); err != nil {
		return nil, &OpError{Op: "socket", Net: proto.String(), Err: err}
	}
	return newSystemSocket(proto, family)
}

func checkProtoFamily(proto Proto, family Family) error {
	if family != IPv4 && family != IPv6 {
		return syscall.EAFNOSUPPORT
	}
	if proto != TCP && proto != UDP {
		return syscall.EPROTONOSUPPORT
	}
	return nil
}

// opErr wraps a syscall error as the OpError every socket method returns.
func opErr(op string, proto Proto, addr netip.AddrPort, err error) error {
	if err == nil {
		return nil
	}
	s := ""
	if addr.IsValid() {
		s = addr.String()
	}
	return &OpError{Op: op, Net: proto.String(), Addr: s, Err: err}
}

// Adopter is a Network that can take over a listening TCP socket that the
// host already has, such as one a supervisor passed in or a net.Listener
// the embedding program opened (host.Config.WithListener).
type Adopter interface {
	// AdoptListener returns a Socket on a duplicate of l's descriptor:
	// l stays the caller's, and closing either closes only that copy.
	// It fails with ENOTSOCK unless l is a listening TCP socket of the
	// IPv4 or IPv6 family.
	AdoptListener(ctx context.Context, l syscall.Conn) (Socket, error)
}

// AdoptListener implements Adopter with the system's sockets.
func (System) AdoptListener(ctx context.Context, l syscall.Conn) (Socket, error) {
	return adoptSystemListener(l)
}
