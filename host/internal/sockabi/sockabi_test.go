package sockabi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

func put32(b []byte, off, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }

func TestDecodeInputAddress(t *testing.T) {
	storage4 := make([]byte, 128)
	storage4[0] = AfInet4
	copy(storage4[2:], []byte{10, 1, 2, 3})
	storage6 := make([]byte, 128)
	storage6[0] = AfInet6
	copy(storage6[2:], netip.MustParseAddr("2001:db8::1").AsSlice())
	unix := make([]byte, 128)
	unix[0] = AfUnix
	badfam := make([]byte, 128)
	badfam[0] = 9
	tests := []struct {
		name string
		in   []byte
		want netip.Addr
		err  error
	}{
		{"raw4", []byte{127, 0, 0, 1}, netip.MustParseAddr("127.0.0.1"), nil},
		{"raw16", netip.MustParseAddr("::1").AsSlice(), netip.MustParseAddr("::1"), nil},
		{"raw16 mapped kept", netip.MustParseAddr("::ffff:1.2.3.4").AsSlice(), netip.MustParseAddr("::ffff:1.2.3.4"), nil},
		{"storage4", storage4, netip.MustParseAddr("10.1.2.3"), nil},
		{"storage6", storage6, netip.MustParseAddr("2001:db8::1"), nil},
		{"unix", unix, netip.Addr{}, wasi.EAFNOSUPPORT},
		{"bad family", badfam, netip.Addr{}, wasi.EINVAL},
		{"len 0", nil, netip.Addr{}, wasi.EINVAL},
		{"len 8", make([]byte, 8), netip.Addr{}, wasi.EINVAL},
		{"len 127", make([]byte, 127), netip.Addr{}, wasi.EINVAL},
	}
	for _, tt := range tests {
		got, err := DecodeInputAddress(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) && err != tt.err {
			t.Errorf("%s: got %v, %v; want %v, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

func TestReadInputAddressBounds(t *testing.T) {
	m := make(Bytes, 64)
	copy(m[32:], []byte{192, 0, 2, 1})
	put32(m, 0, 32)
	put32(m, 4, 4)
	a, err := ReadInputAddress(m, 0)
	if err != nil || a != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("got %v %v", a, err)
	}
	for _, tc := range []struct {
		ptr, buf, n uint32
	}{
		{60, 32, 4},         // struct straddles the end
		{0, 62, 4},          // buffer straddles the end
		{0, 0xfffffffe, 4},  // wraps around
		{0, 32, 0xffffffff}, // huge length
		{0xffffffff, 0, 0},  // struct pointer at the top
	} {
		put32(m, 0, tc.buf)
		put32(m, 4, tc.n)
		if _, err := ReadInputAddress(m, tc.ptr); err != wasi.EFAULT {
			t.Errorf("%+v: err %v, want EFAULT", tc, err)
		}
	}
}

func TestWriteAddressForms(t *testing.T) {
	m := make(Bytes, 256)
	put32(m, 0, 64)
	put32(m, 4, 128)
	for i := range m[64:192] {
		m[64+i] = 0xee
	}
	if err := WriteAddressV2(m, 0, netip.MustParseAddr("10.0.0.7")); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 128)
	copy(want, []byte{1, 0, 10, 0, 0, 7})
	if !bytes.Equal(m[64:192], want) {
		t.Fatalf("v2 storage: % x", m[64:80])
	}
	if err := WriteAddressV2(m, 0, netip.MustParseAddr("2001:db8::9")); err != nil {
		t.Fatal(err)
	}
	want = make([]byte, 128)
	want[0] = 2
	copy(want[2:], netip.MustParseAddr("2001:db8::9").AsSlice())
	if !bytes.Equal(m[64:192], want) {
		t.Fatalf("v2 storage6: % x", m[64:90])
	}
	// v2 with 16 bytes is EINVAL
	put32(m, 4, 16)
	if err := WriteAddressV2(m, 0, netip.MustParseAddr("10.0.0.7")); err != wasi.EINVAL {
		t.Fatalf("v2 len16: %v", err)
	}
	// v1: 16 bytes raw, type 4/6
	typ, err := WriteAddressV1(m, 0, netip.MustParseAddr("10.0.0.7"))
	if err != nil || typ != 4 || !bytes.Equal(m[64:80], []byte{10, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("v1: %d %v % x", typ, err, m[64:80])
	}
	typ, err = WriteAddressV1(m, 0, netip.MustParseAddr("::1"))
	if err != nil || typ != 6 || !bytes.Equal(m[64:80], netip.MustParseAddr("::1").AsSlice()) {
		t.Fatalf("v1 v6: %d %v", typ, err)
	}
	put32(m, 4, 4)
	if _, err := WriteAddressV1(m, 0, netip.MustParseAddr("::1")); err != wasi.ENOMEM {
		t.Fatalf("v1 short: %v", err)
	}
	put32(m, 4, 128)
	if _, err := WriteAddressV1(m, 0, netip.MustParseAddr("::1")); err != wasi.EINVAL {
		t.Fatalf("v1 128: %v", err)
	}
	// recv_from accepts 128 and raw forms
	if err := WriteRecvFromAddress(m, 0, netip.MustParseAddr("127.0.0.1")); err != nil || m[64] != 1 || m[66] != 127 {
		t.Fatalf("recvfrom 128: %v % x", err, m[64:70])
	}
	put32(m, 4, 16)
	if err := WriteRecvFromAddress(m, 0, netip.MustParseAddr("127.0.0.1")); err != nil || m[64] != 127 {
		t.Fatalf("recvfrom 16: %v % x", err, m[64:70])
	}
	put32(m, 4, 7)
	if err := WriteRecvFromAddress(m, 0, netip.MustParseAddr("127.0.0.1")); err != wasi.EINVAL {
		t.Fatalf("recvfrom 7: %v", err)
	}
}

func TestReadIovecs(t *testing.T) {
	m := make(Bytes, 128)
	put32(m, 0, 64)
	put32(m, 4, 3)
	put32(m, 8, 100)
	put32(m, 12, 28)
	bufs, err := ReadIovecs(m, 0, 2)
	if err != nil || len(bufs) != 2 || len(bufs[0]) != 3 || len(bufs[1]) != 28 {
		t.Fatalf("%v %v", bufs, err)
	}
	bufs[0][0] = 9
	if m[64] != 9 {
		t.Fatal("iovec is not a view of memory")
	}
	put32(m, 12, 29)
	if _, err := ReadIovecs(m, 0, 2); err != wasi.EFAULT {
		t.Fatalf("overflow: %v", err)
	}
	if _, err := ReadIovecs(m, 0, MaxIovecs+1); err != wasi.EINVAL {
		t.Fatalf("too many: %v", err)
	}
	if _, err := ReadIovecs(m, 0x7fffffff, 0x20000000); err == nil {
		t.Fatal("huge iovec count accepted")
	}
}

func TestReadString(t *testing.T) {
	m := Bytes("localhost\x00evil\x00name\x00")
	if s, err := ReadString(m, 0, 10); s != "localhost" || err != nil {
		t.Fatalf("%q %v", s, err)
	}
	if s, err := ReadString(m, 0, 9); s != "localhost" || err != nil {
		t.Fatalf("no NUL: %q %v", s, err)
	}
	if _, err := ReadString(m, 10, 10); err != wasi.EINVAL {
		t.Fatalf("embedded NUL: %v", err)
	}
	if s, err := ReadString(m, 0, 0); s != "" || err != nil {
		t.Fatalf("empty: %q %v", s, err)
	}
	if _, err := ReadString(m, 15, 100); err != wasi.EFAULT {
		t.Fatalf("oob: %v", err)
	}
}

func TestGetsockoptLen(t *testing.T) {
	m := make(Bytes, 64)
	put32(m, 32, 4)
	if l, p, byPtr, err := GetsockoptLen(m, 4); l != 4 || p != 0 || byPtr || err != nil {
		t.Fatal("by value")
	}
	if l, p, byPtr, err := GetsockoptLen(m, 32); l != 4 || p != 32 || !byPtr || err != nil {
		t.Fatal("by pointer")
	}
	if _, _, _, err := GetsockoptLen(m, 62); err != wasi.EFAULT {
		t.Fatal("oob pointer")
	}
}

// buildChain lays out n linked addrinfo nodes the way dnet does and
// returns the memory and the res_ptr_ptr.
func buildChain(n int, dataLen uint32) (Bytes, uint32) {
	m := make(Bytes, 4096)
	const resPtr = 8
	base := uint32(64)
	put32(m, resPtr, base)
	for i := 0; i < n; i++ {
		node := base + uint32(i)*AddrinfoSize
		sa := 1024 + uint32(i)*16
		data := 2048 + uint32(i)*32
		put32(m, node+12, sa)
		if i+1 < n {
			put32(m, node+24, node+AddrinfoSize)
		}
		put32(m, sa+4, dataLen)
		put32(m, sa+8, data)
	}
	return m, resPtr
}

func TestWriteResults(t *testing.T) {
	m, res := buildChain(3, 26)
	rs := []Result{
		{netip.MustParseAddrPort("127.0.0.1:8080"), SockStream, ProtoTCP},
		{netip.MustParseAddrPort("[2001:db8::5]:443"), SockStream, ProtoTCP},
		{netip.MustParseAddrPort("[::ffff:10.0.0.1]:53"), SockDgram, ProtoUDP},
		{netip.MustParseAddrPort("10.9.9.9:1"), SockDgram, ProtoUDP},
	}
	n, err := WriteResults(m, res, 8, rs)
	if err != nil || n != 3 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	// node 0: IPv4
	if m[64+2] != AfInet4 || m[64+3] != SockStream || m[64+4] != ProtoTCP || binary.LittleEndian.Uint32(m[64+8:]) != 16 {
		t.Fatalf("node0 % x", m[64:92])
	}
	if m[1024] != AfInet4 {
		t.Fatal("sa_family")
	}
	want := make([]byte, 26)
	copy(want, []byte{0x1f, 0x90, 127, 0, 0, 1})
	if !bytes.Equal(m[2048:2048+26], want) {
		t.Fatalf("sa_data4 % x", m[2048:2048+26])
	}
	// node 1: IPv6 at [2,18)
	want = make([]byte, 26)
	want[0], want[1] = 0x01, 0xbb
	copy(want[2:], netip.MustParseAddr("2001:db8::5").AsSlice())
	if !bytes.Equal(m[2080:2080+26], want) || m[1040] != AfInet6 || binary.LittleEndian.Uint32(m[92+8:]) != 28 {
		t.Fatalf("sa_data6 % x", m[2080:2106])
	}
	// node 2: mapped address written as IPv4
	if m[1056] != AfInet4 || !bytes.Equal(m[2112:2118], []byte{0, 53, 10, 0, 0, 1}) {
		t.Fatalf("mapped % x", m[2112:2118])
	}
	// max_res_len bounds the walk
	m, res = buildChain(3, 26)
	if n, err := WriteResults(m, res, 1, rs); n != 1 || err != nil {
		t.Fatalf("max 1: %d %v", n, err)
	}
	// sa_data too small for IPv6
	m, res = buildChain(3, 6)
	if n, err := WriteResults(m, res, 8, rs); n != 1 || err != wasi.EINVAL {
		t.Fatalf("small sa_data: %d %v", n, err)
	}
	// bad pointer in the chain
	m, res = buildChain(3, 26)
	put32(m, 64+AddrinfoSize+12, 4090) // node1's sockaddr straddles the end
	if _, err := WriteResults(m, res, 8, rs); err != wasi.EFAULT {
		t.Fatalf("bad sockaddr ptr: %v", err)
	}
	m, res = buildChain(1, 26)
	put32(m, res, 4080)
	if _, err := WriteResults(m, res, 8, rs); err != wasi.EFAULT {
		t.Fatalf("bad node ptr: %v", err)
	}
}

func TestReadHints(t *testing.T) {
	m := make(Bytes, 64)
	m[0], m[2], m[3], m[4] = AINumericServ, AfInet6, SockStream, ProtoTCP
	h, err := ReadHints(m, 0)
	if err != nil || h != (Hints{AINumericServ, AfInet6, SockStream, ProtoTCP}) {
		t.Fatalf("%+v %v", h, err)
	}
	m[1] = 1 // flag 0x100
	if _, err := ReadHints(m, 0); err != EAIBadFlags {
		t.Fatal(err)
	}
	m[1], m[2] = 0, 3
	if _, err := ReadHints(m, 0); err != EAIFamily {
		t.Fatal(err)
	}
	m[2], m[3] = 0, 5
	if _, err := ReadHints(m, 0); err != EAISockType {
		t.Fatal(err)
	}
	if _, err := ReadHints(m, 40); err != wasi.EFAULT {
		t.Fatal(err)
	}
}

// FuzzGuestMemory drives every decoder with arbitrary memory and pointers:
// none may panic, and every failure must be one of the documented errnos.
func FuzzGuestMemory(f *testing.F) {
	f.Add(make([]byte, 300), uint32(0), uint32(4), uint32(8))
	m, _ := buildChain(3, 26)
	f.Add([]byte(m[:2200]), uint32(8), uint32(3), uint32(64))
	f.Fuzz(func(t *testing.T, mem []byte, p1, p2, p3 uint32) {
		m := Bytes(mem)
		ok := func(err error) {
			if err == nil {
				return
			}
			var e wasi.Errno
			if !errors.As(err, &e) {
				t.Fatalf("non-errno error %v", err)
			}
		}
		_, err := ReadInputAddress(m, p1)
		ok(err)
		_, err = WriteAddressV1(m, p1, netip.MustParseAddr("::1"))
		ok(err)
		ok(WriteAddressV2(m, p2, netip.MustParseAddr("1.2.3.4")))
		ok(WriteRecvFromAddress(m, p3, netip.MustParseAddr("1.2.3.4")))
		_, err = ReadIovecs(m, p1, p2%2048)
		ok(err)
		_, err = ReadString(m, p1, p2%4096)
		ok(err)
		_, _, _, err = GetsockoptLen(m, p3)
		ok(err)
		_, err = ReadHints(m, p2)
		ok(err)
		n, err := WriteResults(m, p1, p2, []Result{
			{netip.MustParseAddrPort("1.2.3.4:5"), SockStream, ProtoTCP},
			{netip.MustParseAddrPort("[::1]:5"), SockStream, ProtoTCP},
		})
		ok(err)
		if n > 2 || n > p2 {
			t.Fatalf("wrote %d results, max %d", n, p2)
		}
	})
}
