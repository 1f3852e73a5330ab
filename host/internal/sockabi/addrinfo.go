package sockabi

import (
	"encoding/binary"
	"net/netip"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// Sizes and offsets of the getaddrinfo structures (docs/socket-abi.md#getaddrinfo-layout).
const (
	AddrinfoSize = 28
	SockaddrSize = 12 // WasmEdge layout: family u8 @0, data_len u32 @4, data ptr @8
	// SaDataMin is the sa_data length needed for an IPv6 result (port 2 +
	// address 16); IPv4 needs 6. Real guests allocate 26 (dnet, Rust).
	SaDataMin4 = 6
	SaDataMin6 = 18
)

// getaddrinfo flags (u16).
const (
	AIPassive     = 0x1
	AICanonName   = 0x2
	AINumericHost = 0x4
	AINumericServ = 0x8
	AIV4Mapped    = 0x10
	AIAll         = 0x20
	AIAddrConfig  = 0x40
	aiKnown       = 0x7f
)

// Hints is the decoded hints addrinfo.
type Hints struct {
	Flags    uint16
	Family   uint8
	SockType uint8
	Protocol uint8
}

// ReadHints reads the 28-byte hints struct at ptr and validates it with
// WasmEdge's errors: unknown flags → EAI_BADFLAGS, family → EAI_FAMILY,
// socket type or protocol → EAI_SOCKTYPE.
func ReadHints(m Memory, ptr uint32) (Hints, error) {
	b, err := read(m, ptr, AddrinfoSize)
	if err != nil {
		return Hints{}, err
	}
	h := Hints{
		Flags:    binary.LittleEndian.Uint16(b[0:2]),
		Family:   b[2],
		SockType: b[3],
		Protocol: b[4],
	}
	if h.Flags&^aiKnown != 0 {
		return h, EAIBadFlags
	}
	if h.Family > AfInet6 {
		return h, EAIFamily
	}
	if h.SockType > SockStream || h.Protocol > ProtoUDP {
		return h, EAISockType
	}
	return h, nil
}

// Result is one getaddrinfo answer to write to the guest.
type Result struct {
	Addr     netip.AddrPort
	SockType uint8 // SockDgram or SockStream
	Protocol uint8 // ProtoTCP or ProtoUDP
}

// WriteResults fills the guest's pre-allocated addrinfo chain with rs:
// *resPtrPtr is the first node, nodes are linked through ai_next, at most
// maxRes are filled, and the walk stops early at a null ai_next. Every node,
// sockaddr and sa_data pointer is bounds-checked before anything is written
// to it (EFAULT), and a sa_data buffer too small for the address is EINVAL.
// It returns the number of results written.
//
// sa_data layout: port big-endian u16 at [0,2), IPv4 at [2,6), IPv6 at
// [2,18) (the wasi-go/dnet layout). ai_addrlen is 16 for IPv4 and 28 for
// IPv6 (never 0: the Rust crate skips such entries); ai_canonname_len is 0.
func WriteResults(m Memory, resPtrPtr, maxRes uint32, rs []Result) (uint32, error) {
	node, err := ReadU32(m, resPtrPtr)
	if err != nil {
		return 0, err
	}
	var n uint32
	for _, r := range rs {
		if n >= maxRes {
			break
		}
		if n > 0 {
			if node == 0 {
				break
			}
		}
		ai, err := read(m, node, AddrinfoSize)
		if err != nil {
			return n, err
		}
		saPtr := binary.LittleEndian.Uint32(ai[12:16])
		sa, err := read(m, saPtr, SockaddrSize)
		if err != nil {
			return n, err
		}
		dataLen := binary.LittleEndian.Uint32(sa[4:8])
		dataPtr := binary.LittleEndian.Uint32(sa[8:12])
		data, err := read(m, dataPtr, dataLen)
		if err != nil {
			return n, err
		}
		a := r.Addr.Addr().Unmap()
		fam := uint8(AfInet4)
		need := uint32(SaDataMin4)
		addrlen := uint32(16)
		if !a.Is4() {
			fam, need, addrlen = AfInet6, SaDataMin6, 28
		}
		if dataLen < need {
			return n, wasi.EINVAL
		}
		clear(data)
		binary.BigEndian.PutUint16(data[0:2], r.Addr.Port())
		if a.Is4() {
			b := a.As4()
			copy(data[2:6], b[:])
		} else {
			b := a.As16()
			copy(data[2:18], b[:])
		}
		sa[0], sa[1], sa[2], sa[3] = fam, 0, 0, 0 // dnet reads a u32 family
		// ai_flags stay as the guest set them; fill the descriptive fields.
		ai[2] = fam
		ai[3] = r.SockType
		ai[4] = r.Protocol
		binary.LittleEndian.PutUint32(ai[8:12], addrlen)
		binary.LittleEndian.PutUint32(ai[20:24], 0) // no canonical name
		n++
		node = binary.LittleEndian.Uint32(ai[24:28])
	}
	return n, nil
}
