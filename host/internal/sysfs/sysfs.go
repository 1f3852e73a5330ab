// Package sysfs is the guest's file system: the directories preopened for a
// guest and everything opened through them. It alone decides what a guest
// path may reach; the WASI layer (host/preview1.go, host/path.go) decodes
// arguments, checks rights and calls it.
//
// A Dir is a directory capability. Every path given to its methods is
// relative to it and is resolved so that it can never name anything
// outside the preopen it came from: not through "..", not through a
// symbolic link (absolute or relative, created before or swapped in during
// the call), not through /proc magic links. Absolute paths are refused.
// An escape attempt fails with wasi.ErrPathEscapes (EPERM for the guest).
//
// Implementations:
//
//   - Linux (OpenHostDir): directory file descriptors and *at system
//     calls, every lookup done by openat2(2) with RESOLVE_BENEATH and
//     RESOLVE_NO_MAGICLINKS, which the kernel enforces atomically. Rename
//     and link work between any two directories of the guest's preopens
//     (renameat(2)/linkat(2) on the two parent descriptors).
//   - Elsewhere, and on Linux kernels without openat2 (before 5.6, or where
//     a seccomp filter refuses it): os.Root (OpenRootDir). os.Root cannot
//     rename or link between two roots, so such operations fail with EXDEV;
//     see docs/filesystem.md for the other differences.
//   - NewFSDir: a read-only directory over an io/fs.FS (the virtual /etc of
//     the DNS stub).
//
// Errors are syscall.Errno values (or wasi errors); the host maps them to
// WASI errnos once, at the host-function boundary.
package sysfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// MaxPath bounds guest path lengths (PATH_MAX), so a guest cannot make the
// host copy huge strings. Longer paths fail with ENAMETOOLONG.
const MaxPath = 4096

// Filestat is a WASI filestat.
type Filestat struct {
	Dev, Ino         uint64
	Filetype         wasi.Filetype
	Nlink, Size      uint64
	Atim, Mtim, Ctim uint64 // ns since the epoch
}

// Dirent is one directory entry as fd_readdir reports it.
type Dirent struct {
	Name string
	Ino  uint64
	Type wasi.Filetype
}

// OpenArgs are the decoded path_open parameters.
type OpenArgs struct {
	Follow    bool // lookupflags SYMLINK_FOLLOW
	Read      bool // open for reading
	Write     bool // open for writing
	Create    bool // O_CREAT
	Excl      bool // O_EXCL
	Trunc     bool // O_TRUNC
	Directory bool // O_DIRECTORY: must be a directory
	Append    bool // FDFLAGS_APPEND
	Sync      bool // any of DSYNC, RSYNC, SYNC
}

// File is an open file or directory. Implementations never block in Read
// or Write when PollFd reports a host descriptor: they return
// syscall.EAGAIN and let the caller wait for readiness.
type File interface {
	Filetype() wasi.Filetype
	Read(bufs [][]byte) (int, error)
	Write(bufs [][]byte) (int, error)
	Pread(bufs [][]byte, off int64) (int, error)
	Pwrite(bufs [][]byte, off int64) (int, error)
	Seek(off int64, whence int) (int64, error)
	Stat() (Filestat, error)
	SetSize(size int64) error
	SetTimes(atim, mtim time.Time, setAtim, setMtim bool) error
	// SetAppend switches append mode (FDFLAGS_APPEND) on or off.
	SetAppend(on bool) error
	Sync() error
	Datasync() error
	Allocate(off, n int64) error
	Advise(off, n int64, advice uint8) error
	// PollFd returns the host descriptor to poll for readiness, if any
	// (FIFOs and devices; regular files and directories are always ready).
	PollFd() (fd int, ok bool)
	Close() error
}

