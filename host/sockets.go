package host

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmgate/wasmgate/host/internal/dnsstub"
	"github.com/wasmgate/wasmgate/host/internal/sockabi"
	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/network"
)

// The WasmEdge socket extension (docs/socket-abi.md). Every function takes i32
// parameters and returns a WASI errno. Errors flow as Go errors and are
// mapped once, by wasi.ToErrno, when the function returns: a policy denial
// (network.ErrDenied) is EACCES, a bad guest pointer EFAULT, a malformed
// value EINVAL.
//
// The four functions whose shape differs between WasmEdge v1 and v2 are
// registered per function with the shape the guest imports (by parameter
// count), as WasmEdge's linker does:
//
//	sock_accept         v1 (fd, ret_fd)                          v2 (fd, fdflags, ret_fd)
//	sock_recv_from      v1 7 params, raw address, no port        v2 8 params, storage form + port
//	sock_getlocaladdr   v1 (fd, addr, ret_type 4/6, ret_port)    v2 (fd, addr, ret_port)
//	sock_getpeeraddr    same as sock_getlocaladdr
//
// A function the guest does not import is registered in its v2 shape.

// sockFunc is the body of one socket host function: params in, an error
// out (nil = success).
type sockFunc func(ctx context.Context, m api.Memory, p []uint64) error

// exportSocketFunctions registers the sock_* functions.
//
// imports maps each wasi_snapshot_preview1 function name the guest imports
// to its parameter count, so that the WasmEdge v1/v2 shape can be chosen per
// function. It is called after the preview 1 functions are exported, so an
// export here of the same name (sock_accept, sock_recv, sock_send,
// sock_shutdown) replaces the preview 1 default.
func exportSocketFunctions(b wazero.HostModuleBuilder, imports map[string]int) {
	var proto state // only for the names and shapes
	for i, f := range proto.socketFuncs(imports) {
		params := f.params
		types := make([]api.ValueType, params)
		for i := range types {
			types[i] = api.ValueTypeI32
		}
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			stack[0] = uint64(callSock(ctx, mod.Memory(), hostState(ctx).sock[i].fn, stack[:params]))
		}), types, []api.ValueType{api.ValueTypeI32}).Export(f.name)
	}
}

// callSock runs one socket function and maps its error to the errno the
// guest sees: this is the single place where it happens.
func callSock(ctx context.Context, m api.Memory, fn sockFunc, params []uint64) wasi.Errno {
	if m == nil {
		return wasi.EFAULT
	}
	return wasi.ToErrno(fn(ctx, m, params))
}

// sockExport is one socket function in the shape the guest imports.
type sockExport struct {
	name   string
	params int
	fn     sockFunc
}

// socketFuncs lists the socket functions with the shapes chosen for
// imports.
func (s *state) socketFuncs(imports map[string]int) []sockExport {
	v1 := func(name string, v1Params int) bool { return imports[name] == v1Params }
	var out []sockExport
	export := func(name string, params int, fn sockFunc) {
		out = append(out, sockExport{name, params, fn})
	}
	export("sock_open", 3, s.sockOpen)
	export("sock_bind", 3, s.sockBind)
	export("sock_connect", 3, s.sockConnect)
	export("sock_listen", 2, s.sockListen)
	if v1("sock_accept", 2) {
		export("sock_accept", 2, func(ctx context.Context, m api.Memory, p []uint64) error {
			return s.sockAccept(ctx, m, u32(p[0]), 0, u32(p[1]))
		})
	} else {
		export("sock_accept", 3, func(ctx context.Context, m api.Memory, p []uint64) error {
			return s.sockAccept(ctx, m, u32(p[0]), u32(p[1]), u32(p[2]))
		})
	}
	export("sock_recv", 6, s.sockRecv)
	export("sock_send", 5, s.sockSend)
	if v1("sock_recv_from", 7) {
		export("sock_recv_from", 7, func(ctx context.Context, m api.Memory, p []uint64) error {
			return s.sockRecvFrom(ctx, m, u32(p[0]), u32(p[1]), u32(p[2]), u32(p[3]), u32(p[4]), 0, false, u32(p[5]), u32(p[6]))
		})
	} else {
		export("sock_recv_from", 8, func(ctx context.Context, m api.Memory, p []uint64) error {
			return s.sockRecvFrom(ctx, m, u32(p[0]), u32(p[1]), u32(p[2]), u32(p[3]), u32(p[4]), u32(p[5]), true, u32(p[6]), u32(p[7]))
		})
	}
	export("sock_send_to", 7, s.sockSendTo)
	export("sock_shutdown", 2, s.sockShutdown)
	export("sock_getsockopt", 5, s.sockGetOpt)
	export("sock_setsockopt", 5, s.sockSetOpt)
	for _, name := range []string{"sock_getlocaladdr", "sock_getpeeraddr"} {
		peer := name == "sock_getpeeraddr"
		if v1(name, 4) {
			export(name, 4, func(ctx context.Context, m api.Memory, p []uint64) error {
				return s.sockAddr(m, u32(p[0]), u32(p[1]), u32(p[2]), u32(p[3]), false, peer)
			})
		} else {
			export(name, 3, func(ctx context.Context, m api.Memory, p []uint64) error {
				return s.sockAddr(m, u32(p[0]), u32(p[1]), 0, u32(p[2]), true, peer)
			})
		}
	}
	export("sock_getaddrinfo", 8, s.sockGetAddrinfo)
	return out
}

