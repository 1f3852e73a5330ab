// Package wasi holds the WASI preview 1 ABI constants of the host and the
// one place where Go errors become WASI errnos.
package wasi

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/wasmgate/wasmgate/network"
)

// Errno is a WASI preview 1 errno. Its numbering is WASI's own and differs
// from Linux's (for example EAGAIN is 6 here and 11 on Linux).
type Errno uint16

// WASI preview 1 errnos, in spec order.
const (
	ESUCCESS Errno = iota
	E2BIG
	EACCES
	EADDRINUSE
	EADDRNOTAVAIL
	EAFNOSUPPORT
	EAGAIN
	EALREADY
	EBADF
	EBADMSG
	EBUSY
	ECANCELED
	ECHILD
	ECONNABORTED
	ECONNREFUSED
	ECONNRESET
	EDEADLK
	EDESTADDRREQ
	EDOM
	EDQUOT
	EEXIST
	EFAULT
	EFBIG
	EHOSTUNREACH
	EIDRM
	EILSEQ
	EINPROGRESS
	EINTR
	EINVAL
	EIO
	EISCONN
	EISDIR
	ELOOP
	EMFILE
	EMLINK
	EMSGSIZE
	EMULTIHOP
	ENAMETOOLONG
	ENETDOWN
	ENETRESET
	ENETUNREACH
	ENFILE
	ENOBUFS
	ENODEV
	ENOENT
	ENOEXEC
	ENOLCK
	ENOLINK
	ENOMEM
	ENOMSG
	ENOPROTOOPT
	ENOSPC
	ENOSYS
	ENOTCONN
	ENOTDIR
	ENOTEMPTY
	ENOTRECOVERABLE
	ENOTSOCK
	ENOTSUP
	ENOTTY
	ENXIO
	EOVERFLOW
	EOWNERDEAD
	EPERM
	EPIPE
	EPROTO
	EPROTONOSUPPORT
	EPROTOTYPE
	ERANGE
	EROFS
	ESPIPE
	ESRCH
	ESTALE
	ETIMEDOUT
	ETXTBSY
	EXDEV
	ENOTCAPABLE
)

// Error makes an Errno usable as a Go error, so that host code can return
// a WASI errno directly through error-returning internal APIs.
func (e Errno) Error() string { return "wasi errno " + itoa(int(e)) }

// ErrPathEscapes is returned by the host when a guest path would leave its
// directory capability. It maps to EPERM, as in wasmtime and the current
// wasi-testsuite expectations.
var ErrPathEscapes = errors.New("path escapes from directory capability")

