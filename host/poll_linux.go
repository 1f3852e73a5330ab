package host

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// waker lets another goroutine interrupt an instance blocked in ppoll: it
// is an eventfd that, once signalled, stays readable, because cancellation
// of an instance is final.
type waker struct {
	once  sync.Once
	fd    int
	fired atomic.Bool
}

func newWaker() (*waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return &waker{fd: fd}, nil
}

// wake makes every current and future wait return ECANCELED.
func (w *waker) wake() {
	w.once.Do(func() {
		w.fired.Store(true)
		var one = [8]byte{1}
		_, _ = unix.Write(w.fd, one[:])
	})
}

func (w *waker) close() { _ = unix.Close(w.fd) }

// pollEvents are the readiness conditions of waitFds, in poll(2) terms.
const (
	pollIn   = unix.POLLIN
	pollOut  = unix.POLLOUT
	pollErr  = unix.POLLERR
	pollHup  = unix.POLLHUP
	pollNval = unix.POLLNVAL
)

// pollReq is one fd to wait on; revents is filled in by waitFds.
type pollReq struct {
	fd      int
	events  int16
	revents int16
}

// waitFds waits until one of reqs is ready, timeout passes (timeout < 0
// waits forever) or the waker fires (wasi.ECANCELED). It returns the number
// of ready fds, 0 on timeout. The timeout has nanosecond resolution
// (ppoll(2)), and EINTR is retried with the remaining time.
func (w *waker) waitFds(reqs []pollReq, timeout time.Duration) (int, error) {
	if len(reqs) == 0 && timeout == 0 {
		// A pure probe (Go's netpoll(0) with nothing armed): no syscall.
		if w.fired.Load() {
			return 0, wasi.ECANCELED
		}
		return 0, nil
	}
	var stack [8]unix.PollFd
	pfds := stack[:0]
	if len(reqs)+1 > len(stack) {
		pfds = make([]unix.PollFd, 0, len(reqs)+1)
	}
	pfds = append(pfds, unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN})
	for _, r := range reqs {
		pfds = append(pfds, unix.PollFd{Fd: int32(r.fd), Events: r.events})
	}
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		var ts *unix.Timespec
		if timeout >= 0 {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			t := unix.NsecToTimespec(int64(left))
			ts = &t
		}
		n, err := unix.Ppoll(pfds, ts, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if pfds[0].Revents != 0 {
			return 0, wasi.ECANCELED
		}
		for i := range reqs {
			reqs[i].revents = pfds[i+1].Revents
		}
		return n, nil
	}
}

// fdReadable reports whether fd has data (or EOF/error) right now, without
// blocking.
func fdReadable(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(p, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}
