package network

import (
	"context"
	"syscall"
)

// Splicer is implemented by stream sockets that can move bytes to another
// socket of the same Network without handing them to the caller: on Linux,
// System sockets splice(2) through a pipe, so the bytes never leave the
// kernel. It exists because a guest that copies one connection into
// another (io.Copy in an echo server or a proxy) would otherwise pull every
// byte into wasm memory and push it back out, which costs several times the
// CPU of a native splice; the host offers the guest this operation instead
// (docs/sockets.md, "splice").
//
// Splice is optional: callers test for it with a type assertion, and a
// Socket that does not implement it (or an implementation that cannot
// splice to this particular dst) means the caller copies instead.
type Splicer interface {
	// Splice moves up to max bytes (max <= 0 means DefaultSpliceMax;
	// larger than MaxSpliceMax is clamped) from this socket to dst, which
	// may be this very socket (an echo), without blocking. It returns the
	// number of bytes written to dst in this call and why it stopped:
	//
	//   - SpliceProgress: max bytes were written; call again;
	//   - SpliceSrcBlocked: the source has nothing to read right now and
	//     nothing is pending; wait until it is readable;
	//   - SpliceDstBlocked: dst cannot take more right now; bytes already
	//     read from the source may be pending inside the socket; wait until
	//     dst is writable and call again, which writes them first;
	//   - SpliceEOF: the source reached end of stream and nothing is
	//     pending.
	//
	// Bytes read from the source but not yet written stay the source's:
	// the next Splice (to any dst) writes them first, and the next Recv
	// returns them before anything else, so abandoning a splice never
	// loses or reorders data. Close frees them.
	//
	// An error means nothing was written in this call. A source error met
	// after some bytes were written is reported by the next Splice or Recv
	// instead, so that the count is never lost. A pair that cannot be
	// spliced (a datagram socket, a dst of another Network) fails with
	// ErrSpliceUnsupported (errors.Is), which tells the caller to copy.
	Splice(ctx context.Context, dst Socket, max int) (n int64, state SpliceState, err error)
}

// SpliceState says why a Splice call stopped. The values are the ones of
// the guest ABI (docs/sockets.md).
type SpliceState uint32

// Splice states.
const (
	SpliceProgress   SpliceState = 0
	SpliceSrcBlocked SpliceState = 1
	SpliceDstBlocked SpliceState = 2
	SpliceEOF        SpliceState = 3
)

// Bounds of one Splice call: a call never blocks, and the bound keeps the
// time it spends in the kernel short, so that a guest splicing a fast
// stream cannot starve its other goroutines (or its own cancellation).
const (
	DefaultSpliceMax = 1 << 20
	MaxSpliceMax     = 4 << 20
)

// ErrSpliceUnsupported is the error (an errno, so the guest sees ENOTSUP)
// of a Splice between sockets that cannot be spliced: the caller copies
// instead.
const ErrSpliceUnsupported = syscall.EOPNOTSUPP

// spliceMax applies the defaults and bounds of a Splice call's max.
func spliceMax(max int) int {
	switch {
	case max <= 0:
		return DefaultSpliceMax
	case max > MaxSpliceMax:
		return MaxSpliceMax
	}
	return max
}

// Splice splices from this socket to dst when both are stream sockets of
// the same Default and the base Network's socket implements Splicer (see
// there). Stream data is not a policy decision (the connections were
// decided at connect or accept), so there is nothing to decide here; what
// matters is that dst is one of this guest's own sockets, never a socket
// the guest has no handle on. Anything else fails with
// ErrSpliceUnsupported.
func (g *guardedSocket) Splice(ctx context.Context, dst Socket, max int) (int64, SpliceState, error) {
	d, ok := dst.(*guardedSocket)
	if !ok || d.d != g.d || g.proto != TCP || d.proto != TCP {
		return 0, 0, &OpError{Op: "splice", Net: g.proto.String(), Err: ErrSpliceUnsupported}
	}
	sp, ok := g.s.(Splicer)
	if q := g.d.quota.Load(); q != nil && q.bytes {
		// Byte quotas meter what passes through the guest's
		// buffers; with any of them the guest copies (quota.go).
		ok = false
	}
	if !ok {
		return 0, 0, &OpError{Op: "splice", Net: g.proto.String(), Err: ErrSpliceUnsupported}
	}
	if err := g.revokedErr("splice"); err != nil {
		return 0, 0, err
	}
	if err := d.revokedErr("splice"); err != nil {
		return 0, 0, err
	}
	n, st, err := sp.Splice(ctx, d.s, max)
	if n > 0 {
		g.d.bytesIn.Add(uint64(n))
		g.d.bytesOut.Add(uint64(n))
	}
	if n == 0 && (err != nil || st == SpliceEOF) {
		// A revocation racing with this call.
		if rerr := g.revokedErr("splice"); rerr != nil {
			return 0, 0, rerr
		}
		if rerr := d.revokedErr("splice"); rerr != nil {
			return 0, 0, rerr
		}
	}
	return n, st, err
}
