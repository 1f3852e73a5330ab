package wasi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"github.com/wasmgate/wasmgate/network"
)

var errnoTests = []struct {
	name string
	err  error
	want Errno
}{
	{"nil", nil, ESUCCESS},
	{"denied sentinel", network.ErrDenied, EACCES},
	{"denied error", &network.DeniedError{Op: "tcp.connect", Addr: netip.MustParseAddrPort("127.0.0.1:80")}, EACCES},
	{"denied wrapped in OpError", &network.OpError{Op: "connect", Net: "tcp", Err: &network.DeniedError{Op: "tcp.connect"}}, EACCES},
	{"denied wins over errno", fmt.Errorf("%w: %w", network.ErrDenied, syscall.ECONNREFUSED), EACCES},
	{"wasi errno passes through", ENOTCAPABLE, ENOTCAPABLE},
	{"wrapped wasi errno", fmt.Errorf("x: %w", EFAULT), EFAULT},
	{"EAGAIN", syscall.EAGAIN, EAGAIN},
	{"ECONNREFUSED in OpError", &network.OpError{Op: "connect", Err: syscall.ECONNREFUSED}, ECONNREFUSED},
	{"EINPROGRESS", syscall.EINPROGRESS, EINPROGRESS},
	{"ENOENT PathError", &fs.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, ENOENT},
	{"EEXIST", syscall.EEXIST, EEXIST},
	{"ENOTEMPTY", syscall.ENOTEMPTY, ENOTEMPTY},
	{"EISDIR", syscall.EISDIR, EISDIR},
	{"ENOTDIR", syscall.ENOTDIR, ENOTDIR},
	{"EROFS", syscall.EROFS, EROFS},
	{"ELOOP", syscall.ELOOP, ELOOP},
	{"EMFILE", syscall.EMFILE, EMFILE},
	{"EOPNOTSUPP", syscall.EOPNOTSUPP, ENOTSUP},
	{"ENOTSOCK", syscall.ENOTSOCK, ENOTSOCK},
	{"EADDRINUSE", syscall.EADDRINUSE, EADDRINUSE},
	{"ENETUNREACH", syscall.ENETUNREACH, ENETUNREACH},
	{"ETIMEDOUT", syscall.ETIMEDOUT, ETIMEDOUT},
	{"EPIPE", syscall.EPIPE, EPIPE},
	{"ECONNRESET", syscall.ECONNRESET, ECONNRESET},
	{"unknown host errno", syscall.Errno(0xfff), EIO},
	{"path escape", ErrPathEscapes, EPERM},
	{"os.Root escape text", &fs.PathError{Op: "openat", Path: "..", Err: errors.New("path escapes from parent")}, EPERM},
	{"context canceled", context.Canceled, ECANCELED},
	{"deadline", os.ErrDeadlineExceeded, ETIMEDOUT},
	{"fs.ErrNotExist", fs.ErrNotExist, ENOENT},
	{"fs.ErrClosed", fs.ErrClosed, EBADF},
	{"opaque", errors.New("boom"), EIO},
}

func TestToErrno(t *testing.T) {
	for _, tc := range errnoTests {
		if got := ToErrno(tc.err); got != tc.want {
			t.Errorf("%s: ToErrno(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
}

// The numbering is WASI's, not Linux's.
func TestErrnoNumbering(t *testing.T) {
	for _, tc := range []struct {
		e    Errno
		want uint16
	}{{EACCES, 2}, {EAGAIN, 6}, {EBADF, 8}, {ECANCELED, 11}, {EEXIST, 20}, {EFAULT, 21},
		{EINPROGRESS, 26}, {EINTR, 27}, {EINVAL, 28}, {ENOENT, 44}, {ENOSYS, 52}, {ENOTDIR, 54},
		{ENOTSOCK, 57}, {ENOTSUP, 58}, {EPERM, 63}, {EROFS, 69}, {ETIMEDOUT, 73}, {ENOTCAPABLE, 76}} {
		if uint16(tc.e) != tc.want {
			t.Errorf("errno %v = %d, want %d", tc.e, uint16(tc.e), tc.want)
		}
	}
	// Every mapped host errno lands inside the WASI range.
	for h, w := range hostToWASI {
		if w == ESUCCESS || w > ENOTCAPABLE {
			t.Errorf("host %v maps to %d", h, w)
		}
	}
}
