package network

import (
	"context"
	"net/netip"
	"sync"
	"syscall"
)

// Simulated is a Network that opens no sockets and sends nothing. It keeps
// just enough state (bound addresses, ephemeral ports, listeners, queued
// connections and datagrams) for a Default on top of it to go through
// exactly the decisions a real guest would cause: `wasmgate decide`,
// tests, and benchmarks of the policy path. Dial and Deliver play the
// remote side. Every Socket's Fd is -1.
//
// Connects complete at once (no EINPROGRESS). Stream sockets never
// receive data (Recv gives EAGAIN); sends are counted and discarded.
//
// The zero value is ready to use; use it as a pointer.
type Simulated struct {
	mu       sync.Mutex
	nextPort uint16
	bound    map[bindKey]*simSocket
}

type bindKey struct {
	proto Proto
	ap    netip.AddrPort
}

// ResolveAddresses resolves IP literals only; names fail with ErrNotFound
// (Default resolves through its own Resolver, never through its Network).
func (n *Simulated) ResolveAddresses(ctx context.Context, name string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		if a, err = CanonicalAddr(a); err != nil {
			return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: err}
		}
		return []netip.Addr{a}, nil
	}
	return nil, &OpError{Op: "resolve", Net: "dns", Addr: name, Err: ErrNotFound}
}

// Socket creates a simulated socket.
func (n *Simulated) Socket(ctx context.Context, proto Proto, family Family) (Socket, error) {
	if err := checkProtoFamily(proto, family); err != nil {
		return nil, &OpError{Op: "socket", Net: proto.String(), Err: err}
	}
	return &simSocket{n: n, proto: proto, family: family}, nil
}

// Dial queues a connection from peer to the TCP listener bound at local
// (exactly, or on the wildcard address of its family with local's port);
// the listener's next Accept returns it. A peer without an IP address
// fails with EINVAL: no kernel reports one.
func (n *Simulated) Dial(local, peer netip.AddrPort) error {
	if !peer.Addr().IsValid() {
		return &OpError{Op: "dial", Net: "tcp", Addr: local.String(), Err: syscall.EINVAL}
	}
	s := n.find(TCP, local)
	if s == nil {
		return &OpError{Op: "dial", Net: "tcp", Addr: local.String(), Err: syscall.ECONNREFUSED}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.listening || s.closed {
		return &OpError{Op: "dial", Net: "tcp", Addr: local.String(), Err: syscall.ECONNREFUSED}
	}
	s.pending = append(s.pending, reported(peer))
	return nil
}

// Deliver queues a datagram from from to the UDP socket bound at to. A
// sender without an IP address fails with EINVAL: no kernel reports one.
func (n *Simulated) Deliver(to, from netip.AddrPort, data []byte) error {
	if !from.Addr().IsValid() {
		return &OpError{Op: "deliver", Net: "udp", Addr: to.String(), Err: syscall.EINVAL}
	}
	from = reported(from)
	s := n.find(UDP, to)
	if s == nil {
		return &OpError{Op: "deliver", Net: "udp", Addr: to.String(), Err: syscall.ECONNREFUSED}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.peer.IsValid() && s.peer != from) {
		return nil // dropped, as the kernel drops it
	}
	s.dgrams = append(s.dgrams, simDatagram{from: from, data: append([]byte(nil), data...)})
	return nil
}

func (n *Simulated) find(proto Proto, ap netip.AddrPort) *simSocket {
	ap = reported(ap)
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.bound[bindKey{proto, ap}]; s != nil {
		return s
	}
	wild := netip.IPv4Unspecified()
	if ap.Addr().Is6() {
		wild = netip.IPv6Unspecified()
	}
	if s := n.bound[bindKey{proto, netip.AddrPortFrom(wild, ap.Port())}]; s != nil {
		return s
	}
	// A dual-stack IPv6 wildcard listener takes IPv4 too.
	return n.bound[bindKey{proto, netip.AddrPortFrom(netip.IPv6Unspecified(), ap.Port())}]
}

// bind registers s at ap, choosing an ephemeral port for port 0.
func (n *Simulated) bind(s *simSocket, ap netip.AddrPort) (netip.AddrPort, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.bound == nil {
		n.bound = make(map[bindKey]*simSocket)
	}
	if ap.Port() == 0 {
		for range 16384 {
			n.nextPort++
			k := bindKey{s.proto, netip.AddrPortFrom(ap.Addr(), 49152+n.nextPort%16384)}
			if n.bound[k] == nil {
				n.bound[k] = s
				return k.ap, nil
			}
		}
		return ap, syscall.EADDRINUSE
	}
	k := bindKey{s.proto, ap}
	if n.bound[k] != nil {
		return ap, syscall.EADDRINUSE
	}
	n.bound[k] = s
	return ap, nil
}

func (n *Simulated) unbind(s *simSocket, ap netip.AddrPort) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if k := (bindKey{s.proto, ap}); n.bound[k] == s {
		delete(n.bound, k)
	}
}