// hostToWASI maps host (Linux) errnos to WASI errnos. Entries not listed
// map to EIO.
var hostToWASI = map[syscall.Errno]Errno{
	syscall.E2BIG:           E2BIG,
	syscall.EACCES:          EACCES,
	syscall.EADDRINUSE:      EADDRINUSE,
	syscall.EADDRNOTAVAIL:   EADDRNOTAVAIL,
	syscall.EAFNOSUPPORT:    EAFNOSUPPORT,
	syscall.EAGAIN:          EAGAIN,
	syscall.EALREADY:        EALREADY,
	syscall.EBADF:           EBADF,
	syscall.EBADMSG:         EBADMSG,
	syscall.EBUSY:           EBUSY,
	syscall.ECANCELED:       ECANCELED,
	syscall.ECHILD:          ECHILD,
	syscall.ECONNABORTED:    ECONNABORTED,
	syscall.ECONNREFUSED:    ECONNREFUSED,
	syscall.ECONNRESET:      ECONNRESET,
	syscall.EDEADLK:         EDEADLK,
	syscall.EDESTADDRREQ:    EDESTADDRREQ,
	syscall.EDOM:            EDOM,
	syscall.EDQUOT:          EDQUOT,
	syscall.EEXIST:          EEXIST,
	syscall.EFAULT:          EFAULT,
	syscall.EFBIG:           EFBIG,
	syscall.EHOSTUNREACH:    EHOSTUNREACH,
	syscall.EHOSTDOWN:       EHOSTUNREACH,
	syscall.EIDRM:           EIDRM,
	syscall.EILSEQ:          EILSEQ,
	syscall.EINPROGRESS:     EINPROGRESS,
	syscall.EINTR:           EINTR,
	syscall.EINVAL:          EINVAL,
	syscall.EIO:             EIO,
	syscall.EISCONN:         EISCONN,
	syscall.EISDIR:          EISDIR,
	syscall.ELOOP:           ELOOP,
	syscall.EMFILE:          EMFILE,
	syscall.EMLINK:          EMLINK,
	syscall.EMSGSIZE:        EMSGSIZE,
	syscall.EMULTIHOP:       EMULTIHOP,
	syscall.ENAMETOOLONG:    ENAMETOOLONG,
	syscall.ENETDOWN:        ENETDOWN,
	syscall.ENETRESET:       ENETRESET,
	syscall.ENETUNREACH:     ENETUNREACH,
	syscall.ENFILE:          ENFILE,
	syscall.ENOBUFS:         ENOBUFS,
	syscall.ENODEV:          ENODEV,
	syscall.ENOENT:          ENOENT,
	syscall.ENOEXEC:         ENOEXEC,
	syscall.ENOLCK:          ENOLCK,
	syscall.ENOLINK:         ENOLINK,
	syscall.ENOMEM:          ENOMEM,
	syscall.ENOMSG:          ENOMSG,
	syscall.ENOPROTOOPT:     ENOPROTOOPT,
	syscall.ENOSPC:          ENOSPC,
	syscall.ENOSYS:          ENOSYS,
	syscall.ENOTCONN:        ENOTCONN,
	syscall.ENOTDIR:         ENOTDIR,
	syscall.ENOTEMPTY:       ENOTEMPTY,
	syscall.ENOTRECOVERABLE: ENOTRECOVERABLE,
	syscall.ENOTSOCK:        ENOTSOCK,
	syscall.ENOTSUP:         ENOTSUP, // == EOPNOTSUPP on Linux
	syscall.ENOTTY:          ENOTTY,
	syscall.ENXIO:           ENXIO,
	syscall.EOVERFLOW:       EOVERFLOW,
	syscall.EOWNERDEAD:      EOWNERDEAD,
	syscall.EPERM:           EPERM,
	syscall.EPIPE:           EPIPE,
	syscall.EPROTO:          EPROTO,
	syscall.EPROTONOSUPPORT: EPROTONOSUPPORT,
	syscall.EPROTOTYPE:      EPROTOTYPE,
	syscall.ERANGE:          ERANGE,
	syscall.EROFS:           EROFS,
	syscall.ESPIPE:          ESPIPE,
	syscall.ESRCH:           ESRCH,
	syscall.ESTALE:          ESTALE,
	syscall.ETIMEDOUT:       ETIMEDOUT,
	syscall.ETXTBSY:         ETXTBSY,
	syscall.EXDEV:           EXDEV,
}

// ToErrno maps a Go error to a WASI errno. It is the only such mapping in
// the host: every host function passes its internal error through it once,
// at the ABI boundary. nil maps to ESUCCESS; anything unrecognised maps to
// EIO, never to success.
//
// Order matters: a policy denial wins over whatever syscall error it may
// wrap, and an Errno already in WASI numbering is passed through.
func ToErrno(err error) Errno {
	if err == nil {
		return ESUCCESS
	}
	if errors.Is(err, network.ErrDenied) {
		return EACCES
	}
	var we Errno
	if errors.As(err, &we) {
		return we
	}
	if errors.Is(err, ErrPathEscapes) {
		return EPERM
	}
	var se syscall.Errno
	if errors.As(err, &se) {
		if e, ok := hostToWASI[se]; ok {
			return e
		}
		return EIO
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ECANCELED
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ETIMEDOUT
	case errors.Is(err, fs.ErrNotExist):
		return ENOENT
	case errors.Is(err, fs.ErrExist):
		return EEXIST
	case errors.Is(err, fs.ErrPermission):
		return EPERM
	case errors.Is(err, fs.ErrInvalid):
		return EINVAL
	case errors.Is(err, fs.ErrClosed):
		return EBADF
	case errors.Is(err, io.ErrShortWrite):
		return EIO
	case err.Error() == "path escapes from parent":
		// os.Root's unexported errPathEscapes: a path or symlink tried to
		// leave the root. Matched by text because os does not export it.
		return EPERM
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
		return EPERM
	}
	var le *os.LinkError
	if errors.As(err, &le) && le.Err != nil && le.Err.Error() == "path escapes from parent" {
		return EPERM
	}
	return EIO
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
