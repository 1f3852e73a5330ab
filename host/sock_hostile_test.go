package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/network"
)

var iovbomb struct {
	once sync.Once
	wasm []byte
}

// iovbombWasm builds testdata/sockguests/iovbomb once per test binary.
func iovbombWasm(t testing.TB) []byte {
	t.Helper()
	iovbomb.once.Do(func() { iovbomb.wasm = cGuest(t, "iovbomb") })
	if iovbomb.wasm == nil {
		t.Fatal("the iovbomb guest was not built")
	}
	return iovbomb.wasm
}

// hostAlloc returns the bytes the Go heap allocated while f ran (all
// goroutines: the test must not run in parallel with others).
func hostAlloc(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// iovbombBudget is what one run of the iovbomb guest may allocate on the
// host: instantiating it (its 1 MiB buffer lives in guest memory, which
// wazero allocates), a stub query of at most 64 KiB, and slack. The guest
// asks for 1 GiB per call; before the stub checked sizes, each call cost
// at least that much.
const iovbombBudget = 16 << 20

// TestIovecBombHostMemory: a guest passes 1024 iovecs that all point at
// one 1 MiB buffer (1 GiB) to every call that takes guest data towards a
// socket. Datagrams for the DNS stub are refused with EMSGSIZE before
// anything is copied (sock_send_to, sock_send and fd_write on a socket
// connected to the stub); UDP to a real peer gets the kernel's EMSGSIZE;
// TCP writes what the kernel takes, without a host copy. In every case the
// host heap grows by less than iovbombBudget. A small query split over
// three iovecs is still answered.
func TestIovecBombHostMemory(t *testing.T) {
	wasm := iovbombWasm(t)
	dnsAddr, _ := startDNS(t)
	nw := &network.Default{
		Policy:   network.PolicyFunc(namePolicy),
		Resolver: network.DNSResolver{Servers: []string{dnsAddr}},
	}
	cfg := NewConfig().WithNetwork(nw)

	// A warm-up run compiles the guest, and checks that gathering a
	// query from several iovecs still works.
	out, code := runGuest(t, wasm, cfg, "stubquery")
	out += "\n"
	if code != 0 || !strings.Contains(out, "[stubquery] errno 0 n 26\n") ||
		!strings.Contains(out, "[answer] errno 0 id 1234 rcode 0 ancount 1\n") {
		t.Fatalf("stubquery: code %d\n%s", code, out)
	}

	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpPort := fmt.Sprint(udp.LocalAddr().(*net.UDPAddr).Port)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	tcpPort := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)

	emsgsize := fmt.Sprintf("errno %d n 0\n", 35) // wasi EMSGSIZE
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"stubsendto"}, []string{"[stubsendto] " + emsgsize}},
		{[]string{"stubsend"}, []string{"[stubsend] " + emsgsize}},
		{[]string{"stubwrite"}, []string{"[stubwrite] " + emsgsize}},
		{[]string{"udpsend", udpPort}, []string{"[udpsend] " + emsgsize}},
		{[]string{"tcpsend", tcpPort}, []string{"[tcpsend] errno 0 n ", "[tcpwrite] errno "}},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			var out string
			var code int
			runtime.GC()
			alloc := hostAlloc(func() { out, code = runGuest(t, wasm, cfg, tc.args...) })
			out += "\n"
			t.Logf("host allocated %d KiB", alloc>>10)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q", w)
				}
			}
			if code != 0 || t.Failed() {
				t.Fatalf("code %d output:\n%s", code, out)
			}
			if alloc > iovbombBudget {
				t.Fatalf("host allocated %d MiB for one run (budget %d MiB)", alloc>>20, iovbombBudget>>20)
			}
		})
	}
}

// iovFuzzMem is the guest memory of FuzzIovecShapes: 16 pages.
const iovFuzzMem = 16 << 16

// iovFuzzBudget bounds what one host call of FuzzIovecShapes may allocate:
// a stub query (at most 64 KiB), the stub's parse of it and its answer.
// Before the stub checked sizes, 1024 iovecs over this memory cost 1 GiB.
const iovFuzzBudget = 4 << 20

// iovFuzzHarness is a guest memory of 1 MiB, and sockets to call with
// hostile iovec arrays: fd A is a datagram socket connected to the DNS
// stub, B an unconnected one, C one connected to a loopback peer that
// drains what it gets.
type iovFuzzHarness struct {
	h       *fnHarness
	socks   map[string]sockFunc
	a, b, c uint64
	peer    uint16
}

