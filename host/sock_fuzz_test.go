package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand"
	"net"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// sockMemModule is (module (memory (export "memory") 1)).
var sockMemModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x05, 0x03, 0x01, 0x00, 0x01,
	0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
}

// sockHarness calls the socket functions directly against a real wazero
// memory, with a network that can only touch loopback and never resolves
// a name, so random calls stay on this machine.
type sockHarness struct {
	s     *state
	mem   api.Memory
	funcs []sockExport
	close func()
}

func newSockHarness(t testing.TB, imports map[string]int) *sockHarness {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	mod, err := r.Instantiate(ctx, sockMemModule)
	if err != nil {
		t.Fatal(err)
	}
	w, err := newWaker()
	if err != nil {
		t.Fatal(err)
	}
	onlyLoopback := network.PolicyFunc(func(ctx context.Context, req *network.Request) (network.Verdict, error) {
		if req.Op == policy.OpDNSLookup || !req.Addr.IsValid() || !req.Addr.Unmap().IsLoopback() && !req.Addr.IsUnspecified() {
			return network.Verdict{Verdict: policy.ActionDeny}, nil
		}
		return network.Verdict{Verdict: policy.ActionAllow}, nil
	})
	s := &state{cfg: NewConfig(), wake: w, net: &network.Default{
		Policy:     onlyLoopback,
		Resolver:   network.DNSResolver{}, // no servers: nothing is ever sent
		MaxSockets: 16,
	}}
	h := &sockHarness{s: s, mem: mod.Memory(), funcs: s.socketFuncs(imports)}
	h.close = func() {
		s.fds.closeAll()
		w.close()
		r.Close(ctx)
	}
	return h
}

// call runs function i with params, then puts every socket in non-blocking
// mode so that no later random call can wait forever.
func (h *sockHarness) call(t testing.TB, i int, params []uint64) wasi.Errno {
	f := h.funcs[i%len(h.funcs)]
	p := make([]uint64, f.params)
	copy(p, params)
	e := callSock(context.Background(), h.mem, f.fn, p)
	if e > 87 {
		t.Fatalf("%s%v: errno %d out of range", f.name, p, e)
	}
	h.s.fds.mu.Lock()
	for _, x := range h.s.fds.entries {
		if x != nil {
			x.flags |= wasi.FdflagNonblock
		}
	}
	h.s.fds.mu.Unlock()
	return e
}

// seedMemory lays out plausible structures so that random calls get past
// the first checks: an address struct at 0 (4-byte loopback at 64), one at
// 8 (128-byte storage at 128), an iovec at 16 (64 bytes at 512), a length 4
// at 24, a hints struct at 256, an addrinfo chain at 1024, "localhost\0" at 300.
func seedMemory(m api.Memory) {
	b, _ := m.Read(0, 4096)
	clear(b)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 64)
	le.PutUint32(b[4:], 4)
	copy(b[64:], []byte{127, 0, 0, 1})
	le.PutUint32(b[8:], 128)
	le.PutUint32(b[12:], 128)
	le.PutUint16(b[128:], 1)
	copy(b[130:], []byte{127, 0, 0, 1})
	le.PutUint32(b[16:], 512)
	le.PutUint32(b[20:], 64)
	le.PutUint32(b[24:], 4)
	b[256+3] = 2
	copy(b[300:], "localhost\x00")
	le.PutUint32(b[1020:], 1024)
	for i := uint32(0); i < 4; i++ {
		node := 1024 + i*28
		le.PutUint32(b[node+12:], 2048+i*16)
		if i < 3 {
			le.PutUint32(b[node+24:], node+28)
		}
		le.PutUint32(b[2048+i*16+4:], 26)
		le.PutUint32(b[2048+i*16+8:], 3072+i*32)
	}
}

// smallParam biases random parameters towards values that mean something
// (small fds, the seeded pointers, lengths, flags).
func smallParam(r *rand.Rand) uint64 {
	switch r.Intn(6) {
	case 0:
		return uint64(r.Intn(8)) // fds, families, types, flags
	case 1:
		return []uint64{0, 8, 16, 24, 256, 300, 1020, 4}[r.Intn(8)]
	case 2:
		return uint64(r.Uint32())
	case 3:
		return uint64(65536 - r.Intn(16)) // at the end of memory
	case 4:
		return uint64(r.Intn(128))
	default:
		return uint64(r.Intn(4096))
	}
}

