package host

import (
	"context"
	"encoding/binary"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmgate/wasmgate/host/internal/sockabi"
	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/network"
)

// The wasmgate splice extension (docs/sockets.md, "Splice"): a guest asks
// the host to move bytes from one of its TCP sockets to another (or to the
// same one, an echo) without the bytes passing through its memory. It is
// an "ioctl" through sock_getsockopt with a private level rather than a new
// import, because a module importing a function that a host lacks fails to
// instantiate: with getsockopt, a host without the extension (WasmEdge, an
// older wasmgate) just returns an errno (EINVAL for the unknown level), and
// the guest copies as before.
//
//	sock_getsockopt(src_fd, level=0x7767, name=1, buf, len_ptr), *len_ptr == 16
//	in:  buf[0:4] u32 dst_fd, buf[4:8] u32 max bytes (0 = default), buf[8:16] ignored
//	out: buf[0:8] u64 bytes written to dst, buf[8:12] u32 state, buf[12:16] 0
//
// state is a network.SpliceState. The call never blocks, whatever the fd's
// blocking mode: the guest waits for readiness with poll_oneoff (its
// netpoller), which also keeps it cancellable.
const (
	solWasmgate   = 0x7767 // "wg"
	wgSplice      = 1
	spliceArgSize = 16
)

// sockSplice is sock_getsockopt at level solWasmgate. Errors: EINVAL for
// an unknown name or a length other than 16 (the by-value length 4
// included), EFAULT for a bad pointer, EBADF/ENOTSOCK for a bad source or
// destination fd, ENOTSUP when the pair cannot be spliced (not both TCP,
// or a network without splice: the guest copies), and the errors of the
// connections themselves (ECONNRESET, EPIPE, ENOTCONN...).
func (s *state) sockSplice(ctx context.Context, m api.Memory, p []uint64) error {
	if u32(p[2]) != wgSplice {
		return wasi.EINVAL
	}
	_, src, err := s.socketAt(u32(p[0]))
	if err != nil {
		return err
	}
	if u32(p[4]) == 4 {
		// The by-value form can only say 4 bytes.
		return wasi.EINVAL
	}
	l, lenPtr, _, err := sockabi.GetsockoptLen(m, u32(p[4]))
	if err != nil {
		return err
	}
	if l != spliceArgSize {
		return wasi.EINVAL
	}
	buf, err := sockabi.Span(m, u32(p[3]), spliceArgSize)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	_, dst, err := s.socketAt(le.Uint32(buf[0:4]))
	if err != nil {
		return err
	}
	max := int(le.Uint32(buf[4:8]))
	if src.sock.Proto() != network.TCP || dst.sock.Proto() != network.TCP {
		return wasi.ENOTSUP
	}
	sp, ok := src.sock.(network.Splicer)
	if !ok {
		return wasi.ENOTSUP
	}
	n, state, err := sp.Splice(ctx, dst.sock, max)
	if err != nil {
		return err
	}
	// buf is a view of guest memory, still valid: nothing in between can
	// grow (and so move) it.
	le.PutUint64(buf[0:8], uint64(n))
	le.PutUint32(buf[8:12], uint32(state))
	le.PutUint32(buf[12:16], 0)
	return sockabi.WriteU32(m, lenPtr, spliceArgSize)
}
