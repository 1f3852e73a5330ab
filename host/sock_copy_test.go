package host

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/network"
)

// Tests of sdk/socket's copy path (ReadFrom/WriteTo with pooled,
// adaptively sized buffers) end to end through the host.

// patternBytes returns n bytes of the probe's pattern starting at offset
// off: byte((off+i) % 251).
func patternBytes(off, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off + int64(i)) % 251)
	}
	return b
}

// TestSockGuestCopyEcho: io.Copy(c, c) in the guest (the connection's
// WriteTo) echoes bulk data, trickles and bulk again intact, and returns
// the byte count with a nil error at the peer's half-close.
func TestSockGuestCopyEcho(t *testing.T) {
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	g := startGuest(t, probeWasm(t), NewConfig().WithNetwork(nw), "echoonce", "127.0.0.1:0")
	addr := strings.TrimPrefix(g.out.wait(t, "[0] listening ", 60*time.Second), "[0] listening ")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Bulk (reads fill the small buffer: the copy switches to the large
	// one), a trickle of small writes (back to the small one), bulk again.
	var want bytes.Buffer
	var chunks [][]byte
	add := func(n int) {
		b := patternBytes(int64(want.Len()), int64(n))
		want.Write(b)
		chunks = append(chunks, b)
	}
	add(3 << 20)
	for i := 0; i < 20; i++ {
		add(1000 + i)
	}
	add(2<<20 + 12345)
	werr := make(chan error, 1)
	go func() {
		for i, b := range chunks {
			if _, err := c.Write(b); err != nil {
				werr <- err
				return
			}
			if len(b) < 4096 && i%4 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		werr <- c.(*net.TCPConn).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v (%d bytes)", err, len(got))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		i := 0
		for i < len(got) && i < want.Len() && got[i] == want.Bytes()[i] {
			i++
		}
		t.Fatalf("echo differs from what was sent: got %d bytes, want %d, first difference at %d", len(got), want.Len(), i)
	}
	line := g.out.wait(t, "[0] copied ", 30*time.Second)
	if wantLine := fmt.Sprintf("[0] copied %d <nil>", want.Len()); line != wantLine {
		t.Fatalf("guest io.Copy: %q, want %q", line, wantLine)
	}
}

// TestSockGuestCopyReadFrom: io.Copy(conn, reader) in the guest with a
// reader that has no WriteTo goes through the connection's ReadFrom; every
// byte arrives in order and io.Copy reports the count with a nil error.
func TestSockGuestCopyReadFrom(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n = 5<<20 + 777
	type result struct {
		b   []byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		b, err := io.ReadAll(c)
		res <- result{b, err}
	}()
	nw := &network.Default{Policy: network.PolicyFunc(allowLoopback)}
	out, code := runGuest(t, probeWasm(t), NewConfig().WithNetwork(nw), "sendpattern", ln.Addr().String(), fmt.Sprint(n))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if want := fmt.Sprintf("[0] sent %d <nil>", n); !strings.Contains(out, want) {
		t.Fatalf("guest output lacks %q:\n%s", want, out)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(r.b, patternBytes(0, n)) {
		t.Fatalf("received %d bytes that differ from the %d-byte pattern", len(r.b), n)
	}
}