// TestSockFuncsRandom drives every socket function, in both v1 and v2
// shapes, with random parameters against seeded memory: no panic, no
// errno outside the table, and nothing left open afterwards.
func TestSockFuncsRandom(t *testing.T) {
	base := openFds(t)
	for _, imports := range []map[string]int{
		{}, // v2 shapes
		{"sock_accept": 2, "sock_recv_from": 7, "sock_getlocaladdr": 4, "sock_getpeeraddr": 4},
	} {
		h := newSockHarness(t, imports)
		r := rand.New(rand.NewSource(1))
		seen := map[wasi.Errno]bool{}
		for i := 0; i < 20000; i++ {
			if i%500 == 0 {
				seedMemory(h.mem)
			}
			p := make([]uint64, 8)
			for j := range p {
				p[j] = smallParam(r)
			}
			seen[h.call(t, r.Intn(len(h.funcs)), p)] = true
		}
		h.close()
		for _, e := range []wasi.Errno{wasi.ESUCCESS, wasi.EFAULT, wasi.EINVAL, wasi.EBADF} {
			if !seen[e] {
				t.Errorf("imports %v: errno %d never returned in 20000 random calls", imports, e)
			}
		}
	}
	waitFds(t, base)
}

// TestSockFuncsErrnos checks chosen calls for their exact errno.
func TestSockFuncsErrnos(t *testing.T) {
	h := newSockHarness(t, nil)
	defer h.close()
	seedMemory(h.mem)
	fn := map[string]int{}
	for i, f := range h.funcs {
		fn[f.name] = i
	}
	call := func(name string, p ...uint64) wasi.Errno { return h.call(t, fn[name], p) }
	fdAt := func(ptr uint32) uint64 { v, _ := h.mem.ReadUint32Le(ptr); return uint64(v) }

	for _, tc := range []struct {
		name string
		e    wasi.Errno
		p    []uint64
	}{
		{"sock_open", wasi.EINVAL, []uint64{0, 2, 40}},
		{"sock_open", wasi.EINVAL, []uint64{1, 0, 40}},
		{"sock_open", wasi.ENOSYS, []uint64{3, 2, 40}},
		{"sock_open", wasi.EFAULT, []uint64{1, 2, 65534}},
		{"sock_bind", wasi.EBADF, []uint64{99, 0, 80}},
		{"sock_getaddrinfo", sockabiEAINoName, []uint64{0, 0, 0, 0, 256, 1020, 4, 40}},
		{"sock_getaddrinfo", sockabiEAIMemory, []uint64{300, 10, 0, 0, 256, 1020, 0, 40}},
	} {
		if e := call(tc.name, tc.p...); e != tc.e {
			t.Errorf("%s%v = %d, want %d", tc.name, tc.p, e, tc.e)
		}
	}
	// A TCP socket: bind out of range port, bad address length, listen.
	if e := call("sock_open", 1, 2, 40); e != 0 {
		t.Fatal(e)
	}
	tcp := fdAt(40)
	if e := call("sock_bind", tcp, 0, 70000); e != wasi.EINVAL {
		t.Errorf("port 70000: %d", e)
	}
	binary.LittleEndian.PutUint32(mustRead(h.mem, 4, 4), 5)
	if e := call("sock_bind", tcp, 0, 0); e != wasi.EINVAL {
		t.Errorf("address length 5: %d", e)
	}
	binary.LittleEndian.PutUint32(mustRead(h.mem, 4, 4), 4)
	if e := call("sock_getpeeraddr", tcp, 8, 44); e != wasi.ENOTCONN {
		t.Errorf("peer of unconnected: %d", e)
	}
	if e := call("sock_listen", tcp, 0xffffffff); e != wasi.EINVAL {
		t.Errorf("negative backlog: %d", e)
	}
	if e := call("sock_bind", tcp, 0, 0); e != 0 {
		t.Fatalf("bind 127.0.0.1:0: %d", e)
	}
	if e := call("sock_listen", tcp, 8); e != 0 {
		t.Fatalf("listen: %d", e)
	}
	if e := call("sock_accept", tcp, 0, 44); e != wasi.EAGAIN {
		t.Errorf("accept with nothing pending (non-blocking): %d", e)
	}
	if e := call("sock_accept", tcp, 1, 44); e != wasi.EINVAL {
		t.Errorf("accept flags 1: %d", e)
	}
	if e := call("sock_shutdown", tcp, 0); e != wasi.EINVAL {
		t.Errorf("shutdown 0: %d", e)
	}
	if e := call("sock_getsockopt", tcp, 0, 1, 48, 4); e != 0 || fdAt(48) != 2 {
		t.Errorf("SO_TYPE: %d %d", e, fdAt(48))
	}
	if e := call("sock_getsockopt", tcp, 0, 1, 48, 24); e != 0 || fdAt(48) != 2 || fdAt(24) != 4 {
		t.Errorf("SO_TYPE with length pointer: %d %d", e, fdAt(48))
	}
	if e := call("sock_getsockopt", tcp, 0, 99, 48, 4); e != wasi.EINVAL {
		t.Errorf("unknown option: %d", e)
	}
	if e := call("sock_setsockopt", tcp, 0, 1, 48, 4); e != wasi.ENOPROTOOPT {
		t.Errorf("set SO_TYPE: %d", e)
	}
	if e := call("sock_setsockopt", tcp, 0, 0, 48, 2); e != wasi.EINVAL {
		t.Errorf("setsockopt length 2: %d", e)
	}
	// Local address, v2 form: family 1, 127.0.0.1, a real port.
	if e := call("sock_getlocaladdr", tcp, 8, 44); e != 0 {
		t.Fatalf("getlocaladdr: %d", e)
	}
	st := mustRead(h.mem, 128, 6)
	if st[0] != 1 || st[2] != 127 || st[5] != 1 || fdAt(44) == 0 {
		t.Errorf("local address % x port %d", st, fdAt(44))
	}
	// A UDP socket cannot listen or accept.
	if e := call("sock_open", 1, 1, 40); e != 0 {
		t.Fatal(e)
	}
	udp := fdAt(40)
	if e := call("sock_listen", udp, 8); e != wasi.ENOTSUP {
		t.Errorf("listen on udp: %d", e)
	}
	// Sending to a non-loopback address is denied by the policy: EACCES.
	copy(mustRead(h.mem, 64, 4), []byte{192, 0, 2, 1})
	if e := call("sock_send_to", udp, 16, 1, 0, 53, 0, 44); e != wasi.EACCES {
		t.Errorf("denied send_to: %d", e)
	}
	if e := call("sock_connect", tcp+5, 0, 80); e != wasi.EBADF {
		t.Errorf("connect on a free fd: %d", e)
	}
}