func newIovFuzzHarness(t testing.TB) *iovFuzzHarness {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback), Resolver: network.DNSResolver{}}
	h := newHarness(t, NewConfig().WithNetwork(nw))
	if _, ok := h.m.Memory().Grow(iovFuzzMem/65536 - 1); !ok {
		t.Fatal("grow")
	}
	x := &iovFuzzHarness{h: h, socks: map[string]sockFunc{}, peer: uint16(pc.LocalAddr().(*net.UDPAddr).Port)}
	for _, f := range h.s.socketFuncs(nil) {
		x.socks[f.name] = f.fn
	}
	mem := h.m.Memory()
	open := func() uint64 {
		if e := x.sock("sock_open", 1, 1, 0x200); e != 0 {
			t.Fatalf("sock_open: %d", e)
		}
		fd, _ := mem.ReadUint32Le(0x200)
		return uint64(fd)
	}
	x.a, x.b, x.c = open(), open(), open()
	x.putAddr(0x100, [4]byte{192, 0, 0, 53})
	if e := x.sock("sock_connect", x.a, 0x100, 53); e != 0 {
		t.Fatalf("connect to the stub: %d", e)
	}
	x.putAddr(0x120, [4]byte{127, 0, 0, 1})
	if e := x.sock("sock_connect", x.c, 0x120, uint64(x.peer)); e != 0 {
		t.Fatalf("connect to the peer: %d", e)
	}
	// Non-blocking, so that a read with nothing queued returns EAGAIN.
	for _, fd := range []uint64{x.a, x.b, x.c} {
		if e := h.call("fd_fdstat_set_flags", fd, uint64(wasi.FdflagNonblock)); e != 0 {
			t.Fatalf("set nonblock: %d", e)
		}
	}
	return x
}

// putAddr writes a WasmEdge address struct at off: {off+8, 4} then ip.
func (x *iovFuzzHarness) putAddr(off uint32, ip [4]byte) {
	var b [12]byte
	binary.LittleEndian.PutUint32(b[0:], off+8)
	binary.LittleEndian.PutUint32(b[4:], 4)
	copy(b[8:], ip[:])
	x.h.put(off, b[:])
}

func (x *iovFuzzHarness) sock(name string, p ...uint64) wasi.Errno {
	return callSock(x.h.ctx, x.h.m.Memory(), x.socks[name], p)
}

// iovShape lays out count iovecs at arr, their shapes taken from shape
// (two bytes each, cycled): all over one buffer, empty, at the end of
// memory, or out of range. It returns their total length and whether
// every one is inside memory.
func iovShape(mem api.Memory, arr uint32, count int, shape []byte) (total uint64, inRange bool) {
	if len(shape) == 0 {
		shape = []byte{0xff}
	}
	inRange = true
	for i := 0; i < count; i++ {
		k, q := shape[(2*i)%len(shape)], shape[(2*i+1)%len(shape)]
		ptr := uint32(q) << 12
		var l uint32
		switch {
		case k == 0xff: // the whole memory, again and again
			ptr, l = 0, iovFuzzMem
		case k%8 == 0:
			l = 0
		case k%8 == 1:
			l = 1
		case k%8 == 2:
			l = uint32(k) * 7
		case k%8 == 3:
			l = 65535
		case k%8 == 4:
			l = 65536
		case k%8 == 5:
			l = iovFuzzMem - ptr
		case k%8 == 6:
			l = iovFuzzMem - ptr + 1 // one byte past the end
		default:
			ptr, l = uint32(k)<<24, 0xffffffff
		}
		if uint64(ptr)+uint64(l) > iovFuzzMem {
			inRange = false
		}
		total += uint64(l)
		var b [8]byte
		binary.LittleEndian.PutUint32(b[0:], ptr)
		binary.LittleEndian.PutUint32(b[4:], l)
		if !mem.Write(arr+uint32(i)*8, b[:]) {
			panic("iovec array out of range")
		}
	}
	return total, inRange
}

