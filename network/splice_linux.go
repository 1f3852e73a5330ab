//go:build linux

package network

import (
	"context"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// splicePipe is the pipe through which a System socket splices to another
// socket: splice(2) moves data between a socket and a pipe only, so a
// socket-to-socket splice is two of them. The pipe belongs to the source
// socket, and so do the bytes pending in it (read from the source, not yet
// written anywhere): the next Splice writes them first and the next Recv
// returns them first. It lives until the source reaches end of stream or is
// closed.
type splicePipe struct {
	r, w    int
	size    int   // capacity: how much one splice from the source may move
	pending int   // bytes in the pipe
	err     error // a source error met after progress, reported next
}

// splicePipeSize is the capacity asked for (what Go's own splice uses): one
// call moves up to this much per pair of syscalls. The kernel may refuse
// it (the per-user pipe memory limit), and the default 64 KiB then serves.
const splicePipeSize = 1 << 20

func newSplicePipe() (*splicePipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	p := &splicePipe{r: fds[0], w: fds[1], size: 64 << 10}
	if n, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, splicePipeSize); err == nil && n > 0 {
		p.size = n
	} else if n, err := unix.FcntlInt(uintptr(p.w), unix.F_GETPIPE_SZ, 0); err == nil && n > 0 {
		p.size = n
	}
	return p, nil
}

func (p *splicePipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// spliceFlags: never block on the pipe (the sockets are non-blocking
// themselves); MOVE is a hint the kernel may ignore.
const spliceFlags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE

func splice(from, to, n int) (int, error) {
	for {
		m, err := unix.Splice(from, nil, to, nil, n, spliceFlags)
		if err != syscall.EINTR {
			return int(m), err
		}
	}
}

// Splice implements Splicer with splice(2) through the source's pipe (see
// Splicer for the contract). dst must be a System stream socket too.
func (s *systemSocket) Splice(ctx context.Context, dst Socket, max int) (int64, SpliceState, error) {
	d, ok := dst.(*systemSocket)
	if !ok || s.proto != TCP || d.proto != TCP {
		return 0, 0, opErr("splice", s.proto, netip.AddrPort{}, ErrSpliceUnsupported)
	}
	max = spliceMax(max)
	// Lock order: the source's splice lock, then the descriptors' read
	// locks (the source's first). Close takes the splice lock before its
	// descriptor lock, so it waits for a running Splice (which never
	// blocks) instead of deadlocking with it. An echo (d == s) must not
	// read-lock s.mu twice: a Close waiting in between would deadlock.
	s.spMu.Lock()
	defer s.spMu.Unlock()
	var (
		n     int64
		state SpliceState
	)
	err := s.with(func(sfd int) error {
		if d == s {
			var err error
			n, state, err = s.spliceFds(sfd, sfd, max)
			return err
		}
		return d.with(func(dfd int) error {
			var err error
			n, state, err = s.spliceFds(sfd, dfd, max)
			return err
		})
	})
	if err != nil {
		return 0, 0, opErr("splice", s.proto, netip.AddrPort{}, err)
	}
	return n, state, nil
}

// spliceFds is one Splice call on open descriptors, with spMu held.
func (s *systemSocket) spliceFds(sfd, dfd, max int) (int64, SpliceState, error) {
	p := s.pipe
	if p != nil && p.err != nil {
		err := p.err
		p.err = nil
		return 0, 0, err
	}
	if p == nil {
		var err error
		if p, err = newSplicePipe(); err != nil {
			return 0, 0, err
		}
		s.pipe = p
		s.hasPipe.Store(true)
	}
	total := 0
	for total < max {
		if p.pending > 0 {
			n, err := splice(p.r, dfd, p.pending)
			if n > 0 {
				p.pending -= n
				total += n
			}
			switch {
			case err == syscall.EAGAIN:
				return int64(total), SpliceDstBlocked, nil
			case err != nil && total > 0:
				// The destination failed: report the progress now;
				// the next call meets the (lasting) error again.
				return int64(total), SpliceProgress, nil
			case err != nil:
				return 0, 0, err
			}
			continue
		}
		n, err := splice(sfd, p.w, min(max-total, p.size))
		switch {
		case err == syscall.EAGAIN:
			return int64(total), SpliceSrcBlocked, nil
		case err != nil && total > 0:
			// A reset is reported by the kernel once; keep it for
			// the next call (or Recv) rather than lose it.
			p.err = err
			return int64(total), SpliceProgress, nil
		case err != nil:
			return 0, 0, err
		case n == 0:
			// End of stream and the pipe is empty: nothing more
			// will ever come through it.
			s.freePipe()
			return int64(total), SpliceEOF, nil
		}
		p.pending += n
	}
	return int64(total), SpliceProgress, nil
}

// freePipe closes the pipe, with spMu held. Bytes still in it are lost:
// only Close calls it while any are pending.
func (s *systemSocket) freePipe() {
	if s.pipe != nil {
		s.pipe.close()
		s.pipe = nil
		s.hasPipe.Store(false)
	}
}

// recvPending serves a Recv from what a Splice left behind: the bytes
// pending in the pipe (peeked through a temporary pipe with tee(2) for
// RecvPeek), then a source error the Splice kept. ok is false when there
// is nothing of the kind and the socket itself should be read.
func (s *systemSocket) recvPending(bufs [][]byte, flags RecvFlags) (n int, ok bool, err error) {
	s.spMu.Lock()
	defer s.spMu.Unlock()
	p := s.pipe
	switch {
	case p == nil:
		return 0, false, nil
	case p.pending == 0 && p.err != nil:
		err, p.err = p.err, nil
		return 0, true, err
	case p.pending == 0:
		return 0, false, nil
	}
	if s.closed() {
		return 0, true, syscall.EBADF
	}
	if flags&RecvPeek == 0 {
		n, err := readvIgnoringEINTR(p.r, bufs)
		if n > 0 {
			p.pending -= n
		}
		return n, true, err
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return 0, true, err
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	for {
		m, err := unix.Tee(p.r, fds[1], p.pending, unix.SPLICE_F_NONBLOCK)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, true, err
		}
		if m == 0 {
			return 0, true, syscall.EAGAIN
		}
		break
	}
	n, err = readvIgnoringEINTR(fds[0], bufs)
	return n, true, err
}

func readvIgnoringEINTR(fd int, bufs [][]byte) (int, error) {
	for {
		n, err := unix.Readv(fd, bufs)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// closed reports whether Close has run.
func (s *systemSocket) closed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fd < 0
}
