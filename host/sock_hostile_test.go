package host

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/wasmgate/wasmgate/network"
)

// iovbombWasm builds testdata/sockguests/iovbomb once per test binary.
var iovbombWasm = sync.OnceValue(func() func(t testing.TB) []byte {
	var (
		once sync.Once
		wasm []byte
	)
	return func(t testing.TB) []byte {
		t.Helper()
		once.Do(func() { wasm = cGuest(t, "iovbomb") })
		if wasm == nil {
			t.Fatal("iovbomb guest was not built")
		}
		return wasm
	}
})

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
	wasm := iovbombWasm()(t)
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
