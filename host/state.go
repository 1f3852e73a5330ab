package host

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/network"
)

// state is everything one guest instance owns on the host side: its fd
// table, its network, and the waker that interrupts its waits. Host
// functions find it through their closure (one host module per instance).
type state struct {
	cfg  *Config
	fds  fdTable
	net  network.Network
	wake *waker

	p1   []hostFunc   // this instance's preview 1 bodies (bindHostFunctions)
	sock []sockExport // this instance's socket bodies

	args, env []string // as NUL-free strings; sizes computed on demand

	exitMu   sync.Mutex
	exitCode *uint32

	start time.Time // origin of the monotonic clock

	// Scratch buffers reused across host calls. The guest is
	// single-threaded and host functions run on its goroutine, so they
	// are never used concurrently.
	iov      [16][]byte
	pollReqs []pollReq
}

// waitFd waits until host fd is ready for events (pollIn / pollOut), the
// instance is cancelled (wasi.ECANCELED) or timeout passes (timeout < 0:
// forever). It reports whether the fd became ready.
func (s *state) waitFd(fd int, events int16, timeout time.Duration) (bool, error) {
	req := [1]pollReq{{fd: fd, events: events}}
	n, err := s.wake.waitFds(req[:], timeout)
	return n > 0, err
}

// blockingIO runs op; if it fails with EAGAIN while the guest fd is in
// blocking mode and the entry has a host fd, it waits for events and tries
// again. This is how blocking guest fds are emulated on non-blocking host
// fds (see fdtable.go).
func (s *state) blockingIO(ctx context.Context, e *fdEntry, events int16, op func() (int, error)) (int, error) {
	for {
		n, err := op()
		if err == nil || e.nonblock() || !isEAGAIN(err) {
			return n, err
		}
		if w, ok := network.ThrottleWait(err); ok {
			// Held back by send_rate / recv_rate: sleep until the
			// tokens are there (cancellably), then try again; the
			// fd may well be ready meanwhile (docs/sockets.md#quotas).
			if _, werr := s.wake.waitFds(nil, w); werr != nil {
				exitIfDone(ctx)
				return 0, werr
			}
			continue
		}
		fd, ok := e.file.pollFd()
		if !ok {
			return n, err
		}
		if _, werr := s.waitFd(fd, events, -1); werr != nil {
			exitIfDone(ctx)
			return 0, werr
		}
	}
}

func isEAGAIN(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, wasi.EAGAIN)
}

// exitIfDone ends the guest's _start with wazero's exit code for a
// cancelled or timed-out context, when ctx is done: a wait that the
// cancellation interrupted must not return to the guest, which would only
// retry (see stopIfDone, which also closes the module).
func exitIfDone(ctx context.Context) {
	err := ctx.Err()
	if err == nil {
		return
	}
	code := sys.ExitCodeContextCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		code = sys.ExitCodeDeadlineExceeded
	}
	panic(sys.NewExitError(code))
}
