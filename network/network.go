// Package network is the boundary between a guest and the host's network.
//
// The host (package host) performs every network operation of a guest through
// a Network. System performs real system calls with no checks at all. Default
// wraps another Network (System unless told otherwise) and asks a Policy
// before each operation, keeps the guest's name bindings, canonicalises
// addresses, and fails closed.
//
// All sockets are non-blocking: an operation that would block returns
// syscall.EAGAIN (or syscall.EINPROGRESS for a stream connect), and the
// caller waits for readiness on Socket.Fd with poll(2) or similar. The host
// builds the guest's blocking semantics on top of that, so that a blocked
// guest can always be cancelled.
package network

import (
	"context"
	"net/netip"

	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Network is what the host calls: name resolution and socket creation.
// Implementations must be safe for concurrent use.
type Network interface {
	// ResolveAddresses resolves name to addresses. name may be an IP
	// literal, which resolves to itself.
	ResolveAddresses(ctx context.Context, name string) ([]netip.Addr, error)
	// Socket creates an unbound, non-blocking socket.
	Socket(ctx context.Context, proto Proto, family Family) (Socket, error)
}

// Proto is a transport protocol.
type Proto uint8

// Protocols.
const (
	TCP Proto = iota + 1
	UDP
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "proto(" + itoa(int(p)) + ")"
}

// Family is an address family.
type Family uint8

// Address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ip4"
	case IPv6:
		return "ip6"
	}
	return "family(" + itoa(int(f)) + ")"
}

// Socket is one socket. Methods may be called concurrently, though a guest
// normally does not. Every method that would block returns syscall.EAGAIN
// (Connect on a stream socket returns syscall.EINPROGRESS and completes
// later: wait for writability, then read SockOptError).
type Socket interface {
	Proto() Proto
	Family() Family

	Bind(ctx context.Context, local netip.AddrPort) error
	Connect(ctx context.Context, remote netip.AddrPort) error
	Listen(ctx context.Context, backlog int) error
	// Accept returns the next connection, already non-blocking.
	Accept(ctx context.Context) (Socket, error)

	// Recv reads into bufs (readv semantics). For datagram sockets from is
	// the sender; for stream sockets it is the zero AddrPort. n == 0 with
	// a nil error on a stream socket means end of stream.
	Recv(ctx context.Context, bufs [][]byte, flags RecvFlags) (n int, from netip.AddrPort, out RecvResult, err error)
	// Send writes bufs (writev semantics) to the connected peer when to is
	// the zero AddrPort, or to the given destination (datagram sockets).
	Send(ctx context.Context, bufs [][]byte, to netip.AddrPort, flags SendFlags) (int, error)

	Shutdown(how ShutdownHow) error
	GetOption(opt SockOption) (int, error)
	SetOption(opt SockOption, value int) error
	LocalAddr() (netip.AddrPort, error)
	// PeerAddr fails with syscall.ENOTCONN while a connect is pending.
	PeerAddr() (netip.AddrPort, error)

	// Fd returns the host file descriptor to wait on for readiness, or -1
	// when the socket has none (a simulated network).
	Fd() int
	Close() error
}

// RecvFlags modify Recv.
type RecvFlags uint8

// Receive flags.
const (
	RecvPeek    RecvFlags = 1 << iota // MSG_PEEK
	RecvWaitAll                       // MSG_WAITALL
)

// RecvResult reports facts about a completed Recv.
type RecvResult uint8

// RecvTruncated: the datagram was larger than the buffers.
const RecvTruncated RecvResult = 1

// SendFlags modify Send. None are defined yet; pass 0.
type SendFlags uint8

// ShutdownHow says which direction(s) Shutdown closes.
type ShutdownHow uint8

// Shutdown directions.
const (
	ShutRead  ShutdownHow = 1
	ShutWrite ShutdownHow = 2
	ShutBoth  ShutdownHow = ShutRead | ShutWrite
)

// SockOption names a socket option. Values are integers; booleans are 0 or 1.
type SockOption uint8

// Socket options (the WasmEdge SOL_SOCKET set, plus TCP_NODELAY).
const (
	SockOptReuseAddr SockOption = iota
	SockOptType                 // read-only: 1 datagram, 2 stream (the WASI values)
	SockOptError                // read-only: pending error as a host errno (syscall.Errno), cleared on read
	SockOptDontRoute
	SockOptBroadcast
	SockOptSndBuf
	SockOptRcvBuf
	SockOptKeepAlive
	SockOptOOBInline
	SockOptLinger // seconds; -1 = off
	SockOptRcvLowat
	SockOptRcvTimeo // not supported (the host implements timeouts)
	SockOptSndTimeo // not supported
	SockOptAcceptConn
	SockOptBindToDevice // not supported
	SockOptTCPNoDelay
)

// Policy decides network operations. Decide must be safe for concurrent
// use. Anything but an allowing verdict with a nil error is a deny.
type Policy interface {
	Decide(ctx context.Context, req *Request) (Verdict, error)
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(ctx context.Context, req *Request) (Verdict, error)

// Decide calls f.
func (f PolicyFunc) Decide(ctx context.Context, req *Request) (Verdict, error) { return f(ctx, req) }

// Request is the wire request (docs/plugins.md#4-the-wire-format), shared with plugins.
type Request = policy.Request

// Verdict is the wire verdict (docs/plugins.md#4-the-wire-format), shared with plugins.
type Verdict = policy.Verdict

// Op is a policy operation.
type Op = policy.Op

// Decision is a verdict together with where it came from. A Policy that can
// name the plugin that decided (the plugin chain) returns its verdicts from
// Decide as usual and may implement Explainer for the rest.
type Decision struct {
	Verdict
	Plugin string // the plugin that decided; empty when no single one did
}

// Explainer is implemented by policies that can say which plugin decided.
// Default uses it, when present, to fill DeniedError.Plugin.
type Explainer interface {
	DecideExplain(ctx context.Context, req *Request) (Decision, error)
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	neg := i < 0
	if neg {
		i = -i
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