// Dir is a directory capability (see the package comment). Paths are
// guest paths: relative, at most MaxPath bytes; they are validated by every
// method (CheckPath).
type Dir interface {
	File
	// ReadOnly reports whether the directory belongs to a read-only
	// preopen: every modification through it fails with EROFS.
	ReadOnly() bool
	OpenAt(p string, a OpenArgs) (File, error)
	StatAt(p string, follow bool) (Filestat, error)
	MkdirAt(p string) error
	UnlinkAt(p string) error
	RmdirAt(p string) error
	// RenameAt renames oldp (relative to the receiver) to newp relative
	// to dst, which may be another directory of the guest. It fails with
	// EXDEV when the implementation cannot do that (os.Root, fs.FS) and
	// with EROFS when either side is read-only.
	RenameAt(oldp string, dst Dir, newp string) error
	// LinkAt makes newp (relative to dst) a hard link to oldp; with
	// follow, a symbolic link at oldp is resolved first (inside the
	// directory, as any path).
	LinkAt(oldp string, follow bool, dst Dir, newp string) error
	SymlinkAt(target, p string) error
	ReadlinkAt(p string) (string, error)
	SetTimesAt(p string, follow bool, atim, mtim time.Time, setAtim, setMtim bool) error
	// List returns the directory's entries, "." and ".." first.
	List() ([]Dirent, error)
}

// CheckPath rejects guest paths that can never name something inside a
// directory capability: absolute paths (the escape errno), paths with NUL
// (EINVAL) and paths longer than MaxPath (ENAMETOOLONG). An empty path is
// ENOENT, as for openat(2).
func CheckPath(p string) error {
	switch {
	case p == "":
		return syscall.ENOENT
	case len(p) > MaxPath:
		return syscall.ENAMETOOLONG
	case strings.IndexByte(p, 0) >= 0:
		return syscall.EINVAL
	case p[0] == '/':
		return wasi.ErrPathEscapes
	}
	return nil
}

// splitPath splits a checked guest path into the directory part and the
// last component, dropping trailing slashes (reported in trailing). A last
// component of "." or ".." is folded into the directory part, which is
// then the whole path, and the name becomes ".": the operation then applies
// to the directory itself and can never name an entry of its parent.
func splitPath(p string) (dir, name string, trailing bool) {
	q := strings.TrimRight(p, "/")
	trailing = len(q) < len(p)
	if q == "" { // only slashes: CheckPath refuses these
		return "", ".", trailing
	}
	i := strings.LastIndexByte(q, '/')
	dir, name = "", q
	if i >= 0 {
		dir, name = strings.TrimRight(q[:i], "/"), q[i+1:]
		if dir == "" {
			dir = "/" // "/x": absolute; CheckPath refuses these
		}
	}
	if name == "." || name == ".." {
		return q, ".", trailing
	}
	return dir, name, trailing
}

// FiletypeOf maps a Go file mode to a WASI filetype.
func FiletypeOf(m fs.FileMode) wasi.Filetype {
	switch {
	case m.IsRegular():
		return wasi.FiletypeRegularFile
	case m.IsDir():
		return wasi.FiletypeDirectory
	case m&fs.ModeSymlink != 0:
		return wasi.FiletypeSymbolicLink
	case m&fs.ModeSocket != 0:
		return wasi.FiletypeSocketStream
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice != 0:
		return wasi.FiletypeCharacterDevice
	case m&fs.ModeDevice != 0:
		return wasi.FiletypeBlockDevice
	}
	return wasi.FiletypeUnknown
}

// Readv fills bufs in order from r, stopping at the first short read, as
// readv(2) would. io.EOF is not an error (0 bytes read).
func Readv(r io.Reader, bufs [][]byte) (int, error) {
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		n, err := r.Read(b)
		total += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			if total > 0 {
				return total, nil
			}
			return 0, err
		}
		if n < len(b) {
			break
		}
	}
	return total, nil
}

// Writev writes bufs in order to w, as writev(2) would.
func Writev(w io.Writer, bufs [][]byte) (int, error) {
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		n, err := w.Write(b)
		total += n
		if err != nil {
			if total > 0 {
				return total, nil
			}
			return 0, err
		}
	}
	return total, nil
}

// unwrapErrno strips *fs.PathError and *os.LinkError wrappers so that the
// errno mapping sees the cause; other errors pass through unchanged.
func unwrapErrno(err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
