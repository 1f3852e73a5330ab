package host

// The fd table.
//
// One table per module instance holds every guest fd: stdio (0-2), preopened
// directories (3...), files and directories opened by path_open, and sockets
// (created by sock_open / sock_accept, or preopened by --listen). Each slot is
// an *fdEntry: the open object (a file) plus what the guest sees of it —
// fdflags (APPEND, NONBLOCK, ...), rights, and for preopens the guest path.
// New fds take the lowest free slot, as POSIX does.
//
// What a socket entry must implement (task D, host/sockets*.go):
//
//   - a type, e.g. *socketFile, that embeds baseFile (which answers every
//     operation that makes no sense on a socket with the right errno) and
//     wraps a network.Socket;
//   - filetype(): wasi.FiletypeSocketStream (6) for TCP,
//     wasi.FiletypeSocketDgram (5) for UDP;
//   - read(ctx, bufs) / write(ctx, bufs): Socket.Recv / Socket.Send with
//     no flags. They must NOT block: return syscall.EAGAIN (the
//     network.Socket contract already does);
//   - pollFd(): (Socket.Fd(), true) when Fd() >= 0;
//   - stat(): a filestat with filetype 5/6 (the rest zero is fine);
//   - nothing for fd_prestat_get: it returns EBADF for every entry that is
//     not a preopened directory, sockets included. Both Go's and
//     wasi-libc's preopen scans stop at the first EBADF, and wasi-libc
//     aborts the program on any other errno (ENOTDIR included), so
//     preopened (--listen) sockets must be placed AFTER all preopened
//     directories — openPreopenedSockets runs after the directories are in;
//   - close(): Socket.Close.
//
// The entry is added with s.fds.insert(newSocketEntry(f, nonblock)) (or an &fdEntry{}
// literal with rights wasi.RightsSocket and flags as wanted); socket
// functions look the fd up with s.fds.get(fd) and type-assert the file.
//
// Blocking vs non-blocking. Every host fd the table owns is non-blocking on
// the host (sockets are created so by network; FIFOs and devices opened in a
// preopen are opened O_NONBLOCK; host stdio is never touched: stdin reports
// readiness through a zero-timeout poll before reading, stdout and stderr
// writes always complete). The
// NONBLOCK bit the guest sets with fd_fdstat_set_flags lives only in
// fdEntry.flags. When an operation returns EAGAIN and the guest fd is in
// blocking mode, the host function waits for readiness with s.waitFd(hostfd,
// events, timeout) and retries: waitFd is ppoll(2) on the host fd plus the
// instance's wake fd (an eventfd written when ctx is cancelled or the
// instance is closed), so a blocked guest costs no CPU and can always be
// cancelled (waitFd returns wasi.ECANCELED then; when the instance's ctx is
// done, blockingIO and the preview 1 waits do not return to the guest but
// end its _start, since the guest is being stopped). Socket functions that block
// in the guest's view (sock_accept, sock_recv, sock_send, sock_recv_from,
// sock_send_to, a stream connect in blocking mode) use the same helper:
// s.blockingIO(ctx, entry, events, op).
//
// poll_oneoff: a FD_READ / FD_WRITE subscription on an entry whose pollFd()
// is ok becomes a pollfd (POLLIN / POLLOUT) in one ppoll together with the
// wake fd and the nearest clock deadline (nanosecond timeout). An entry
// without a pollable fd (regular files, in-memory stdio, virtual files) is
// always ready. An unknown fd produces an event with error EBADF; the call
// itself then still succeeds, as Go's runtime requires. A guest may have at
// most Config.MaxFds() fds open (DefaultMaxFds unless set); beyond that
// inserts fail with EMFILE.

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// file is one open object behind a guest fd. Implementations never block in
// read or write when pollFd reports a host fd: they return syscall.EAGAIN and
// let the caller wait (see the comment at the top of this file). Methods are
// called with the table's lock NOT held.
type file interface {
	filetype() wasi.Filetype
	read(ctx context.Context, bufs [][]byte) (int, error)
	write(ctx context.Context, bufs [][]byte) (int, error)
	pread(bufs [][]byte, off int64) (int, error)
	pwrite(bufs [][]byte, off int64) (int, error)
	seek(off int64, whence int) (int64, error)
	stat() (filestat, error)
	setSize(size int64) error
	setTimes(atim, mtim time.Time, setAtim, setMtim bool) error
	sync() error
	datasync() error
	allocate(off, n int64) error
	advise(off, n int64, advice uint8) error
	// pollFd returns the host fd to poll for readiness, if any.
	pollFd() (fd int, ok bool)
	close() error
}

// filestat is the WASI filestat (64 bytes in guest memory).
type filestat struct {
	dev, ino         uint64
	filetype         wasi.Filetype
	nlink, size      uint64
	atim, mtim, ctim uint64 // ns since the epoch
}

// baseFile answers every file operation with the errno that fits an object
// that does not support it. Embed it and override what applies.
type baseFile struct{}

