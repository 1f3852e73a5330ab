//go:build wasip1

package socket

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"
)

// WasmEdge socket extension constants (docs/socket-abi.md#enums). They differ
// from Linux's values.
const (
	afInet4 = 1
	afInet6 = 2

	sockDgram  = 1
	sockStream = 2

	solSocket   = 0
	soReuseAddr = 0
	soError     = 2

	ipprotoTCP = 1

	addrStorageLen = 128
)

// The imports. Pointers are passed as unsafe.Pointer (an i32 in wasm32
// linear memory); every pointed-to buffer is kept alive by the caller for
// the duration of the call (runtime.KeepAlive), and Go's heap does not move.

//go:wasmimport wasi_snapshot_preview1 sock_open
//go:noescape
func sock_open(af, socktype int32, fd unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 sock_bind
//go:noescape
func sock_bind(fd int32, addr unsafe.Pointer, port uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_connect
//go:noescape
func sock_connect(fd int32, addr unsafe.Pointer, port uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_listen
func sock_listen(fd, backlog int32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_getsockopt
//go:noescape
func sock_getsockopt(fd, level, name int32, value unsafe.Pointer, valueLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_setsockopt
//go:noescape
func sock_setsockopt(fd, level, name int32, value unsafe.Pointer, valueLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 sock_getlocaladdr
//go:noescape
func sock_getlocaladdr(fd int32, addr unsafe.Pointer, port unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 sock_getpeeraddr
//go:noescape
func sock_getpeeraddr(fd int32, addr unsafe.Pointer, port unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 sock_recv_from
//go:noescape
func sock_recv_from(fd int32, iovs unsafe.Pointer, iovsLen uint32, addr unsafe.Pointer, flags int32, port unsafe.Pointer, nread unsafe.Pointer, roflags unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 sock_send_to
//go:noescape
func sock_send_to(fd int32, iovs unsafe.Pointer, iovsLen uint32, addr unsafe.Pointer, port uint32, flags int32, nwritten unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 sock_getaddrinfo
//go:noescape
func sock_getaddrinfo(node unsafe.Pointer, nodeLen uint32, service unsafe.Pointer, serviceLen uint32, hints unsafe.Pointer, res unsafe.Pointer, maxResLen uint32, resLen unsafe.Pointer) uint32

// ptr32 is the wasm32 address of p. Go on wasm has 64-bit uintptrs, but
// linear memory addresses fit in 32 bits.
func ptr32(p unsafe.Pointer) uint32 { return uint32(uintptr(p)) }

func errnoErr(e uint32) error {
	if e == 0 {
		return nil
	}
	return syscall.Errno(e)
}

// wasiAddress is the 8-byte `address` struct: {buf u32, buf_len u32}.
type wasiAddress struct {
	buf    uint32
	bufLen uint32
}

// scratch holds every buffer whose address is stored inside another
// struct as a u32 (address.buf, iovec.buf). Those integers are invisible
// to the garbage collector and to stack copying, so the buffers must live
// on the heap: newScratch is not inlined and returns the pointer, which
// forces the allocation to escape.
type scratch struct {
	storage [addrStorageLen]byte
	addr    wasiAddress
	iov     iovec
	port    uint32
	n       uint32
	flags   uint32
	fd      int32
	one     [1]byte
}

//go:noinline
func newScratch() *scratch { return new(scratch) }

func openSocket(af, socktype int32) (int, error) {
	s := newScratch()
	e := sock_open(af, socktype, unsafe.Pointer(&s.fd))
	if e != 0 {
		return -1, syscall.Errno(e)
	}
	return int(s.fd), nil
}

// rawAddr fills s.addr with the raw 4- or 16-byte form of a, the form
// every host accepts for bind and connect.
func (s *scratch) rawAddr(a netip.Addr) unsafe.Pointer {
	n := 16
	if a.Is4() {
		b := a.As4()
		copy(s.storage[:], b[:])
		n = 4
	} else {
		b := a.As16()
		copy(s.storage[:], b[:])
	}
	s.addr = wasiAddress{buf: ptr32(unsafe.Pointer(&s.storage[0])), bufLen: uint32(n)}
	return unsafe.Pointer(&s.addr)
}

// storageAddr fills s.addr with the 128-byte storage form of a.
func (s *scratch) storageAddr(a netip.Addr) unsafe.Pointer {
	s.storage = [addrStorageLen]byte{}
	if a.Is4() {
		binary.LittleEndian.PutUint16(s.storage[0:2], afInet4)
		b := a.As4()
		copy(s.storage[2:], b[:])
	} else {
		binary.LittleEndian.PutUint16(s.storage[0:2], afInet6)
		b := a.As16()
		copy(s.storage[2:], b[:])
	}
	s.addr = wasiAddress{buf: ptr32(unsafe.Pointer(&s.storage[0])), bufLen: addrStorageLen}
	return unsafe.Pointer(&s.addr)
}

// outAddr prepares s.addr as a 128-byte output buffer.
func (s *scratch) outAddr() unsafe.Pointer {
	s.storage = [addrStorageLen]byte{}
	s.addr = wasiAddress{buf: ptr32(unsafe.Pointer(&s.storage[0])), bufLen: addrStorageLen}
	return unsafe.Pointer(&s.addr)
}

// iovOf points s.iov at p. p may live on a goroutine stack; its address
// is taken here and used by the very next host call, with no Go call in
// between that could move the stack (the same pattern as package syscall).
func (s *scratch) iovOf(p []byte) unsafe.Pointer {
	base := unsafe.Pointer(&s.one[0])
	if len(p) > 0 {
		base = unsafe.Pointer(unsafe.SliceData(p))
	}
	s.iov = iovec{buf: ptr32(base), bufLen: uint32(len(p))}
	return unsafe.Pointer(&s.iov)
}

func bindSocket(fd int, ap netip.AddrPort) error {
	s := newScratch()
	e := sock_bind(int32(fd), s.rawAddr(ap.Addr()), uint32(ap.Port()))
	runtime.KeepAlive(s)
	return errnoErr(e)
}

func connectSocket(fd int, ap netip.AddrPort) error {
	s := newScratch()
	e := sock_connect(int32(fd), s.rawAddr(ap.Addr()), uint32(ap.Port()))
	runtime.KeepAlive(s)
	return errnoErr(e)
}

func listenSocket(fd, backlog int) error { return errnoErr(sock_listen(int32(fd), int32(backlog))) }

func getsockoptInt(fd int, level, name int32) (int32, error) {
	s := newScratch()
	// The 5th parameter is the by-value length 4 (the dnet convention that
	// hosts recognise; docs/socket-abi.md#getsockopt-fifth).
	e := sock_getsockopt(int32(fd), level, name, unsafe.Pointer(&s.fd), 4)
	return s.fd, errnoErr(e)
}

func setsockoptInt(fd int, level, name, value int32) error {
	s := newScratch()
	s.fd = value
	return errnoErr(sock_setsockopt(int32(fd), level, name, unsafe.Pointer(&s.fd), 4))
}

// decodeStorage parses the 128-byte storage form {family u16 LE, addr...}.
func decodeStorage(b *[addrStorageLen]byte, port uint32) (netip.AddrPort, bool) {
	switch binary.LittleEndian.Uint16(b[0:2]) {
	case afInet4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[2:6])), uint16(port)), true
	case afInet6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[2:18])), uint16(port)), true
	}
	return netip.AddrPort{}, false
}

func localAddr(fd int) (netip.AddrPort, error) {
	s := newScratch()
	e := sock_getlocaladdr(int32(fd), s.outAddr(), unsafe.Pointer(&s.port))
	return s.decodeAddr(e)
}

func peerAddr(fd int) (netip.AddrPort, error) {
	s := newScratch()
	e := sock_getpeeraddr(int32(fd), s.outAddr(), unsafe.Pointer(&s.port))
	return s.decodeAddr(e)
}

func (s *scratch) decodeAddr(e uint32) (netip.AddrPort, error) {
	if e != 0 {
		return netip.AddrPort{}, syscall.Errno(e)
	}
	ap, ok := decodeStorage(&s.storage, s.port)
	if !ok {
		return netip.AddrPort{}, syscall.EAFNOSUPPORT
	}
	return ap, nil
}

// iovec is the 8-byte preview1 iovec.
type iovec struct {
	buf    uint32
	bufLen uint32
}

func recvFrom(fd int, p []byte) (int, netip.AddrPort, bool, error) {
	s := newScratch()
	addr := s.outAddr()
	e := sock_recv_from(int32(fd), s.iovOf(p), 1, addr, 0,
		unsafe.Pointer(&s.port), unsafe.Pointer(&s.n), unsafe.Pointer(&s.flags))
	runtime.KeepAlive(p)
	if e != 0 {
		return 0, netip.AddrPort{}, false, syscall.Errno(e)
	}
	from, _ := decodeStorage(&s.storage, s.port)
	return int(s.n), from, s.flags&1 != 0, nil
}

func sendTo(fd int, p []byte, to netip.AddrPort) (int, error) {
	// send_to takes the 128-byte storage form (what dnet sends; hosts
	// accept 4, 16 and 128).
	s := newScratch()
	addr := s.storageAddr(to.Addr())
	e := sock_send_to(int32(fd), s.iovOf(p), 1, addr, uint32(to.Port()), 0, unsafe.Pointer(&s.n))
	runtime.KeepAlive(p)
	return int(s.n), errnoErr(e)
}
