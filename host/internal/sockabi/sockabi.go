// Package sockabi decodes and encodes the guest-memory structures of the
// WasmEdge socket extension to wasi_snapshot_preview1 (docs/socket-abi.md):
// the `address` struct in its 4/16/128-byte forms, iovec arrays, the
// addrinfo chain of sock_getaddrinfo and the getsockopt length parameter.
//
// Every function treats guest memory as hostile: each span is bounds
// checked (a failure is wasi.EFAULT), lengths are validated (wasi.EINVAL)
// and nothing here can panic on guest input. Functions work on any Memory;
// wazero's api.Memory satisfies it.
package sockabi

import (
	"encoding/binary"
	"net/netip"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// Memory is the part of wazero's api.Memory this package needs. Read
// returns a view (writes to it change guest memory) of byteCount bytes at
// offset, or false when the span is out of range.
type Memory interface {
	Read(offset, byteCount uint32) ([]byte, bool)
}

// Bytes is a Memory backed by a byte slice, for tests and fuzzing.
type Bytes []byte

// Read implements Memory.
func (b Bytes) Read(offset, n uint32) ([]byte, bool) {
	end := uint64(offset) + uint64(n)
	if end > uint64(len(b)) {
		return nil, false
	}
	return b[offset:end:end], true
}

// Address families in the ABI (i32 parameters, u8 in getaddrinfo structs,
// u16 in the 128-byte storage form).
const (
	AfUnspec = 0
	AfInet4  = 1
	AfInet6  = 2
	AfUnix   = 3
)

// Socket types.
const (
	SockAny    = 0
	SockDgram  = 1
	SockStream = 2
)

// Protocols (addrinfo only).
const (
	ProtoIP  = 0
	ProtoTCP = 1
	ProtoUDP = 2
)

// Address struct forms, told apart by buf_len.
const (
	LenRaw4    = 4
	LenRaw16   = 16
	LenStorage = 128
)

// The getaddrinfo error codes WasmEdge adds after the preview 1 errnos.
const (
	EAIAddrFamily wasi.Errno = 77
	EAIAgain      wasi.Errno = 78
	EAIBadFlags   wasi.Errno = 79
	EAIFail       wasi.Errno = 80
	EAIFamily     wasi.Errno = 81
	EAIMemory     wasi.Errno = 82
	EAINoData     wasi.Errno = 83
	EAINoName     wasi.Errno = 84
	EAIService    wasi.Errno = 85
	EAISockType   wasi.Errno = 86
	EAISystem     wasi.Errno = 87
)

// MaxIovecs is the largest iovec count accepted (WasmEdge's kIOVMax).
const MaxIovecs = 1024

// read returns the span [off, off+n) or EFAULT.
func read(m Memory, off, n uint32) ([]byte, error) {
	if uint64(off)+uint64(n) > 1<<32 {
		return nil, wasi.EFAULT
	}
	b, ok := m.Read(off, n)
	if !ok || uint32(len(b)) != n {
		return nil, wasi.EFAULT
	}
	return b, nil
}

// ReadU32 reads a little-endian u32 at off.
func ReadU32(m Memory, off uint32) (uint32, error) {
	b, err := read(m, off, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// WriteU32 writes a little-endian u32 at off.
func WriteU32(m Memory, off, v uint32) error {
	b, err := read(m, off, 4)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b, v)
	return nil
}

// WriteU16 writes a little-endian u16 at off.
func WriteU16(m Memory, off uint32, v uint16) error {
	b, err := read(m, off, 2)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(b, v)
	return nil
}

// Span returns a writable view of n bytes at off, or EFAULT.
func Span(m Memory, off, n uint32) ([]byte, error) { return read(m, off, n) }

// ReadAddressStruct reads the 8-byte `address` struct {buf u32, buf_len
// u32} at ptr and returns the view of the buffer it describes.
func ReadAddressStruct(m Memory, ptr uint32) (buf []byte, err error) {
	hdr, err := read(m, ptr, 8)
	if err != nil {
		return nil, err
	}
	p := binary.LittleEndian.Uint32(hdr[0:4])
	n := binary.LittleEndian.Uint32(hdr[4:8])
	return read(m, p, n)
}

// DecodeInputAddress decodes an input address buffer (sock_bind,
// sock_connect, sock_send_to): 4 bytes raw IPv4, 16 bytes raw IPv6, or the
// 128-byte storage form {family u16 LE, address}. A unix-socket address
// is EAFNOSUPPORT (wasmgate has no AF_UNIX); any other length or family is
// EINVAL. The address is returned as given (not unmapped): the network
// canonicalises it.
func DecodeInputAddress(buf []byte) (netip.Addr, error) {
	switch len(buf) {
	case LenRaw4:
		return netip.AddrFrom4([4]byte(buf)), nil
	case LenRaw16:
		return netip.AddrFrom16([16]byte(buf)), nil
	case LenStorage:
		switch binary.LittleEndian.Uint16(buf[0:2]) {
		case AfInet4:
			return netip.AddrFrom4([4]byte(buf[2:6])), nil
		case AfInet6:
			return netip.AddrFrom16([16]byte(buf[2:18])), nil
		case AfUnix:
			return netip.Addr{}, wasi.EAFNOSUPPORT
		}
	}
	return netip.Addr{}, wasi.EINVAL
}

// ReadInputAddress is ReadAddressStruct followed by DecodeInputAddress.
func ReadInputAddress(m Memory, ptr uint32) (netip.Addr, error) {
	buf, err := ReadAddressStruct(m, ptr)
	if err != nil {
		return netip.Addr{}, err
	}
	return DecodeInputAddress(buf)
}

// EncodeStorage writes a in the 128-byte storage form into buf (which must
// be exactly 128 bytes long), zeroing the rest. An invalid a (no address
// known, e.g. a stream socket in recv_from) writes family 0.
func EncodeStorage(buf []byte, a netip.Addr) error {
	if len(buf) != LenStorage {
		return wasi.EINVAL
	}
	clear(buf)
	switch {
	case !a.IsValid():
	case a.Is4():
		binary.LittleEndian.PutUint16(buf[0:2], AfInet4)
		b := a.As4()
		copy(buf[2:6], b[:])
	default:
		binary.LittleEndian.PutUint16(buf[0:2], AfInet6)
		b := a.As16()
		copy(buf[2:18], b[:])
	}
	return nil
}

// EncodeRaw writes the raw address bytes at the start of buf (the v1
// output form) and returns the v1 "address type" value: 4 for IPv4, 6 for
// IPv6 (not the enum values; docs/socket-abi.md#sock_getlocaladdr). A buffer too small for
// the family is ENOMEM, as in WasmEdge.
func EncodeRaw(buf []byte, a netip.Addr) (uint32, error) {
	switch {
	case !a.IsValid():
		clear(buf)
		return 0, nil
	case a.Is4():
		if len(buf) < 4 {
			return 0, wasi.ENOMEM
		}
		b := a.As4()
		clear(buf)
		copy(buf, b[:])
		return 4, nil
	default:
		if len(buf) < 16 {
			return 0, wasi.ENOMEM
		}
		b := a.As16()
		clear(buf)
		copy(buf, b[:])
		return 6, nil
	}
}

// WriteAddressV1 writes a for a v1 getlocaladdr/getpeeraddr: the buffer
// must be 16 bytes (4 is accepted for IPv4, like WasmEdge). It returns the
// address type 4/6 to store in ret_addr_type.
func WriteAddressV1(m Memory, ptr uint32, a netip.Addr) (uint32, error) {
	buf, err := ReadAddressStruct(m, ptr)
	if err != nil {
		return 0, err
	}
	if len(buf) != LenRaw16 && len(buf) != LenRaw4 {
		return 0, wasi.EINVAL
	}
	return EncodeRaw(buf, a)
}

// WriteAddressV2 writes a for a v2 getlocaladdr/getpeeraddr: the buffer
// must be exactly 128 bytes (storage form).
func WriteAddressV2(m Memory, ptr uint32, a netip.Addr) error {
	buf, err := ReadAddressStruct(m, ptr)
	if err != nil {
		return err
	}
	return EncodeStorage(buf, a)
}

// WriteRecvFromAddress writes the sender of a datagram for sock_recv_from.
// v2 guests normally pass 128 bytes (storage form); 4 or 16 bytes get the
// raw form, as WasmEdge V2 allows, and v1 guests' 16 bytes get the raw form.
func WriteRecvFromAddress(m Memory, ptr uint32, a netip.Addr) error {
	buf, err := ReadAddressStruct(m, ptr)
	if err != nil {
		return err
	}
	switch len(buf) {
	case LenStorage:
		return EncodeStorage(buf, a)
	case LenRaw4, LenRaw16:
		_, err := EncodeRaw(buf, a)
		return err
	}
	return wasi.EINVAL
}

// ReadIovecs reads n iovecs {buf u32, buf_len u32} at ptr and returns
// views of the buffers. More than MaxIovecs is EINVAL; any span outside
// memory is EFAULT.
func ReadIovecs(m Memory, ptr, n uint32) ([][]byte, error) {
	if n > MaxIovecs {
		return nil, wasi.EINVAL
	}
	raw, err := read(m, ptr, n*8)
	if err != nil {
		return nil, err
	}
	bufs := make([][]byte, 0, n)
	for i := uint32(0); i < n; i++ {
		p := binary.LittleEndian.Uint32(raw[i*8:])
		l := binary.LittleEndian.Uint32(raw[i*8+4:])
		b, err := read(m, p, l)
		if err != nil {
			return nil, err
		}
		bufs = append(bufs, b)
	}
	return bufs, nil
}

// ReadString reads a guest string for sock_getaddrinfo. Guests include a
// terminating NUL in the length; one trailing NUL is stripped, and an
// embedded NUL is EINVAL (it would silently shorten the name in C).
func ReadString(m Memory, ptr, n uint32) (string, error) {
	if n == 0 {
		return "", nil
	}
	b, err := read(m, ptr, n)
	if err != nil {
		return "", err
	}
	if b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	for _, c := range b {
		if c == 0 {
			return "", wasi.EINVAL
		}
	}
	return string(b), nil
}

// GetsockoptLen resolves the incompatible 5th parameter of sock_getsockopt
// (docs/socket-abi.md#getsockopt-fifth): 4 is a by-value length (dnet, wasi-go); anything
// else is a pointer to a u32 length (WasmEdge, Rust), whose value is
// returned with lenPtr set so the caller can write back the length used.
func GetsockoptLen(m Memory, x uint32) (valueLen uint32, lenPtr uint32, byPointer bool, err error) {
	if x == 4 {
		return 4, 0, false, nil
	}
	l, err := ReadU32(m, x)
	if err != nil {
		return 0, 0, false, err
	}
	return l, x, true, nil
}