type simDatagram struct {
	from netip.AddrPort
	data []byte
}

type simSocket struct {
	n      *Simulated
	proto  Proto
	family Family

	mu        sync.Mutex
	local     netip.AddrPort // valid once bound
	peer      netip.AddrPort // valid once connected
	listening bool
	closed    bool
	shut      ShutdownHow
	pending   []netip.AddrPort
	dgrams    []simDatagram
	opts      map[SockOption]int
	sent      int
}

func (s *simSocket) Proto() Proto   { return s.proto }
func (s *simSocket) Family() Family { return s.family }

func (s *simSocket) err(op string, ap netip.AddrPort, e error) error {
	return opErr(op, s.proto, ap, e)
}

// checkAddr applies the family rules of a real socket.
func (s *simSocket) checkAddr(ap netip.AddrPort) (netip.AddrPort, error) {
	if !ap.Addr().IsValid() {
		return ap, syscall.EINVAL
	}
	ap = reported(ap)
	if s.family == IPv4 && !ap.Addr().Is4() {
		return ap, syscall.EAFNOSUPPORT
	}
	return ap, nil
}

// bindLocked binds s; s.mu is held.
func (s *simSocket) bindLocked(ap netip.AddrPort) error {
	if s.closed {
		return syscall.EBADF
	}
	if s.local.IsValid() {
		return syscall.EINVAL
	}
	ap, err := s.n.bind(s, ap)
	if err != nil {
		return err
	}
	s.local = ap
	return nil
}

func (s *simSocket) wildcard() netip.AddrPort {
	if s.family == IPv6 {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
}

func (s *simSocket) Bind(ctx context.Context, local netip.AddrPort) error {
	ap, err := s.checkAddr(local)
	if err != nil {
		return s.err("bind", local, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err("bind", local, s.bindLocked(ap))
}

func (s *simSocket) Connect(ctx context.Context, remote netip.AddrPort) error {
	ap, err := s.checkAddr(remote)
	if err != nil {
		return s.err("connect", remote, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return s.err("connect", remote, syscall.EBADF)
	case s.listening:
		return s.err("connect", remote, syscall.EINVAL)
	case s.proto == TCP && s.peer.IsValid():
		return s.err("connect", remote, syscall.EISCONN)
	}
	if !s.local.IsValid() {
		if err := s.bindLocked(s.wildcard()); err != nil {
			return s.err("connect", remote, err)
		}
	}
	s.peer = ap
	return nil
}

func (s *simSocket) Listen(ctx context.Context, backlog int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return s.err("listen", netip.AddrPort{}, syscall.EBADF)
	case s.proto != TCP:
		return s.err("listen", netip.AddrPort{}, syscall.EOPNOTSUPP)
	case s.peer.IsValid():
		return s.err("listen", netip.AddrPort{}, syscall.EINVAL)
	}
	if !s.local.IsValid() {
		if err := s.bindLocked(s.wildcard()); err != nil {
			return s.err("listen", netip.AddrPort{}, err)
		}
	}
	s.listening = true
	return nil
}

func (s *simSocket) Accept(ctx context.Context) (Socket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, s.err("accept", netip.AddrPort{}, syscall.EBADF)
	case !s.listening:
		return nil, s.err("accept", netip.AddrPort{}, syscall.EINVAL)
	case len(s.pending) == 0:
		return nil, s.err("accept", netip.AddrPort{}, syscall.EAGAIN)
	}
	peer := s.pending[0]
	s.pending = s.pending[1:]
	return &simSocket{n: s.n, proto: TCP, family: s.family, local: s.local, peer: peer}, nil
}

func (s *simSocket) Recv(ctx context.Context, bufs [][]byte, flags RecvFlags) (int, netip.AddrPort, RecvResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return 0, netip.AddrPort{}, 0, s.err("recv", netip.AddrPort{}, syscall.EBADF)
	case s.proto == TCP && !s.peer.IsValid():
		return 0, netip.AddrPort{}, 0, s.err("recv", netip.AddrPort{}, syscall.ENOTCONN)
	case s.proto == TCP && s.shut&ShutRead != 0:
		return 0, netip.AddrPort{}, 0, nil
	case len(s.dgrams) == 0:
		return 0, netip.AddrPort{}, 0, s.err("recv", netip.AddrPort{}, syscall.EAGAIN)
	}
	d := s.dgrams[0]
	if flags&RecvPeek == 0 {
		s.dgrams = s.dgrams[1:]
	}
	n, rest := 0, d.data
	for _, b := range bufs {
		k := copy(b, rest)
		n, rest = n+k, rest[k:]
	}
	var out RecvResult
	if len(rest) > 0 {
		out = RecvTruncated
	}
	return n, d.from, out, nil
}

func (s *simSocket) Send(ctx context.Context, bufs [][]byte, to netip.AddrPort, flags SendFlags) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return 0, s.err("send", to, syscall.EBADF)
	case s.proto == TCP && to.IsValid():
		return 0, s.err("send", to, syscall.EISCONN)
	case s.proto == TCP && !s.peer.IsValid():
		return 0, s.err("send", to, syscall.ENOTCONN)
	case s.shut&ShutWrite != 0:
		return 0, s.err("send", to, syscall.EPIPE)
	case s.proto == UDP && !to.IsValid() && !s.peer.IsValid():
		return 0, s.err("send", to, syscall.EDESTADDRREQ)
	}
	if to.IsValid() {
		if _, err := s.checkAddr(to); err != nil {
			return 0, s.err("send", to, err)
		}
	}
	if !s.local.IsValid() {
		if err := s.bindLocked(s.wildcard()); err != nil {
			return 0, s.err("send", to, err)
		}
	}
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	s.sent += n
	return n, nil
}