func u32(v uint64) uint32 { return uint32(v) }

// socketAt returns the entry and socket at fd: EBADF for a free slot,
// ENOTSOCK for anything that is not a socket.
func (s *state) socketAt(fd uint32) (*fdEntry, *socketFile, error) {
	e, err := s.fds.get(int32(fd))
	if err != nil {
		return nil, nil, err
	}
	f, ok := e.file.(*socketFile)
	if !ok {
		return nil, nil, wasi.ENOTSOCK
	}
	return e, f, nil
}

// network returns the instance's network; nil means deny everything.
func (s *state) network() network.Network {
	if s.net != nil {
		return s.net
	}
	return &network.Default{}
}

// newSocketFile wraps sock with the DNS stub of this instance.
func (s *state) newSocketFile(sock network.Socket) *socketFile {
	return &socketFile{sock: sock, stub: &dnsstub.Server{Network: s.network()}}
}

// sock_open(af, socktype, ret_fd): a new socket in blocking mode.
// EINVAL for an unknown family or type (ANY included), ENOSYS for AF_UNIX,
// EMFILE past the socket or fd limit, EACCES if the network refuses.
func (s *state) sockOpen(ctx context.Context, m api.Memory, p []uint64) error {
	af, st, ret := u32(p[0]), u32(p[1]), u32(p[2])
	var fam network.Family
	switch af {
	case sockabi.AfInet4:
		fam = network.IPv4
	case sockabi.AfInet6:
		fam = network.IPv6
	case sockabi.AfUnix:
		return wasi.ENOSYS
	default:
		return wasi.EINVAL
	}
	var proto network.Proto
	switch st {
	case sockabi.SockDgram:
		proto = network.UDP
	case sockabi.SockStream:
		proto = network.TCP
	default:
		return wasi.EINVAL
	}
	// Check the out-pointer first: a socket must not be created (and
	// leaked into the table) for a call that cannot report it.
	if _, err := sockabi.Span(m, ret, 4); err != nil {
		return err
	}
	sock, err := s.network().Socket(ctx, proto, fam)
	if err != nil {
		return err
	}
	fd, err := s.fds.insert(newSocketEntry(s.newSocketFile(sock), false))
	if err != nil {
		sock.Close()
		return err
	}
	return sockabi.WriteU32(m, ret, uint32(fd))
}

