package host

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// osFile is a non-directory opened inside a preopened host directory.
// Regular files never block, so it has no pollable fd: poll_oneoff treats
// it as always ready, as POSIX does for regular files.
type osFile struct {
	f  *os.File
	ft wasi.Filetype
	ro bool // opened under a read-only mount
	// rc and fd are set for non-regular files (FIFOs, devices), which are
	// opened non-blocking and read/written with raw system calls so that
	// they return EAGAIN instead of parking in Go's netpoller.
	rc syscall.RawConn
	fd int
}

func (o *osFile) filetype() wasi.Filetype { return o.ft }

func (o *osFile) pollFd() (int, bool) { return o.fd, o.rc != nil }

func (o *osFile) read(_ context.Context, bufs [][]byte) (int, error) {
	if o.rc != nil {
		return o.raw(bufs, false)
	}
	return readv(o.f, bufs)
}

// raw performs one non-blocking read or write system call per buffer on a
// special file; EAGAIN is returned to the caller.
func (o *osFile) raw(bufs [][]byte, write bool) (int, error) {
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		var n int
		var err error
		cerr := o.rc.Control(func(fd uintptr) {
			n, err = rawRW(fd, b, write)
		})
		if cerr != nil {
			err = cerr
		}
		if n > 0 {
			total += n
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

// readv fills bufs in order from r, stopping at the first short read, as
// readv(2) would.
func readv(r io.Reader, bufs [][]byte) (int, error) {
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

func writev(w io.Writer, bufs [][]byte) (int, error) {
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

func (o *osFile) write(_ context.Context, bufs [][]byte) (int, error) {
	if o.rc != nil {
		return o.raw(bufs, true)
	}
	return writev(o.f, bufs)
}

func (o *osFile) pread(bufs [][]byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		n, err := o.f.ReadAt(b, off)
		total += n
		off += int64(n)
		if err == io.EOF || (err == nil && n < len(b)) {
			break
		}
		if err != nil {
			if total > 0 {
				break
			}
			return 0, err
		}
	}
	return total, nil
}

func (o *osFile) pwrite(bufs [][]byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	total := 0
	for _, b := range bufs {
		n, err := o.f.WriteAt(b, off)
		total += n
		off += int64(n)
		if err != nil {
			if total > 0 {
				break
			}
			return 0, unwrapErrno(err)
		}
	}
	return total, nil
}

func (o *osFile) seek(off int64, whence int) (int64, error) {
	n, err := o.f.Seek(off, whence)
	return n, unwrapErrno(err)
}

func (o *osFile) stat() (filestat, error) {
	fi, err := o.f.Stat()
	if err != nil {
		return filestat{}, err
	}
	return statFromInfo(fi), nil
}

func (o *osFile) setSize(n int64) error {
	if o.ro {
		return syscall.EROFS
	}
	if n < 0 {
		return syscall.EINVAL
	}
	return unwrapErrno(o.f.Truncate(n))
}

func (o *osFile) setTimes(atim, mtim time.Time, setA, setM bool) error {
	if o.ro {
		return syscall.EROFS
	}
	return futimens(o.f, atim, mtim, setA, setM)
}

func (o *osFile) sync() error     { return unwrapErrno(o.f.Sync()) }
func (o *osFile) datasync() error { return unwrapErrno(o.f.Sync()) }

func (o *osFile) allocate(off, n int64) error {
	if o.ro {
		return syscall.EROFS
	}
	if off < 0 || n <= 0 {
		return syscall.EINVAL
	}
	// preview 1 fd_allocate only guarantees the range is backed; growing
	// the file to cover it is the portable way to honour that.
	fi, err := o.f.Stat()
	if err != nil {
		return err
	}
	if end := off + n; end > fi.Size() && end > off {
		return unwrapErrno(o.f.Truncate(end))
	}
	return nil
}

func (o *osFile) advise(off, n int64, advice uint8) error {
	if advice > 5 {
		return syscall.EINVAL
	}
	return nil // advisory; nothing to do
}

func (o *osFile) close() error { return o.f.Close() }

// rootDir is a directory capability backed by os.Root: os.Root resolves
// every path inside the directory, refusing "..", absolute symlinks and
// symlink chains that would leave it.
type rootDir struct {
	baseFile
	root *os.Root
	ro   bool
}

func newRootDir(root *os.Root, ro bool) *rootDir { return &rootDir{root: root, ro: ro} }

func (d *rootDir) filetype() wasi.Filetype { return wasi.FiletypeDirectory }

func (d *rootDir) read(context.Context, [][]byte) (int, error)  { return 0, syscall.EISDIR }
func (d *rootDir) write(context.Context, [][]byte) (int, error) { return 0, syscall.EISDIR }
func (d *rootDir) pread([][]byte, int64) (int, error)           { return 0, syscall.EISDIR }
func (d *rootDir) pwrite([][]byte, int64) (int, error)          { return 0, syscall.EISDIR }
func (d *rootDir) seek(int64, int) (int64, error)               { return 0, syscall.EISDIR }
func (d *rootDir) setSize(int64) error                          { return syscall.EISDIR }
func (d *rootDir) allocate(int64, int64) error                  { return syscall.EISDIR }
func (d *rootDir) advise(int64, int64, uint8) error             { return nil }

func (d *rootDir) stat() (filestat, error) {
	fi, err := d.root.Stat(".")
	if err != nil {
		return filestat{}, err
	}
	return statFromInfo(fi), nil
}

func (d *rootDir) setTimes(atim, mtim time.Time, setA, setM bool) error {
	return d.setTimesAt(".", true, atim, mtim, setA, setM)
}

func (d *rootDir) sync() error {
	f, err := d.root.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return unwrapErrno(err)
	}
	return nil
}

func (d *rootDir) datasync() error { return d.sync() }
func (d *rootDir) close() error    { return d.root.Close() }

func (d *rootDir) openAt(p string, a openArgs) (file, error) {
	if d.ro && (a.write || a.creat || a.trunc) {
		return nil, syscall.EROFS
	}
	fi, statErr := d.root.Lstat(p)
	if statErr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if !a.follow {
			return nil, syscall.ELOOP
		}
		fi, statErr = d.root.Stat(p)
	}
	if statErr == nil && a.creat && a.excl {
		return nil, syscall.EEXIST
	}
	if statErr == nil && fi.IsDir() {
		if a.write || a.trunc {
			return nil, syscall.EISDIR
		}
		r, err := d.root.OpenRoot(p)
		if err != nil {
			return nil, unwrapErrno(err)
		}
		return newRootDir(r, d.ro), nil
	}
	if a.directory {
		if statErr != nil {
			return nil, unwrapErrno(statErr)
		}
		return nil, syscall.ENOTDIR
	}
	flag := os.O_RDONLY
	switch {
	case a.read && a.write:
		flag = os.O_RDWR
	case a.write:
		flag = os.O_WRONLY
	}
	if a.creat {
		flag |= os.O_CREATE
	}
	if a.excl {
		flag |= os.O_EXCL
	}
	if a.trunc {
		flag |= os.O_TRUNC
	}
	if a.append {
		flag |= os.O_APPEND
	}
	if a.sync {
		flag |= os.O_SYNC
	}
	// Anything but a regular file (a FIFO, a device) is opened
	// non-blocking: opening a FIFO would otherwise block the host until a
	// writer appears, and reads would block uncancellably. Such files are
	// then waited on like sockets (pollFd).
	special := statErr == nil && !fi.Mode().IsRegular()
	if special {
		flag |= syscall.O_NONBLOCK
	}
	f, err := d.root.OpenFile(p, flag, 0o644)
	if err != nil {
		return nil, unwrapErrno(err)
	}
	ft := wasi.FiletypeRegularFile
	if fi, err := f.Stat(); err == nil {
		ft = filetypeOf(fi.Mode())
		if fi.IsDir() { // swapped in after our Lstat: hand out a directory
			f.Close()
			r, err := d.root.OpenRoot(p)
			if err != nil {
				return nil, unwrapErrno(err)
			}
			return newRootDir(r, d.ro), nil
		}
		if !fi.Mode().IsRegular() && !special { // swapped in after our Lstat
			f.Close()
			return nil, syscall.EAGAIN
		}
	}
	o := &osFile{f: f, ft: ft, ro: d.ro}
	if special {
		o.rc, err = f.SyscallConn()
		if err != nil {
			f.Close()
			return nil, err
		}
		o.fd, _ = hostFd(f)
	}
	return o, nil
}

func (d *rootDir) statAt(p string, follow bool) (filestat, error) {
	var fi fs.FileInfo
	var err error
	if follow {
		fi, err = d.root.Stat(p)
	} else {
		fi, err = d.root.Lstat(p)
	}
	if err != nil {
		return filestat{}, unwrapErrno(err)
	}
	return statFromInfo(fi), nil
}

func (d *rootDir) mkdirAt(p string) error {
	if d.ro {
		return syscall.EROFS
	}
	return unwrapErrno(d.root.Mkdir(p, 0o755))
}

func (d *rootDir) unlinkAt(p string) error {
	if d.ro {
		return syscall.EROFS
	}
	fi, err := d.root.Lstat(p)
	if err != nil {
		return unwrapErrno(err)
	}
	if fi.IsDir() {
		return syscall.EISDIR
	}
	return unwrapErrno(d.root.Remove(p))
}

func (d *rootDir) rmdirAt(p string) error {
	if d.ro {
		return syscall.EROFS
	}
	fi, err := d.root.Lstat(p)
	if err != nil {
		return unwrapErrno(err)
	}
	if !fi.IsDir() {
		return syscall.ENOTDIR
	}
	return unwrapErrno(d.root.Remove(p))
}

func (d *rootDir) renameAt(oldp string, dst dirFile, newp string) error {
	dd, ok := dst.(*rootDir)
	if !ok || dd != d {
		// os.Root renames only within one root.
		return syscall.EXDEV
	}
	if d.ro {
		return syscall.EROFS
	}
	return unwrapErrno(d.root.Rename(oldp, newp))
}

func (d *rootDir) linkAt(oldp string, follow bool, dst dirFile, newp string) error {
	dd, ok := dst.(*rootDir)
	if !ok || dd != d {
		return syscall.EXDEV
	}
	if d.ro {
		return syscall.EROFS
	}
	return unwrapErrno(d.root.Link(oldp, newp))
}

func (d *rootDir) symlinkAt(target, p string) error {
	if d.ro {
		return syscall.EROFS
	}
	// An absolute target could never be followed inside the root; refuse
	// it up front like wasmtime does, rather than create a dead link.
	if len(target) > 0 && target[0] == '/' {
		return wasi.ErrPathEscapes
	}
	return unwrapErrno(d.root.Symlink(target, p))
}

func (d *rootDir) readlinkAt(p string) (string, error) {
	s, err := d.root.Readlink(p)
	return s, unwrapErrno(err)
}

func (d *rootDir) setTimesAt(p string, follow bool, atim, mtim time.Time, setA, setM bool) error {
	if d.ro {
		return syscall.EROFS
	}
	if !setA || !setM {
		// os.Root.Chtimes leaves a zero time unchanged.
		if !setA {
			atim = time.Time{}
		}
		if !setM {
			mtim = time.Time{}
		}
	}
	return unwrapErrno(d.root.Chtimes(p, atim, mtim))
}

func (d *rootDir) list() ([]dirent, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return nil, unwrapErrno(err)
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, unwrapErrno(err)
	}
	out := make([]dirent, 0, len(des)+2)
	self, _ := d.root.Stat(".")
	parent, _ := d.root.Lstat("..") // refused by os.Root: inode 0 is allowed
	out = append(out, dirent{name: ".", ino: inoOf(self), typ: wasi.FiletypeDirectory})
	out = append(out, dirent{name: "..", ino: inoOf(parent), typ: wasi.FiletypeDirectory})
	for _, de := range des {
		var ino uint64
		if fi, err := de.Info(); err == nil {
			ino = inoOf(fi)
		}
		out = append(out, dirent{name: de.Name(), ino: ino, typ: filetypeOf(de.Type())})
	}
	return out, nil
}

// filetypeOf maps a Go file mode to a WASI filetype.
func filetypeOf(m fs.FileMode) wasi.Filetype {
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