// FuzzIovecShapes calls every function that takes guest iovecs towards a
// socket (sock_send_to and sock_send to the DNS stub, fd_write on a socket
// connected to it, UDP to a loopback peer, sock_recv and fd_read) with
// fuzzed iovec arrays: counts up to 1100, overlapping, empty, at the end
// of memory and out of range. Properties: no panic; the errno is a valid
// WASI errno; an array over 1024 is EINVAL, one out of range EFAULT; the
// stub refuses more than 65535 bytes with EMSGSIZE and takes anything
// else whole; and no call makes the host allocate more than
// iovFuzzBudget, whatever the total length.
func FuzzIovecShapes(f *testing.F) {
	f.Add(uint8(0), uint16(1024), []byte{0xff})
	f.Add(uint8(1), uint16(1024), []byte{0xff})
	f.Add(uint8(2), uint16(1024), []byte{5, 0})
	f.Add(uint8(3), uint16(2), []byte{3, 0, 1, 1})
	f.Add(uint8(0), uint16(3), []byte{2, 0, 2, 1, 2, 2})
	f.Add(uint8(4), uint16(16), []byte{6, 0xff})
	f.Add(uint8(5), uint16(1025), []byte{1, 0})
	f.Add(uint8(6), uint16(8), []byte{7, 3})
	f.Add(uint8(0x80), uint16(4), []byte{1, 0})
	x := newIovFuzzHarness(f)
	mem := x.h.m.Memory()
	f.Fuzz(func(t *testing.T, op uint8, count uint16, shape []byte) {
		n := int(count % 1101)
		arr := uint32(0x1000)
		if op&0x80 != 0 {
			arr = iovFuzzMem - 4 // the array itself runs off the end
		}
		total, inRange := uint64(0), true
		if arr == 0x1000 {
			total, inRange = iovShape(mem, arr, n, shape)
		} else if n > 0 {
			inRange = false
		}
		const ret = 0x300
		var e wasi.Errno
		var name string
		alloc := hostAlloc(func() {
			switch op % 7 {
			case 0:
				name = "sock_send_to stub"
				e = x.sock("sock_send_to", x.b, uint64(arr), uint64(n), 0x100, 53, 0, ret)
			case 1:
				name = "sock_send stub"
				e = x.sock("sock_send", x.a, uint64(arr), uint64(n), 0, ret)
			case 2:
				name = "fd_write stub"
				e = x.h.call("fd_write", x.a, uint64(arr), uint64(n), ret)
			case 3:
				name = "sock_send_to peer"
				e = x.sock("sock_send_to", x.b, uint64(arr), uint64(n), 0x120, uint64(x.peer), 0, ret)
			case 4:
				name = "sock_recv stub"
				e = x.sock("sock_recv", x.a, uint64(arr), uint64(n), 0, ret, ret+8)
			case 5:
				name = "fd_read stub"
				e = x.h.call("fd_read", x.a, uint64(arr), uint64(n), ret)
			default:
				name = "sock_send peer"
				e = x.sock("sock_send", x.c, uint64(arr), uint64(n), 0, ret)
			}
		})
		if alloc > iovFuzzBudget {
			t.Fatalf("%s with %d iovecs (%d bytes): host allocated %d KiB", name, n, total, alloc>>10)
		}
		if e > 76 {
			t.Fatalf("%s: errno %d out of range", name, e)
		}
		got, _ := mem.ReadUint32Le(ret)
		switch {
		case n > 1024:
			if e != wasi.EINVAL {
				t.Fatalf("%s with %d iovecs: errno %d, want EINVAL", name, n, e)
			}
		case !inRange:
			if e != wasi.EFAULT {
				t.Fatalf("%s with an iovec out of range: errno %d, want EFAULT", name, e)
			}
		case op%7 <= 2 && total > 65535:
			if e != wasi.EMSGSIZE {
				t.Fatalf("%s of %d bytes: errno %d, want EMSGSIZE", name, total, e)
			}
		case op%7 <= 2:
			if e != 0 || uint64(got) != total {
				t.Fatalf("%s of %d bytes: errno %d, n %d", name, total, e, got)
			}
		case op%7 == 3 || op%7 == 6:
			if total > 65507 && e != wasi.EMSGSIZE {
				t.Fatalf("%s of %d bytes: errno %d, want EMSGSIZE", name, total, e)
			}
			if e == 0 && uint64(got) != total {
				t.Fatalf("%s of %d bytes: sent %d", name, total, got)
			}
		}
		// Drain the stub's answers now and then, so that the queue's
		// bound is reached but reads also find something.
		if op%16 == 15 {
			for x.sock("sock_recv", x.a, 0x20, 0, 0, ret, ret+8) == 0 {
			}
		}
	})
}

// TestPeerFloodsGuestThatNeverReads: a loopback peer tries to send 1 GiB
// to a guest that connected and then never reads. The host reads nothing
// on the guest's behalf, so the kernel's buffers fill, TCP flow control
// stops the peer after a few MiB, and the host heap does not grow with
// what the peer sent.
func TestPeerFloodsGuestThatNeverReads(t *testing.T) {
	wasm := iovbombWasm(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	g := startGuest(t, wasm, NewConfig().WithNetwork(nw), "noread", port, "60")
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g.out.wait(t, "[noread] connected", time.Minute)

	const flood = 1 << 30
	chunk := make([]byte, 1<<20)
	sent := 0
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for sent < flood {
		// A write that makes no progress for 500ms means the window is
		// closed: the guest's receive buffer and our send buffer are full.
		c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write after %d bytes: %v", sent, err)
			}
			break
		}
	}
	runtime.ReadMemStats(&after)
	t.Logf("the peer got %d KiB into the kernel before it stalled; host heap %+d KiB, allocated %d KiB",
		sent>>10, (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10, (after.TotalAlloc-before.TotalAlloc)>>10)
	if sent >= flood || sent > 64<<20 {
		t.Fatalf("the peer sent %d MiB to a guest that never reads", sent>>20)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("the host allocated %d MiB while the peer sent %d MiB", alloc>>20, sent>>20)
	}
	select {
	case <-g.done:
		t.Fatalf("guest exited: %s", g.out.String())
	default:
	}
}