func (baseFile) read(context.Context, [][]byte) (int, error)  { return 0, syscall.EBADF }
func (baseFile) write(context.Context, [][]byte) (int, error) { return 0, syscall.EBADF }
func (baseFile) pread([][]byte, int64) (int, error)           { return 0, syscall.ESPIPE }
func (baseFile) pwrite([][]byte, int64) (int, error)          { return 0, syscall.ESPIPE }
func (baseFile) seek(int64, int) (int64, error)               { return 0, syscall.ESPIPE }
func (baseFile) setSize(int64) error                          { return syscall.EINVAL }
func (baseFile) setTimes(time.Time, time.Time, bool, bool) error {
	return syscall.EBADF
}
func (baseFile) sync() error                      { return syscall.EINVAL }
func (baseFile) datasync() error                  { return syscall.EINVAL }
func (baseFile) allocate(int64, int64) error      { return syscall.ESPIPE }
func (baseFile) advise(int64, int64, uint8) error { return syscall.ESPIPE }
func (baseFile) pollFd() (int, bool)              { return -1, false }
func (baseFile) stat() (filestat, error)          { return filestat{}, nil }
func (baseFile) close() error                     { return nil }
func (baseFile) filetype() wasi.Filetype          { return wasi.FiletypeUnknown }

// fdEntry is one slot of the table.
type fdEntry struct {
	file file
	// flags are the guest-visible fdflags. NONBLOCK lives only here; the
	// host fd is always non-blocking (or polled before use).
	flags            uint16
	rightsBase       wasi.Rights
	rightsInheriting wasi.Rights
	// preopen is the guest path of a preopened directory, "" otherwise.
	preopen string
	// dir caches the listing fd_readdir pages through (reset at cookie 0).
	dir *dirListing
}

// nonblock reports whether the guest put the fd in non-blocking mode.
func (e *fdEntry) nonblock() bool { return e.flags&wasi.FdflagNonblock != 0 }

// fdTable maps guest fds to entries. It is safe for concurrent use (the
// guest is single-threaded, but cancellation and Close come from other
// goroutines).
type fdTable struct {
	mu      sync.Mutex
	entries []*fdEntry
	n       int
	max     int // 0 = unlimited; beyond it insert fails with EMFILE
	// free is a lower bound of the lowest free slot: every slot below it
	// is in use. insert scans from there, so that a server with many
	// connections open does not walk all of them for every accept.
	free int
}

// get returns the entry at fd, or EBADF.
func (t *fdTable) get(fd int32) (*fdEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd < 0 || int(fd) >= len(t.entries) || t.entries[fd] == nil {
		return nil, wasi.EBADF
	}
	return t.entries[fd], nil
}

// full reports whether insert would fail with EMFILE.
func (t *fdTable) full() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.max > 0 && t.n >= t.max
}

// insert places e in the lowest free slot and returns its fd.
func (t *fdTable) insert(e *fdEntry) (int32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.max > 0 && t.n >= t.max {
		return -1, wasi.EMFILE
	}
	for i := t.free; i < len(t.entries); i++ {
		if t.entries[i] == nil {
			t.entries[i] = e
			t.n++
			t.free = i + 1
			return int32(i), nil
		}
	}
	if len(t.entries) >= 1<<30 {
		return -1, wasi.EMFILE
	}
	t.entries = append(t.entries, e)
	t.n++
	t.free = len(t.entries)
	return int32(len(t.entries) - 1), nil
}

// freed notes that slot fd became free (with t.mu held).
func (t *fdTable) freed(fd int32) {
	if int(fd) < t.free {
		t.free = int(fd)
	}
}

// remove frees fd and returns what was there; the caller closes it.
func (t *fdTable) remove(fd int32) (*fdEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd < 0 || int(fd) >= len(t.entries) || t.entries[fd] == nil {
		return nil, wasi.EBADF
	}
	e := t.entries[fd]
	t.entries[fd] = nil
	t.n--
	t.freed(fd)
	return e, nil
}

// renumber moves from onto to (fd_renumber): to must be open, and whatever
// was at to is returned for the caller to close.
func (t *fdTable) renumber(from, to int32) (*fdEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	valid := func(fd int32) bool {
		return fd >= 0 && int(fd) < len(t.entries) && t.entries[fd] != nil
	}
	if !valid(from) || !valid(to) {
		return nil, wasi.EBADF
	}
	if from == to {
		return nil, nil
	}
	old := t.entries[to]
	t.entries[to] = t.entries[from]
	t.entries[from] = nil
	t.n--
	t.freed(from)
	return old, nil
}

// closeAll removes and closes every entry (instance teardown).
func (t *fdTable) closeAll() {
	t.mu.Lock()
	es := t.entries
	t.entries = nil
	t.n = 0
	t.free = 0
	t.mu.Unlock()
	for _, e := range es {
		if e != nil {
			_ = e.file.close()
		}
	}
}

// newSocketEntry is the entry for a freshly created socket: non-blocking in
// the guest's view only if nonblock is set (sock_open creates blocking
// sockets, as POSIX does; Go guests then set NONBLOCK themselves).
func newSocketEntry(f file, nonblock bool) *fdEntry {
	e := &fdEntry{file: f, rightsBase: wasi.RightsSocket, rightsInheriting: wasi.RightsSocket}
	if nonblock {
		e.flags = wasi.FdflagNonblock
	}
	return e
}