func (s *simSocket) Shutdown(how ShutdownHow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if how&^ShutBoth != 0 || how == 0 {
		return s.err("shutdown", netip.AddrPort{}, syscall.EINVAL)
	}
	if !s.peer.IsValid() {
		return s.err("shutdown", netip.AddrPort{}, syscall.ENOTCONN)
	}
	s.shut |= how
	return nil
}

func (s *simSocket) GetOption(opt SockOption) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch opt {
	case SockOptType:
		if s.proto == UDP {
			return 1, nil
		}
		return 2, nil
	case SockOptError:
		return 0, nil
	case SockOptAcceptConn:
		if s.listening {
			return 1, nil
		}
		return 0, nil
	case SockOptLinger:
		if v, ok := s.opts[opt]; ok {
			return v, nil
		}
		return -1, nil
	case SockOptRcvTimeo, SockOptSndTimeo, SockOptBindToDevice:
		return 0, s.err("getsockopt", netip.AddrPort{}, syscall.ENOPROTOOPT)
	}
	if opt > SockOptTCPNoDelay {
		return 0, s.err("getsockopt", netip.AddrPort{}, syscall.ENOPROTOOPT)
	}
	return s.opts[opt], nil
}

func (s *simSocket) SetOption(opt SockOption, value int) error {
	switch opt {
	case SockOptType, SockOptError, SockOptAcceptConn, SockOptRcvTimeo, SockOptSndTimeo, SockOptBindToDevice:
		return s.err("setsockopt", netip.AddrPort{}, syscall.ENOPROTOOPT)
	}
	if opt > SockOptTCPNoDelay {
		return s.err("setsockopt", netip.AddrPort{}, syscall.ENOPROTOOPT)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts == nil {
		s.opts = make(map[SockOption]int)
	}
	s.opts[opt] = value
	return nil
}

func (s *simSocket) LocalAddr() (netip.AddrPort, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return netip.AddrPort{}, s.err("getsockname", netip.AddrPort{}, syscall.EBADF)
	}
	if !s.local.IsValid() {
		return s.wildcard(), nil
	}
	return s.local, nil
}

func (s *simSocket) PeerAddr() (netip.AddrPort, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return netip.AddrPort{}, s.err("getpeername", netip.AddrPort{}, syscall.EBADF)
	}
	if !s.peer.IsValid() {
		return netip.AddrPort{}, s.err("getpeername", netip.AddrPort{}, syscall.ENOTCONN)
	}
	return s.peer, nil
}

// Fd is always -1: there is nothing to wait on.
func (s *simSocket) Fd() int { return -1 }

func (s *simSocket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.local.IsValid() {
		s.n.unbind(s, s.local) // a no-op for accepted sockets, never registered
	}
	s.pending, s.dgrams = nil, nil
	return nil
}