const (
	sockabiEAINoName = 84
	sockabiEAIMemory = 82
)

func mustRead(m api.Memory, off, n uint32) []byte {
	b, ok := m.Read(off, n)
	if !ok {
		panic("test memory")
	}
	return b
}

// FuzzSockFuncs is the native fuzz target for the host-function boundary:
// go test -fuzz FuzzSockFuncs ./host/. Beyond "no panic, a valid errno"
// (call), a call that fails other than with EFAULT leaves guest memory as
// it was, and the open sockets never pass the network's MaxSockets.
func FuzzSockFuncs(f *testing.F) {
	f.Add(uint8(0), uint32(1), uint32(2), uint32(40), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), []byte{})
	f.Add(uint8(14), uint32(300), uint32(10), uint32(0), uint32(0), uint32(256), uint32(1020), uint32(4), uint32(40), []byte{})
	f.Add(uint8(8), uint32(0), uint32(16), uint32(1), uint32(8), uint32(0), uint32(44), uint32(48), uint32(52), []byte{1, 2, 3})
	h := newSockHarness(f, nil)
	f.Cleanup(h.close)
	f.Fuzz(func(t *testing.T, which uint8, p0, p1, p2, p3, p4, p5, p6, p7 uint32, mem []byte) {
		seedMemory(h.mem)
		if len(mem) > 4096 {
			mem = mem[:4096]
		}
		h.mem.Write(4096, mem)
		before, _ := h.mem.Read(0, h.mem.Size())
		before = bytes.Clone(before)
		e := h.call(t, int(which), []uint64{uint64(p0), uint64(p1), uint64(p2), uint64(p3), uint64(p4), uint64(p5), uint64(p6), uint64(p7)})
		if after, _ := h.mem.Read(0, h.mem.Size()); e != 0 && e != wasi.EFAULT && !bytes.Equal(before, after) {
			t.Fatalf("%s failed with errno %d but wrote guest memory", h.funcs[int(which)%len(h.funcs)].name, e)
		}
		if n := h.s.net.(*network.Default).OpenSockets(); n > 16 {
			t.Fatalf("%d sockets open, MaxSockets is 16", n)
		}
	})
}

