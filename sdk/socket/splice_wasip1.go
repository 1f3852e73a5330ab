//go:build wasip1

package socket

import (
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Host-side splice (docs/sockets.md, "Splice"): when both ends of a copy
// are connections of this package, the host moves the bytes from one
// socket to the other in its kernel (splice(2) on Linux) and the guest
// only waits for readiness. An echo or a proxy then costs a host call per
// burst instead of two copies of every byte through wasm memory.
//
// It is a wasmgate extension that keeps the program portable: the request
// goes through sock_getsockopt with a private level, which every host
// imports, so a host without the extension (WasmEdge, an older wasmgate)
// answers with an errno and the copy falls back to pooledCopy. The first
// such answer is remembered for the rest of the process.
//
//	sock_getsockopt(src, 0x7767, 1, buf, &len) with len == 16
//	in:  buf[0:4] dst fd, buf[4:8] max bytes (0: the host's default)
//	out: buf[0:8] bytes written, buf[8:12] state
const (
	solWasmgate   = 0x7767
	wgSplice      = 1
	spliceArgSize = 16
)

// Splice states (out buf[8:12]).
const (
	spliceProgress   = 0 // max reached: call again
	spliceSrcBlocked = 1 // wait for the source to be readable
	spliceDstBlocked = 2 // wait for the destination to be writable
	spliceEOF        = 3 // the source ended and nothing is pending
)

// maxSpliceCall bounds what one call may move when the copy has a limit
// larger than that (the host clamps anyway).
const maxSpliceCall = 1 << 20

// spliceSupport is what this process knows about the host: unknown until
// the first splice call answers.
var spliceSupport atomic.Int32

const (
	spliceUnknown int32 = iota
	spliceYes
	spliceNo
)

// spliceArgs is the call's buffer and its length word. The length is
// passed to the host as a plain integer (its wasm32 address), invisible to
// the garbage collector, so both live in one heap object that the caller
// keeps alive across the call.
type spliceArgs struct {
	buf [spliceArgSize]byte
	len uint32
}

// call asks the host to splice from src to dst, at most max bytes.
func (a *spliceArgs) call(src, dst int, max uint32) (n int64, state uint32, errno syscall.Errno) {
	le := binary.LittleEndian
	le.PutUint32(a.buf[0:4], uint32(dst))
	le.PutUint32(a.buf[4:8], max)
	clear(a.buf[8:])
	a.len = spliceArgSize
	e := sock_getsockopt(int32(src), solWasmgate, wgSplice, unsafe.Pointer(&a.buf[0]), ptr32(unsafe.Pointer(&a.len)))
	runtime.KeepAlive(a)
	if e != 0 {
		return 0, 0, syscall.Errno(e)
	}
	return int64(le.Uint64(a.buf[0:8])), le.Uint32(a.buf[8:12]), 0
}

// fallbackErrno reports whether a failed first call means "copy instead"
// (nothing has moved then), and whether it means the host has no splice at
// all: an unknown level is EINVAL in WasmEdge and wasmgate before the
// extension, ENOPROTOOPT or ENOSYS elsewhere; ENOTSUP is this host saying
// that this pair cannot be spliced (a network without splice).
func fallbackErrno(e syscall.Errno) (fallback, noHost bool) {
	switch e {
	case syscall.EINVAL, syscall.ENOPROTOOPT, syscall.ENOSYS:
		return true, true
	case syscall.ENOTSUP:
		return true, false
	}
	return false, false
}

// spliceCopy copies from src to dst through the host's splice, at most
// limit bytes (limit < 0: until the end of src), like io.Copy: the end of
// src is not an error. handled is false when the host cannot splice this
// pair and nothing was copied: the caller copies instead.
//
// Locks and waits are those of a copy done with Read and Write: dst's
// write lock is held throughout, src's read lock while reading (the same
// nesting as Go's own splice), and every wait goes through the runtime's
// netpoller with the connections' deadlines.
func spliceCopy(dst, src *tcpConn, limit int64, op string) (written int64, handled bool, err error) {
	if limit == 0 {
		return 0, true, nil
	}
	if spliceSupport.Load() == spliceNo {
		return 0, false, nil
	}
	j := newSpliceJob(dst, src, limit)
	if j == nil {
		return 0, false, nil
	}
	for {
		werr := j.drc.Write(j.writeFunc)
		if werr != nil || !j.handled || j.callErr != nil || j.limit == 0 || j.state != spliceSrcBlocked {
			return j.finish(werr, op)
		}
		// The source is empty: wait for it here, outside dst's write
		// lock, where the stack is shallow (a new goroutine's 2 KiB).
		j.waited = false
		if rerr := j.srcRC.Read(j.waitFunc); rerr != nil {
			return j.finish(rerr, op)
		}
	}
}

// spliceJob is the state of one spliceCopy, on the heap so that the
// callbacks' frames stay small.
type spliceJob struct {
	spliceArgs
	dst                           *tcpConn
	drc, srcRC                    syscall.RawConn
	limit, written                int64
	handled, first                bool
	waited                        bool
	callErr                       error
	dfd                           uintptr
	state                         uint32
	readFunc, waitFunc, writeFunc func(uintptr) bool
}

//go:noinline
func newSpliceJob(dst, src *tcpConn, limit int64) *spliceJob {
	drc, err := dst.TCPConn.SyscallConn()
	if err != nil {
		return nil
	}
	srcRC, err := src.TCPConn.SyscallConn()
	if err != nil {
		return nil
	}
	j := &spliceJob{dst: dst, drc: drc, srcRC: srcRC, limit: limit, handled: true, first: true}
	j.readFunc = func(sfd uintptr) bool { return j.readStep(sfd) }
	j.waitFunc = j.waitStep
	j.writeFunc = func(dfd uintptr) bool { return j.writeStep(dfd) }
	return j
}

// waitStep makes srcRC.Read wait once for readability.
func (j *spliceJob) waitStep(uintptr) bool {
	if j.waited {
		return true
	}
	j.waited = true
	return false
}

func (j *spliceJob) finish(werr error, op string) (int64, bool, error) {
	if !j.handled {
		return 0, false, nil
	}
	callErr := j.callErr
	if callErr == nil {
		callErr = werr
	}
	if callErr != nil {
		if _, ok := callErr.(*net.OpError); !ok {
			callErr = &net.OpError{Op: op, Net: "tcp", Source: j.dst.LocalAddr(), Addr: j.dst.RemoteAddr(), Err: callErr}
		}
	}
	return j.written, true, callErr
}

// writeStep runs under dst's write lock: it splices until the source is
// empty (returns, to wait outside), dst is full (waits here), or the end.
func (j *spliceJob) writeStep(dfd uintptr) bool {
	j.dfd = dfd
	for {
		if j.limit == 0 {
			return true
		}
		j.state = 0
		if rerr := j.srcRC.Read(j.readFunc); rerr != nil {
			j.callErr = rerr
			return true
		}
		if !j.handled || j.callErr != nil {
			return true
		}
		switch j.state {
		case spliceEOF:
			j.limit = 0
			return true
		case spliceSrcBlocked:
			return true
		case spliceDstBlocked:
			return false
		}
	}
}

// readStep runs under src's read lock and never waits there.
func (j *spliceJob) readStep(sfd uintptr) bool {
	want := uint32(0)
	if j.limit > 0 {
		want = uint32(min(j.limit, maxSpliceCall))
	}
	n, st, e := j.spliceArgs.call(int(sfd), int(j.dfd), want)
	if e != 0 {
		if fb, noHost := fallbackErrno(e); j.first && fb {
			if noHost && spliceSupport.Load() == spliceUnknown {
				spliceSupport.Store(spliceNo)
			}
			j.handled = false
			return true
		}
		j.callErr = os.NewSyscallError("splice", e)
		return true
	}
	if st > spliceEOF || (st == spliceProgress && n == 0) {
		// Not an answer a host may give: stop rather than spin.
		j.callErr = os.NewSyscallError("splice", syscall.EIO)
		return true
	}
	if j.first {
		j.first = false
		if spliceSupport.Load() == spliceUnknown {
			spliceSupport.Store(spliceYes)
		}
	}
	j.written += n
	if j.limit > 0 {
		j.limit = max(j.limit-n, 0)
	}
	j.state = st
	return true
}
