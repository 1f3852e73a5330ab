package host

import (
	"encoding/binary"
	"io"
	"math/rand"
	"net"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// Tests of the splice host function (sock_getsockopt at level 0x7767)
// against a real wazero memory, without a guest.

// Layout used below: the 16-byte argument buffer at spliceBuf, its length
// word at spliceLen, sock_open's result at 40.
const (
	spliceBuf = 3000
	spliceLen = 3020
)

type spliceHarness struct {
	*sockHarness
	fn map[string]int
}

func newSpliceHarness(t *testing.T) *spliceHarness {
	h := &spliceHarness{sockHarness: newSockHarness(t, nil), fn: map[string]int{}}
	t.Cleanup(h.close)
	for i, f := range h.funcs {
		h.fn[f.name] = i
	}
	seedMemory(h.mem)
	return h
}

func (h *spliceHarness) callName(t *testing.T, name string, p ...uint64) wasi.Errno {
	return h.call(t, h.fn[name], p)
}

func (h *spliceHarness) open(t *testing.T, socktype uint64) uint64 {
	t.Helper()
	if e := h.callName(t, "sock_open", 1, socktype, 40); e != 0 {
		t.Fatalf("sock_open: %d", e)
	}
	v, _ := h.mem.ReadUint32Le(40)
	return uint64(v)
}

// splice calls the extension with the argument buffer set to dst and max
// and the length word to length; it returns the errno and the output.
func (h *spliceHarness) splice(t *testing.T, src, dst uint64, max, length uint32) (wasi.Errno, uint64, uint32) {
	le := binary.LittleEndian
	buf := mustRead(h.mem, spliceBuf, 16)
	clear(buf)
	le.PutUint32(buf[0:], uint32(dst))
	le.PutUint32(buf[4:], max)
	le.PutUint32(mustRead(h.mem, spliceLen, 4), length)
	e := h.callName(t, "sock_getsockopt", src, solWasmgate, wgSplice, spliceBuf, spliceLen)
	return e, le.Uint64(buf[0:]), le.Uint32(buf[8:])
}

// connected opens a TCP socket connected to ln and returns it with the
// accepted peer.
func (h *spliceHarness) connected(t *testing.T, ln net.Listener) (uint64, net.Conn) {
	t.Helper()
	fd := h.open(t, 2)
	copy(mustRead(h.mem, 64, 4), []byte{127, 0, 0, 1})
	port := uint64(ln.Addr().(*net.TCPAddr).Port)
	if e := h.callName(t, "sock_connect", fd, 0, port); e != 0 && e != wasi.EINPROGRESS {
		t.Fatalf("connect: %d", e)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for i := 0; ; i++ {
		if e := h.callName(t, "sock_getpeeraddr", fd, 8, 44); e == 0 {
			break
		}
		if i == 500 {
			t.Fatal("connect did not complete")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fd, c
}

// TestSockSpliceErrnos checks each validation of the splice call, then a
// real splice between two connected sockets: progress, an empty source
// (state 1) and the end of the source (state 3), with the length written
// back.
func TestSockSpliceErrnos(t *testing.T) {
	h := newSpliceHarness(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, pa := h.connected(t, ln)
	b, pb := h.connected(t, ln)
	udp := h.open(t, 1)
	unconnected := h.open(t, 2)

	for _, tc := range []struct {
		name string
		e    wasi.Errno
		p    []uint64
	}{
		{"unknown name", wasi.EINVAL, []uint64{a, solWasmgate, 2, spliceBuf, spliceLen}},
		{"by-value length", wasi.EINVAL, []uint64{a, solWasmgate, wgSplice, spliceBuf, 4}},
		{"length pointer outside memory", wasi.EFAULT, []uint64{a, solWasmgate, wgSplice, spliceBuf, 65534}},
		{"buffer outside memory", wasi.EFAULT, []uint64{a, solWasmgate, wgSplice, 65530, spliceLen}},
		{"bad source fd", wasi.EBADF, []uint64{99, solWasmgate, wgSplice, spliceBuf, spliceLen}},
	} {
		le := binary.LittleEndian
		le.PutUint32(mustRead(h.mem, spliceLen, 4), 16)
		le.PutUint32(mustRead(h.mem, spliceBuf, 4), uint32(b))
		if e := h.callName(t, "sock_getsockopt", tc.p...); e != tc.e {
			t.Errorf("%s: errno %d, want %d", tc.name, e, tc.e)
		}
	}
	for _, tc := range []struct {
		name     string
		src, dst uint64
		length   uint32
		e        wasi.Errno
	}{
		{"length 8", a, b, 8, wasi.EINVAL},
		{"length 32", a, b, 32, wasi.EINVAL},
		{"bad destination fd", a, 99, 16, wasi.EBADF},
		{"datagram destination", a, udp, 16, wasi.ENOTSUP},
		{"datagram source", udp, b, 16, wasi.ENOTSUP},
		{"unconnected source", unconnected, b, 16, wasi.ENOTCONN},
	} {
		if e, _, _ := h.splice(t, tc.src, tc.dst, 0, tc.length); e != tc.e {
			t.Errorf("%s: errno %d, want %d", tc.name, e, tc.e)
		}
	}

	if e, n, st := h.splice(t, a, b, 0, 16); e != 0 || n != 0 || st != 1 {
		t.Fatalf("empty source: errno %d n %d state %d", e, n, st)
	}
	if l, _ := h.mem.ReadUint32Le(spliceLen); l != 16 {
		t.Fatalf("length written back: %d", l)
	}
	msg := []byte("spliced by the host")
	pa.Write(msg)
	var got uint64
	for i := 0; got < uint64(len(msg)); i++ {
		e, n, st := h.splice(t, a, b, 7, 16) // max 7: several calls
		if e != 0 || n > 7 || (n == 7) != (st == 0) {
			t.Fatalf("splice: errno %d n %d state %d", e, n, st)
		}
		got += n
		if i == 1000 {
			t.Fatal("data never arrived")
		}
		if n == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	buf := make([]byte, len(msg))
	pb.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(pb, buf); err != nil || string(buf) != string(msg) {
		t.Fatalf("destination read %q %v", buf, err)
	}
	pa.Close()
	for i := 0; ; i++ {
		e, n, st := h.splice(t, a, b, 0, 16)
		if e != 0 || n != 0 {
			t.Fatalf("after close: errno %d n %d", e, n)
		}
		if st == 3 {
			break
		}
		if i == 500 {
			t.Fatalf("no EOF state, last %d", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSockSpliceRandom drives the splice call with random fds, pointers,
// lengths and buffer contents, between random socket calls: no panic, no
// errno outside the table, nothing left open.
func TestSockSpliceRandom(t *testing.T) {
	base := openFds(t)
	h := newSockHarness(t, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fn := map[string]int{}
	for i, f := range h.funcs {
		fn[f.name] = i
	}
	r := rand.New(rand.NewSource(2))
	le := binary.LittleEndian
	seen := map[wasi.Errno]bool{}
	for i := 0; i < 20000; i++ {
		if i%500 == 0 {
			seedMemory(h.mem)
			copy(mustRead(h.mem, 64, 4), []byte{127, 0, 0, 1})
			le.PutUint32(mustRead(h.mem, spliceLen, 4), 16)
		}
		switch r.Intn(8) {
		case 0:
			h.call(t, fn["sock_open"], []uint64{1, uint64(1 + r.Intn(2)), 40})
		case 1:
			h.call(t, fn["sock_connect"], []uint64{uint64(r.Intn(8)), 0, uint64(ln.Addr().(*net.TCPAddr).Port)})
		case 2:
			h.call(t, fn["sock_shutdown"], []uint64{uint64(r.Intn(8)), 3})
		default:
			buf := mustRead(h.mem, spliceBuf, 16)
			le.PutUint32(buf[0:], uint32(r.Intn(10)))
			le.PutUint32(buf[4:], r.Uint32()>>uint(r.Intn(32)))
			if r.Intn(4) == 0 {
				le.PutUint32(mustRead(h.mem, spliceLen, 4), uint32(r.Intn(40)))
			}
			ptr, lenPtr := uint64(spliceBuf), uint64(spliceLen)
			if r.Intn(3) == 0 {
				ptr = smallParam(r)
			}
			if r.Intn(3) == 0 {
				lenPtr = smallParam(r)
			}
			seen[h.call(t, fn["sock_getsockopt"], []uint64{uint64(r.Intn(10)), solWasmgate, uint64(r.Intn(3)), ptr, lenPtr})] = true
		}
	}
	h.close()
	ln.Close()
	for _, e := range []wasi.Errno{wasi.ESUCCESS, wasi.EFAULT, wasi.EINVAL, wasi.EBADF, wasi.ENOTSUP} {
		if !seen[e] {
			t.Errorf("errno %d never returned", e)
		}
	}
	waitFds(t, base)
}

// FuzzSockSplice is the native fuzz target for the splice call:
// go test -fuzz FuzzSockSplice ./host/
func FuzzSockSplice(f *testing.F) {
	f.Add(uint32(0), uint32(wgSplice), uint32(spliceBuf), uint32(spliceLen), uint32(16), uint32(0), uint32(0))
	f.Add(uint32(3), uint32(wgSplice), uint32(65530), uint32(4), uint32(16), uint32(1), uint32(1<<31))
	h := newSockHarness(f, nil)
	f.Cleanup(h.close)
	var getopt int
	for i, fn := range h.funcs {
		if fn.name == "sock_getsockopt" {
			getopt = i
		}
	}
	le := binary.LittleEndian
	f.Fuzz(func(t *testing.T, src, name, buf, lenPtr, length, dst, max uint32) {
		seedMemory(h.mem)
		le.PutUint32(mustRead(h.mem, spliceLen, 4), length)
		le.PutUint32(mustRead(h.mem, spliceBuf, 4), dst)
		le.PutUint32(mustRead(h.mem, spliceBuf+4, 4), max)
		h.call(t, getopt, []uint64{uint64(src), solWasmgate, uint64(name), uint64(buf), uint64(lenPtr)})
	})
}