// TestSockRecvFromShapes receives one datagram with each sock_recv_from
// shape and checks the guest memory byte for byte: v1 writes the raw
// sender address into a 16-byte buffer and no port; v2 writes the
// 128-byte storage form and the port as a host-order u32.
func TestSockRecvFromShapes(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		imports := map[string]int{}
		if v1 {
			imports["sock_recv_from"] = 7
		}
		h := newSockHarness(t, imports)
		seedMemory(h.mem)
		fn := map[string]sockExport{}
		for _, f := range h.funcs {
			fn[f.name] = f
		}
		call := func(name string, p ...uint64) wasi.Errno {
			return callSock(context.Background(), h.mem, fn[name].fn, p)
		}
		le := binary.LittleEndian
		if e := call("sock_open", 1, 1, 40); e != 0 {
			t.Fatal(e)
		}
		fd := uint64(le.Uint32(mustRead(h.mem, 40, 4)))
		if e := call("sock_bind", fd, 0, 0); e != 0 { // 127.0.0.1:0
			t.Fatal(e)
		}
		if e := call("sock_getlocaladdr", fd, 8, 44); e != 0 {
			t.Fatal(e)
		}
		port := le.Uint32(mustRead(h.mem, 44, 4))
		src, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.WriteTo([]byte("datagram"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}); err != nil {
			t.Fatal(err)
		}
		srcPort := uint32(src.LocalAddr().(*net.UDPAddr).Port)
		// Wait for the datagram (the socket is non-blocking in the harness).
		var e wasi.Errno
		clear(mustRead(h.mem, 128, 128))
		for i := 0; i < 200; i++ {
			if v1 {
				le.PutUint32(mustRead(h.mem, 12, 4), 16) // address struct at 8: 16-byte buffer at 128
				e = call("sock_recv_from", fd, 16, 1, 8, 0, 48, 52)
			} else {
				e = call("sock_recv_from", fd, 16, 1, 8, 0, 44, 48, 52)
			}
			if e != wasi.EAGAIN {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		src.Close()
		if e != 0 {
			t.Fatalf("v1=%v: errno %d", v1, e)
		}
		if n := le.Uint32(mustRead(h.mem, 48, 4)); n != 8 || string(mustRead(h.mem, 512, 8)) != "datagram" {
			t.Fatalf("v1=%v: nread %d data %q", v1, n, mustRead(h.mem, 512, 8))
		}
		got := mustRead(h.mem, 128, 20)
		if v1 {
			want := []byte{127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			if string(got) != string(want) {
				t.Fatalf("v1 address % x", got)
			}
		} else {
			want := []byte{1, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			if string(got) != string(want) || le.Uint32(mustRead(h.mem, 44, 4)) != srcPort {
				t.Fatalf("v2 address % x port %d want %d", got, le.Uint32(mustRead(h.mem, 44, 4)), srcPort)
			}
		}
		h.close()
	}
}

// TestSockMaxSockets: past network.Default.MaxSockets, sock_open is EMFILE.
func TestSockMaxSockets(t *testing.T) {
	h := newSockHarness(t, nil)
	defer h.close()
	h.s.net = &network.Default{Policy: network.PolicyFunc(allowLoopback), MaxSockets: 2}
	var open func(context.Context, api.Memory, []uint64) error
	for _, f := range h.funcs {
		if f.name == "sock_open" {
			open = f.fn
		}
	}
	for i, want := range []wasi.Errno{0, 0, wasi.EMFILE} {
		if e := callSock(context.Background(), h.mem, open, []uint64{1, 2, 40}); e != want {
			t.Fatalf("socket %d: errno %d, want %d", i, e, want)
		}
	}
}
