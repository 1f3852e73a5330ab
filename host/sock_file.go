package host

import (
	"context"
	"net/netip"
	"sync"
	"syscall"

	"github.com/wasmgate/wasmgate/host/internal/dnsstub"
	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/network"
)

// socketFile is the fd-table entry of a socket: a network.Socket plus the
// in-process DNS stub's state. Every operation goes through the Socket (and
// so through the configured network.Network and its policy); the host makes
// no socket syscall itself.
type socketFile struct {
	baseFile
	sock network.Socket
	stub *dnsstub.Server // nil: no DNS stub interception

	mu sync.Mutex
	// stubPeer: a datagram socket "connected" to the stub's virtual
	// address. Such a socket never talks to the network: fd_write/sock_send
	// queries are answered in-process into answers.
	stubPeer bool
	answers  [][]byte // pending stub answers, oldest first
}

func (f *socketFile) filetype() wasi.Filetype {
	if f.sock.Proto() == network.UDP {
		return wasi.FiletypeSocketDgram
	}
	return wasi.FiletypeSocketStream
}

func (f *socketFile) stat() (filestat, error) { return filestat{filetype: f.filetype()}, nil }

// pollFd is the socket's host fd, except while stub answers are queued:
// then the entry is ready without asking the kernel.
func (f *socketFile) pollFd() (int, bool) {
	f.mu.Lock()
	queued := len(f.answers) > 0
	f.mu.Unlock()
	if queued {
		return -1, false
	}
	fd := f.sock.Fd()
	return fd, fd >= 0
}

func (f *socketFile) close() error { return f.sock.Close() }

// read is fd_read: a stream read, or one datagram.
func (f *socketFile) read(ctx context.Context, bufs [][]byte) (int, error) {
	n, _, _, err := f.recv(ctx, bufs, 0)
	return n, err
}

// write is fd_write.
func (f *socketFile) write(ctx context.Context, bufs [][]byte) (int, error) {
	return f.send(ctx, bufs, netip.AddrPort{})
}

// isStub reports whether to is the DNS stub's address.
func (f *socketFile) isStub(to netip.AddrPort) bool {
	return f.stub != nil && f.sock.Proto() == network.UDP &&
		to.Port() == dnsstub.Addr.Port() && to.Addr().Unmap() == dnsstub.Addr.Addr()
}

func (f *socketFile) connectedToStub() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stubPeer
}

// recv reads from the stub queue first, then from the socket.
func (f *socketFile) recv(ctx context.Context, bufs [][]byte, flags network.RecvFlags) (int, netip.AddrPort, network.RecvResult, error) {
	f.mu.Lock()
	if len(f.answers) > 0 {
		msg := f.answers[0]
		if flags&network.RecvPeek == 0 {
			f.answers[0] = nil
			f.answers = f.answers[1:]
		}
		f.mu.Unlock()
		n := 0
		for _, b := range bufs {
			n += copy(b, msg[n:])
		}
		var res network.RecvResult
		if n < len(msg) {
			res = network.RecvTruncated
		}
		return n, dnsstub.Addr, res, nil
	}
	stubPeer := f.stubPeer
	f.mu.Unlock()
	if stubPeer {
		// Nothing else can arrive on a socket connected to the stub.
		return 0, netip.AddrPort{}, 0, syscall.EAGAIN
	}
	return f.sock.Recv(ctx, bufs, flags)
}

// maxStubQueue bounds the answers a guest can leave unread.
const maxStubQueue = 64

// maxStubQuery is the largest query the stub accepts: a UDP datagram's
// payload can be no larger. Above it, send fails with EMSGSIZE.
const maxStubQuery = 65535

// send sends bufs to the connected peer (to zero) or to to. Queries for the
// DNS stub are answered synchronously and queued for recv.
func (f *socketFile) send(ctx context.Context, bufs [][]byte, to netip.AddrPort) (int, error) {
	stub := false
	if to.IsValid() {
		stub = f.isStub(to)
	} else {
		stub = f.connectedToStub()
	}
	if !stub {
		return f.sock.Send(ctx, bufs, to, 0)
	}
	// The size is checked before a byte is copied: iovecs may all point
	// at the same guest buffer, so their total can be far larger than
	// guest memory (docs/sockets.md, "Limits on guest data").
	total := 0
	for _, b := range bufs {
		total += len(b)
		if total > maxStubQuery {
			return 0, syscall.EMSGSIZE
		}
	}
	q := make([]byte, 0, total)
	for _, b := range bufs {
		q = append(q, b...)
	}
	ans := f.stub.Answer(ctx, q)
	f.mu.Lock()
	if ans != nil && len(f.answers) < maxStubQueue {
		f.answers = append(f.answers, ans)
	}
	f.mu.Unlock()
	return len(q), nil
}
