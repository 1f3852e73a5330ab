//go:build !linux

package host

import (
	"sync"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// waker on platforms without ppoll/eventfd: waits are not supported, so a
// guest that must wait for an fd gets ENOSYS, and only clock waits work.
type waker struct {
	once sync.Once
	ch   chan struct{}
}

func newWaker() (*waker, error) { return &waker{ch: make(chan struct{})}, nil }

func (w *waker) wake()  { w.once.Do(func() { close(w.ch) }) }
func (w *waker) close() {}

const (
	pollIn   = 0x1
	pollOut  = 0x4
	pollErr  = 0x8
	pollHup  = 0x10
	pollNval = 0x20
)

type pollReq struct {
	fd      int
	events  int16
	revents int16
}

func (w *waker) waitFds(reqs []pollReq, timeout time.Duration) (int, error) {
	if len(reqs) > 0 {
		return 0, syscall.ENOSYS
	}
	if timeout < 0 {
		<-w.ch
		return 0, wasi.ECANCELED
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.ch:
		return 0, wasi.ECANCELED
	case <-t.C:
		return 0, nil
	}
}

func fdReadable(int) bool { return true }