// readAddrPort decodes an input address struct plus a port parameter.
func readAddrPort(m api.Memory, ptr, port uint32) (netip.AddrPort, error) {
	if port > 0xffff {
		return netip.AddrPort{}, wasi.EINVAL
	}
	a, err := sockabi.ReadInputAddress(m, ptr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// sock_bind(fd, addr, port). The policy decides tcp.bind / udp.bind.
func (s *state) sockBind(ctx context.Context, m api.Memory, p []uint64) error {
	_, f, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	ap, err := readAddrPort(m, u32(p[1]), u32(p[2]))
	if err != nil {
		return err
	}
	return f.sock.Bind(ctx, ap)
}

// sock_connect(fd, addr, port). A datagram socket sets its default peer
// (the DNS stub's address is handled in-process); a non-blocking stream
// socket returns EINPROGRESS and completes later (poll for FD_WRITE, then
// SO_ERROR); a blocking one waits here, cancellably.
func (s *state) sockConnect(ctx context.Context, m api.Memory, p []uint64) error {
	e, f, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	ap, err := readAddrPort(m, u32(p[1]), u32(p[2]))
	if err != nil {
		return err
	}
	if f.sock.Proto() == network.UDP {
		if f.isStub(ap) {
			f.mu.Lock()
			f.stubPeer = true
			f.mu.Unlock()
			return nil
		}
		err := f.sock.Connect(ctx, ap)
		if err == nil {
			f.mu.Lock()
			f.stubPeer = false
			f.mu.Unlock()
		}
		return err
	}
	err = f.sock.Connect(ctx, ap)
	if !errors.Is(err, syscall.EINPROGRESS) || e.nonblock() {
		return err
	}
	fd := f.sock.Fd()
	if fd < 0 {
		return err
	}
	for {
		if _, werr := s.waitFd(fd, pollOut, -1); werr != nil {
			return werr
		}
		v, gerr := f.sock.GetOption(network.SockOptError)
		if gerr != nil {
			return gerr
		}
		if v != 0 {
			return syscall.Errno(v)
		}
		if _, perr := f.sock.PeerAddr(); !errors.Is(perr, syscall.ENOTCONN) {
			return perr
		}
	}
}

// sock_listen(fd, backlog): EINVAL for a negative backlog, ENOTSUP on a
// datagram socket. The policy decides tcp.listen (and tcp.bind of the
// wildcard address when the socket is unbound).
func (s *state) sockListen(ctx context.Context, m api.Memory, p []uint64) error {
	_, f, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	backlog := int32(u32(p[1]))
	if backlog < 0 {
		return wasi.EINVAL
	}
	if f.sock.Proto() != network.TCP {
		return wasi.ENOTSUP
	}
	return f.sock.Listen(ctx, int(backlog))
}

// sock_accept(fd, fdflags, ret_fd): EINVAL for flags other than NONBLOCK,
// ENOTSUP on a datagram socket, EAGAIN when nothing is pending on a
// non-blocking listener. Connections the policy denies (tcp.accept) are
// closed by the network before they get here.
func (s *state) sockAccept(ctx context.Context, m api.Memory, fd, flags, ret uint32) error {
	e, f, err := s.socketAt(fd)
	if err != nil {
		return err
	}
	if flags&^uint32(wasi.FdflagNonblock) != 0 {
		return wasi.EINVAL
	}
	if f.sock.Proto() != network.TCP {
		return wasi.ENOTSUP
	}
	if _, err := sockabi.Span(m, ret, 4); err != nil {
		return err
	}
	if s.fds.full() {
		// Checked before accepting: a connection the guest cannot take
		// is never accepted for it, and never waits (blocking accept
		// gets EMFILE at once too).
		return refusePending(f.sock)
	}
	var conn network.Socket
	_, err = s.blockingIO(ctx, e, pollIn, func() (int, error) {
		c, err := f.sock.Accept(ctx)
		conn = c
		return 0, err
	})
	if errors.Is(err, syscall.EMFILE) {
		// The network's socket limit (max_sockets).
		return refusePending(f.sock)
	}
	if err != nil {
		return err
	}
	// A stream connection never talks to the DNS stub (only datagram
	// sockets do), so it gets none: one allocation less per accept.
	nfd, err := s.fds.insert(newSocketEntry(&socketFile{sock: conn}, flags&uint32(wasi.FdflagNonblock) != 0))
	if err != nil {
		// Only if another fd appeared since the check above: reset,
		// like the refused ones.
		conn.SetOption(network.SockOptLinger, 0)
		conn.Close()
		return err
	}
	return sockabi.WriteU32(m, ret, uint32(nfd))
}

// maxRefuse bounds the pending connections one failed sock_accept refuses.
const maxRefuse = 4096

// refusePending is sock_accept's answer when the guest is at its fd or
// socket limit: EMFILE for the guest, and every connection waiting on the
// listener (up to maxRefuse) reset at once, so that clients are refused
// instead of hanging in the kernel's accept queue while the guest cannot
// take them (docs/sockets.md, "Limits").
func refusePending(l network.Socket) error {
	if r, ok := l.(network.Refuser); ok {
		r.RefusePending(maxRefuse)
	}
	return wasi.EMFILE
}

// riflags of sock_recv / sock_recv_from.
const (
	riRecvPeek    = 1
	riRecvWaitall = 2
)

func recvFlags(ri uint32) (network.RecvFlags, error) {
	if ri&^uint32(riRecvPeek|riRecvWaitall) != 0 {
		return 0, wasi.EINVAL
	}
	var fl network.RecvFlags
	if ri&riRecvPeek != 0 {
		fl |= network.RecvPeek
	}
	if ri&riRecvWaitall != 0 {
		fl |= network.RecvWaitAll
	}
	return fl, nil
}

// sock_recv(fd, ri_data, ri_data_len, ri_flags, ret_nread, ret_roflags).
// roflags is written as a u16 (docs/socket-abi.md#sock_recv).
func (s *state) sockRecv(ctx context.Context, m api.Memory, p []uint64) error {
	e, f, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	fl, err := recvFlags(u32(p[3]))
	if err != nil {
		return err
	}
	bufs, err := sockabi.ReadIovecs(m, u32(p[1]), u32(p[2]))
	if err != nil {
		return err
	}
	retN, retFl := u32(p[4]), u32(p[5])
	if _, err := sockabi.Span(m, retN, 4); err != nil {
		return err
	}
	if _, err := sockabi.Span(m, retFl, 2); err != nil {
		return err
	}
	var res network.RecvResult
	n, err := s.blockingIO(ctx, e, pollIn, func() (int, error) {
		n, _, r, err := f.recv(ctx, bufs, fl)
		res = r
		return n, err
	})
	if err != nil {
		return err
	}
	_ = sockabi.WriteU32(m, retN, uint32(n))
	return sockabi.WriteU16(m, retFl, roflags(res))
}

func roflags(r network.RecvResult) uint16 {
	if r&network.RecvTruncated != 0 {
		return 1
	}
	return 0
}

// sock_send(fd, si_data, si_data_len, si_flags, ret_nwritten): si_flags
// must be 0.
func (s *state) sockSend(ctx context.Context, m api.Memory, p []uint64) error {
	e, f, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	if u32(p[3]) != 0 {
		return wasi.EINVAL
	}
	bufs, err := sockabi.ReadIovecs(m, u32(p[1]), u32(p[2]))
	if err != nil {
		return err
	}
	ret := u32(p[4])
	if _, err := sockabi.Span(m, ret, 4); err != nil {
		return err
	}
	n, err := s.blockingIO(ctx, e, pollOut, func() (int, error) {
		return f.send(ctx, bufs, netip.AddrPort{})
	})
	if err != nil {
		return err
	}
	return sockabi.WriteU32(m, ret, uint32(n))
}

// sock_recv_from: v1 (fd, ri_data, ri_data_len, addr, ri_flags,
// ret_nread, ret_roflags) writes the sender's raw address only; v2 adds
// ret_port before ret_nread and writes the 128-byte storage form. The port
// is a host-order u32 (docs/socket-abi.md#sock_recv_from). Datagrams from peers the policy
// denies (udp.recv) are dropped by the network and never seen here.
func (s *state) sockRecvFrom(ctx context.Context, m api.Memory, fd, data, dataLen, addr, ri, retPort uint32, v2 bool, retN, retFl uint32) error {
	e, f, err := s.socketAt(fd)
	if err != nil {
		return err
	}
	fl, err := recvFlags(ri)
	if err != nil {
		return err
	}
	bufs, err := sockabi.ReadIovecs(m, data, dataLen)
	if err != nil {
		return err
	}
	// Validate every output before receiving: a datagram must not be
	// consumed by a call that then cannot report it.
	abuf, err := sockabi.ReadAddressStruct(m, addr)
	if err != nil {
		return err
	}
	switch len(abuf) {
	case sockabi.LenStorage, sockabi.LenRaw16, sockabi.LenRaw4:
	default:
		return wasi.EINVAL
	}
	if v2 {
		if _, err := sockabi.Span(m, retPort, 4); err != nil {
			return err
		}
	}
	if _, err := sockabi.Span(m, retN, 4); err != nil {
		return err
	}
	if _, err := sockabi.Span(m, retFl, 2); err != nil {
		return err
	}
	var from netip.AddrPort
	var res network.RecvResult
	n, err := s.blockingIO(ctx, e, pollIn, func() (int, error) {
		n, fr, r, err := f.recv(ctx, bufs, fl)
		from, res = fr, r
		return n, err
	})
	if err != nil {
		return err
	}
	if err := sockabi.WriteRecvFromAddress(m, addr, from.Addr()); err != nil {
		// A 4-byte buffer and an IPv6 sender: report the data, not the address.
		if !errors.Is(err, wasi.ENOMEM) {
			return err
		}
	}
	if v2 {
		_ = sockabi.WriteU32(m, retPort, uint32(from.Port()))
	}
	_ = sockabi.WriteU32(m, retN, uint32(n))
	return sockabi.WriteU16(m, retFl, roflags(res))
}

// sock_send_to(fd, si_data, si_data_len, addr, port, si_flags,
// ret_nwritten): the address may be 4, 16 or 128 bytes. The policy decides
// udp.send for each destination; the DNS stub's address is answered
// in-process.
func (s *state) sockSendTo(ctx context.Context, m api.Memory, p []uint64) error {
	e, f, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	if u32(p[5]) != 0 {
		return wasi.EINVAL
	}
	bufs, err := sockabi.ReadIovecs(m, u32(p[1]), u32(p[2]))
	if err != nil {
		return err
	}
	to, err := readAddrPort(m, u32(p[3]), u32(p[4]))
	if err != nil {
		return err
	}
	ret := u32(p[6])
	if _, err := sockabi.Span(m, ret, 4); err != nil {
		return err
	}
	n, err := s.blockingIO(ctx, e, pollOut, func() (int, error) {
		return f.send(ctx, bufs, to)
	})
	if err != nil {
		return err
	}
	return sockabi.WriteU32(m, ret, uint32(n))
}

// sock_shutdown(fd, how): how is 1 (RD), 2 (WR) or 3; anything else is
// EINVAL. ENOTCONN when not connected.
func (s *state) sockShutdown(ctx context.Context, m api.Memory, p []uint64) error {
	_, f, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	how := u32(p[1])
	if how == 0 || how&^3 != 0 {
		return wasi.EINVAL
	}
	if f.connectedToStub() {
		return nil
	}
	return f.sock.Shutdown(network.ShutdownHow(how))
}

// Socket option levels.
const (
	solSocket   = 0
	solTCP      = 6  // wasi-go's TCP level
	tcpNoDelay  = 15 // its only option
	maxSockOpt  = 14
	soRcvTimeo  = 11
	soSndTimeo  = 12
	soBindToDev = 14
)

// sockOption validates (level, name). RCVTIMEO/SNDTIMEO/BINDTODEVICE carry
// struct or string payloads and are ENOTSUP (the host implements
// timeouts); unknown levels and names are EINVAL, as in WasmEdge.
func sockOption(level, name uint32) (network.SockOption, error) {
	switch level {
	case solSocket:
		if name > maxSockOpt {
			return 0, wasi.EINVAL
		}
		switch name {
		case soRcvTimeo, soSndTimeo, soBindToDev:
			return 0, wasi.ENOTSUP
		}
		return network.SockOption(name), nil
	case solTCP:
		if name == tcpNoDelay {
			return network.SockOptTCPNoDelay, nil
		}
	}
	return 0, wasi.EINVAL
}

// sock_getsockopt(fd, level, name, value, X): X == 4 is a by-value length,
// anything else a pointer to the length (docs/socket-abi.md#getsockopt-fifth). Values are
// i32. SO_ERROR is a WASI errno and clears the pending error. The private
// level solWasmgate is the splice extension (sock_splice.go).
func (s *state) sockGetOpt(ctx context.Context, m api.Memory, p []uint64) error {
	if u32(p[1]) == solWasmgate {
		return s.sockSplice(ctx, m, p)
	}
	_, f, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	opt, err := sockOption(u32(p[1]), u32(p[2]))
	if err != nil {
		return err
	}
	valueLen, lenPtr, byPtr, err := sockabi.GetsockoptLen(m, u32(p[4]))
	if err != nil {
		return err
	}
	if valueLen < 4 {
		return wasi.EINVAL
	}
	out, err := sockabi.Span(m, u32(p[3]), 4)
	if err != nil {
		return err
	}
	var v int
	if opt == network.SockOptError && f.connectedToStub() {
		v = 0
	} else {
		v, err = f.sock.GetOption(opt)
		if err != nil {
			return err
		}
	}
	if opt == network.SockOptError && v != 0 {
		v = int(wasi.ToErrno(syscall.Errno(v)))
	}
	putI32(out, int32(v))
	if byPtr {
		return sockabi.WriteU32(m, lenPtr, 4)
	}
	return nil
}

func putI32(b []byte, v int32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// sock_setsockopt(fd, level, name, value, value_len): integer options only,
// value_len must be 4 (EINVAL otherwise). Read-only options (TYPE, ERROR,
// ACCEPTCONN) are ENOPROTOOPT; negative buffer sizes EINVAL.
func (s *state) sockSetOpt(ctx context.Context, m api.Memory, p []uint64) error {
	_, f, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	opt, err := sockOption(u32(p[1]), u32(p[2]))
	if err != nil {
		return err
	}
	if u32(p[4]) != 4 {
		return wasi.EINVAL
	}
	raw, err := sockabi.ReadU32(m, u32(p[3]))
	if err != nil {
		return err
	}
	v := int32(raw)
	switch opt {
	case network.SockOptType, network.SockOptError, network.SockOptAcceptConn:
		return wasi.ENOPROTOOPT
	case network.SockOptSndBuf, network.SockOptRcvBuf:
		if v < 0 {
			return wasi.EINVAL
		}
	}
	return f.sock.SetOption(opt, int(v))
}

// sock_getlocaladdr / sock_getpeeraddr. v1: (fd, addr, ret_type, ret_port)
// with a 16-byte raw buffer and type 4/6; v2: (fd, addr, ret_port) with the
// 128-byte storage form. The port is a host-order u32. ENOTCONN for the
// peer of an unconnected (or still connecting) socket.
func (s *state) sockAddr(m api.Memory, fd, addr, retType, retPort uint32, v2, peer bool) error {
	_, f, err := s.socketAt(fd)
	if err != nil {
		return err
	}
	if !v2 {
		if _, err := sockabi.Span(m, retType, 4); err != nil {
			return err
		}
	}
	if _, err := sockabi.Span(m, retPort, 4); err != nil {
		return err
	}
	var ap netip.AddrPort
	switch {
	case peer && f.connectedToStub():
		ap = dnsstub.Addr
	case peer:
		ap, err = f.sock.PeerAddr()
	default:
		ap, err = f.sock.LocalAddr()
	}
	if err != nil {
		return err
	}
	if v2 {
		if err := sockabi.WriteAddressV2(m, addr, ap.Addr()); err != nil {
			return err
		}
	} else {
		typ, err := sockabi.WriteAddressV1(m, addr, ap.Addr())
		if err != nil {
			return err
		}
		_ = sockabi.WriteU32(m, retType, typ)
	}
	return sockabi.WriteU32(m, retPort, uint32(ap.Port()))
}

// maxGetaddrinfoName bounds the node string (a DNS name is at most 253).
const maxGetaddrinfoName = 1024

// sock_getaddrinfo(node, node_len, service, service_len, hints,
// res_ptr_ptr, max_res_len, ret_res_len). Host names are resolved by the
// network (its policy decides dns.lookup and each dns.answer, and the
// answers are bound to the name for later connects); IP literals and an
// empty node are answered without a lookup. One result per address: the
// socket type and protocol come from the hints (stream/TCP when unset).
// Errors: WasmEdge's EAI_* codes (AINONAME for a name that does not
// resolve, AIMEMORY for max_res_len 0, ...), EACCES when the policy denies
// the lookup or every answer, EFAULT for any bad pointer.
func (s *state) sockGetAddrinfo(ctx context.Context, m api.Memory, p []uint64) error {
	nodePtr, nodeLen, svcPtr, svcLen := u32(p[0]), u32(p[1]), u32(p[2]), u32(p[3])
	hintsPtr, resPtr, maxRes, retLen := u32(p[4]), u32(p[5]), u32(p[6]), u32(p[7])
	if nodeLen > maxGetaddrinfoName || svcLen > maxGetaddrinfoName {
		return wasi.EINVAL
	}
	node, err := sockabi.ReadString(m, nodePtr, nodeLen)
	if err != nil {
		return err
	}
	svc, err := sockabi.ReadString(m, svcPtr, svcLen)
	if err != nil {
		return err
	}
	hints, err := sockabi.ReadHints(m, hintsPtr)
	if err != nil {
		return err
	}
	if _, err := sockabi.Span(m, retLen, 4); err != nil {
		return err
	}
	if node == "" && svc == "" {
		return sockabi.EAINoName
	}
	if maxRes == 0 {
		return sockabi.EAIMemory
	}
	if hints.Flags&sockabi.AICanonName != 0 && node == "" {
		return sockabi.EAIBadFlags
	}
	st, proto := hints.SockType, hints.Protocol
	switch {
	case st == sockabi.SockAny && proto == sockabi.ProtoUDP:
		st = sockabi.SockDgram
	case st == sockabi.SockAny:
		st, proto = sockabi.SockStream, sockabi.ProtoTCP
	case proto == sockabi.ProtoIP && st == sockabi.SockDgram:
		proto = sockabi.ProtoUDP
	case proto == sockabi.ProtoIP:
		proto = sockabi.ProtoTCP
	}
	if (st == sockabi.SockStream) != (proto == sockabi.ProtoTCP) {
		return sockabi.EAISockType
	}
	var port uint16
	if svc != "" {
		n, err := strconv.ParseUint(svc, 10, 16)
		switch {
		case err == nil:
			port = uint16(n)
		case hints.Flags&sockabi.AINumericServ != 0:
			return sockabi.EAIService
		default:
			netw := "tcp"
			if proto == sockabi.ProtoUDP {
				netw = "udp"
			}
			pn, err := net.LookupPort(netw, svc)
			if err != nil {
				return sockabi.EAIService
			}
			port = uint16(pn)
		}
	}
	var addrs []netip.Addr
	if node == "" {
		if hints.Flags&sockabi.AIPassive != 0 {
			addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
		} else {
			addrs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
		}
	} else if a, perr := netip.ParseAddr(node); perr == nil {
		if a.Zone() != "" {
			return sockabi.EAINoName
		}
		addrs = []netip.Addr{a.Unmap()}
	} else if hints.Flags&sockabi.AINumericHost != 0 {
		return sockabi.EAINoName
	} else {
		addrs, err = s.network().ResolveAddresses(ctx, node)
		if err != nil {
			return gaiErrno(err)
		}
	}
	var rs []sockabi.Result
	for _, a := range addrs {
		a = a.Unmap()
		if (hints.Family == sockabi.AfInet4 && !a.Is4()) || (hints.Family == sockabi.AfInet6 && !a.Is6()) {
			continue
		}
		rs = append(rs, sockabi.Result{Addr: netip.AddrPortFrom(a, port), SockType: st, Protocol: proto})
	}
	if len(rs) == 0 {
		return sockabi.EAINoData
	}
	n, err := sockabi.WriteResults(m, resPtr, maxRes, rs)
	if err != nil {
		return err
	}
	return sockabi.WriteU32(m, retLen, n)
}

// gaiErrno maps a resolution failure: a denial stays EACCES (the guest
// reports "permission denied"), a name that does not exist is AINONAME, a
// lookup over dns_rate AIAGAIN, anything else AIFAIL.
func gaiErrno(err error) error {
	if errors.Is(err, network.ErrDenied) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return wasi.ECANCELED
	}
	var qe *network.QuotaError
	if errors.As(err, &qe) {
		// Over dns_rate: a temporary failure, try again later.
		return sockabi.EAIAgain
	}
	if errors.Is(err, network.ErrNotFound) {
		return sockabi.EAINoName
	}
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return sockabi.EAINoName
	}
	var nf interface{ NotFound() bool }
	if errors.As(err, &nf) && nf.NotFound() {
		return sockabi.EAINoName
	}
	if errors.Is(err, syscall.EINVAL) {
		return sockabi.EAINoName
	}
	return sockabi.EAIFail
}
