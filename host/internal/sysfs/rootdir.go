package sysfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// OpenRootDir opens the host directory hostDir as a directory capability
// backed by os.Root: the portable implementation, used where openat2(2)
// is missing. os.Root resolves every path inside the directory and refuses
// "..", absolute symlinks and symlink chains that would leave it. What it
// cannot do (docs/filesystem.md): rename or link between two directory
// capabilities (EXDEV), rename a directory onto an existing empty one
// (EEXIST), change a symbolic link's own times (ENOTSUP), switch append
// mode on an open file (ENOTSUP).
func OpenRootDir(hostDir string, readOnly bool) (Dir, error) {
	r, err := os.OpenRoot(hostDir)
	if err != nil {
		return nil, err
	}
	return &rootDir{root: r, ro: readOnly}, nil
}

// rootDir is a directory capability backed by os.Root.
type rootDir struct {
	root *os.Root
	ro   bool
}

func (d *rootDir) Filetype() wasi.Filetype            { return wasi.FiletypeDirectory }
func (d *rootDir) ReadOnly() bool                     { return d.ro }
func (d *rootDir) Read([][]byte) (int, error)         { return 0, syscall.EISDIR }
func (d *rootDir) Write([][]byte) (int, error)        { return 0, syscall.EISDIR }
func (d *rootDir) Pread([][]byte, int64) (int, error) { return 0, syscall.EISDIR }
func (d *rootDir) Pwrite([][]byte, int64) (int, error) {
	return 0, syscall.EISDIR
}
func (d *rootDir) Seek(int64, int) (int64, error)   { return 0, syscall.EISDIR }
func (d *rootDir) SetSize(int64) error              { return syscall.EISDIR }
func (d *rootDir) SetAppend(bool) error             { return syscall.ENOTSUP }
func (d *rootDir) Allocate(int64, int64) error      { return syscall.EISDIR }
func (d *rootDir) Advise(int64, int64, uint8) error { return nil }
func (d *rootDir) PollFd() (int, bool)              { return -1, false }

func (d *rootDir) Stat() (Filestat, error) {
	fi, err := d.root.Stat(".")
	if err != nil {
		return Filestat{}, unwrapErrno(err)
	}
	return statFromInfo(fi), nil
}

func (d *rootDir) SetTimes(atim, mtim time.Time, setA, setM bool) error {
	return d.SetTimesAt(".", true, atim, mtim, setA, setM)
}

func (d *rootDir) Sync() error {
	f, err := d.root.Open(".")
	if err != nil {
		return unwrapErrno(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return unwrapErrno(err)
	}
	return nil
}

func (d *rootDir) Datasync() error { return d.Sync() }
func (d *rootDir) Close() error    { return d.root.Close() }

func (d *rootDir) OpenAt(p string, a OpenArgs) (File, error) {
	if err := CheckPath(p); err != nil {
		return nil, err
	}
	if d.ro && (a.Write || a.Create || a.Trunc) {
		return nil, syscall.EROFS
	}
	fi, statErr := d.root.Lstat(p)
	if statErr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if !a.Follow {
			return nil, syscall.ELOOP
		}
		fi, statErr = d.root.Stat(p)
	}
	if statErr == nil && a.Create && a.Excl {
		return nil, syscall.EEXIST
	}
	if statErr == nil && fi.IsDir() {
		if a.Write || a.Trunc {
			return nil, syscall.EISDIR
		}
		r, err := d.root.OpenRoot(p)
		if err != nil {
			return nil, unwrapErrno(err)
		}
		return &rootDir{root: r, ro: d.ro}, nil
	}
	if a.Directory {
		if statErr != nil {
			return nil, unwrapErrno(statErr)
		}
		return nil, syscall.ENOTDIR
	}
	flag := os.O_RDONLY
	switch {
	case a.Read && a.Write:
		flag = os.O_RDWR
	case a.Write:
		flag = os.O_WRONLY
	}
	if a.Create {
		flag |= os.O_CREATE
	}
	if a.Excl {
		flag |= os.O_EXCL
	}
	if a.Trunc {
		flag |= os.O_TRUNC
	}
	if a.Append {
		flag |= os.O_APPEND
	}
	if a.Sync {
		flag |= os.O_SYNC
	}
	// Anything but a regular file (a FIFO, a device) is opened
	// non-blocking: opening a FIFO would otherwise block the host until a
	// writer appears, and reads would block uncancellably. Such files are
	// then waited on like sockets (PollFd).
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
		ft = FiletypeOf(fi.Mode())
		if fi.IsDir() { // swapped in after our Lstat: hand out a directory
			f.Close()
			r, err := d.root.OpenRoot(p)
			if err != nil {
				return nil, unwrapErrno(err)
			}
			return &rootDir{root: r, ro: d.ro}, nil
		}
		if !fi.Mode().IsRegular() && !special { // swapped in after our Lstat
			f.Close()
			return nil, syscall.EAGAIN
		}
	}
	o := &osFile{f: f, ft: ft, ro: d.ro, append: a.Append}
	if special {
		o.rc, err = f.SyscallConn()
		if err != nil {
			f.Close()
			return nil, err
		}
		o.fd = -1
		_ = o.rc.Control(func(u uintptr) { o.fd = int(u) })
	}
	return o, nil
}

func (d *rootDir) StatAt(p string, follow bool) (Filestat, error) {
	if err := CheckPath(p); err != nil {
		return Filestat{}, err
	}
	var fi fs.FileInfo
	var err error
	if follow {
		fi, err = d.root.Stat(p)
	} else {
		fi, err = d.root.Lstat(p)
	}
	if err != nil {
		return Filestat{}, unwrapErrno(err)
	}
	return statFromInfo(fi), nil
}

// writable validates p and refuses modifications of a read-only mount.
func (d *rootDir) writable(p string) error {
	if err := CheckPath(p); err != nil {
		return err
	}
	if d.ro {
		return syscall.EROFS
	}
	return nil
}

func (d *rootDir) MkdirAt(p string) error {
	if err := d.writable(p); err != nil {
		return err
	}
	return unwrapErrno(d.root.Mkdir(p, 0o755))
}

func (d *rootDir) UnlinkAt(p string) error {
	if err := d.writable(p); err != nil {
		return err
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

func (d *rootDir) RmdirAt(p string) error {
	if err := d.writable(p); err != nil {
		return err
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

func (d *rootDir) RenameAt(oldp string, dst Dir, newp string) error {
	if err := d.writable(oldp); err != nil {
		return err
	}
	if err := CheckPath(newp); err != nil {
		return err
	}
	if dst.ReadOnly() {
		return syscall.EROFS
	}
	if dd, ok := dst.(*rootDir); !ok || dd != d {
		return syscall.EXDEV // os.Root renames only within one root
	}
	return unwrapErrno(d.root.Rename(oldp, newp))
}

func (d *rootDir) LinkAt(oldp string, follow bool, dst Dir, newp string) error {
	if err := d.writable(oldp); err != nil {
		return err
	}
	if err := CheckPath(newp); err != nil {
		return err
	}
	if dst.ReadOnly() {
		return syscall.EROFS
	}
	if dd, ok := dst.(*rootDir); !ok || dd != d {
		return syscall.EXDEV
	}
	if follow {
		fi, err := d.root.Lstat(oldp)
		if err != nil {
			return unwrapErrno(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return syscall.ENOTSUP // os.Root.Link never follows
		}
	}
	return unwrapErrno(d.root.Link(oldp, newp))
}

func (d *rootDir) SymlinkAt(target, p string) error {
	if err := d.writable(p); err != nil {
		return err
	}
	if err := checkTarget(target); err != nil {
		return err
	}
	return unwrapErrno(d.root.Symlink(target, p))
}

func (d *rootDir) ReadlinkAt(p string) (string, error) {
	if err := CheckPath(p); err != nil {
		return "", err
	}
	s, err := d.root.Readlink(p)
	return s, unwrapErrno(err)
}

func (d *rootDir) SetTimesAt(p string, follow bool, atim, mtim time.Time, setA, setM bool) error {
	if err := d.writable(p); err != nil {
		return err
	}
	if !follow {
		fi, err := d.root.Lstat(p)
		if err != nil {
			return unwrapErrno(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return syscall.ENOTSUP // os.Root.Chtimes follows symlinks
		}
	}
	// os.Root.Chtimes leaves a zero time unchanged.
	if !setA {
		atim = time.Time{}
	}
	if !setM {
		mtim = time.Time{}
	}
	return unwrapErrno(d.root.Chtimes(p, atim, mtim))
}

func (d *rootDir) List() ([]Dirent, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return nil, unwrapErrno(err)
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, unwrapErrno(err)
	}
	out := make([]Dirent, 0, len(des)+2)
	self, _ := d.root.Stat(".")
	parent, _ := d.root.Lstat("..") // refused by os.Root: inode 0 is allowed
	out = append(out, Dirent{Name: ".", Ino: inoOf(self), Type: wasi.FiletypeDirectory})
	out = append(out, Dirent{Name: "..", Ino: inoOf(parent), Type: wasi.FiletypeDirectory})
	for _, de := range des {
		var ino uint64
		if fi, err := de.Info(); err == nil {
			ino = inoOf(fi)
		}
		out = append(out, Dirent{Name: de.Name(), Ino: ino, Type: FiletypeOf(de.Type())})
	}
	return out, nil
}

// checkTarget refuses symbolic link targets that could never be followed
// inside a directory capability: absolute ones (the escape errno, as
// wasmtime does, rather than create a dead link), and ones with NUL.
func checkTarget(target string) error {
	switch {
	case len(target) > MaxPath:
		return syscall.ENAMETOOLONG
	case len(target) > 0 && target[0] == '/':
		return wasi.ErrPathEscapes
	}
	for i := 0; i < len(target); i++ {
		if target[i] == 0 {
			return syscall.EINVAL
		}
	}
	return nil
}

// osFile is a non-directory opened through os.Root. Regular files never
// block, so it has no pollable fd: poll_oneoff treats it as always ready,
// as POSIX does for regular files.
type osFile struct {
	f      *os.File
	ft     wasi.Filetype
	ro     bool // opened under a read-only mount
	append bool // opened with O_APPEND
	// rc and fd are set for non-regular files (FIFOs, devices), which are
	// opened non-blocking and read/written with raw system calls so that
	// they return EAGAIN instead of parking in Go's netpoller.
	rc syscall.RawConn
	fd int
}

func (o *osFile) Filetype() wasi.Filetype { return o.ft }
func (o *osFile) PollFd() (int, bool)     { return o.fd, o.rc != nil }

func (o *osFile) Read(bufs [][]byte) (int, error) {
	if o.rc != nil {
		return o.raw(bufs, false)
	}
	return Readv(o.f, bufs)
}

func (o *osFile) Write(bufs [][]byte) (int, error) {
	if o.rc != nil {
		return o.raw(bufs, true)
	}
	return Writev(o.f, bufs)
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

func (o *osFile) Pread(bufs [][]byte, off int64) (int, error) {
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
			return 0, unwrapErrno(err)
		}
	}
	return total, nil
}

// Pwrite writes at off, except on a file opened for appending: os.File
// refuses WriteAt there, and the data is appended instead (what Linux's
// pwrite(2) does on such a file).
func (o *osFile) Pwrite(bufs [][]byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if o.append {
		return Writev(o.f, bufs)
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

func (o *osFile) Seek(off int64, whence int) (int64, error) {
	n, err := o.f.Seek(off, whence)
	return n, unwrapErrno(err)
}

func (o *osFile) Stat() (Filestat, error) {
	fi, err := o.f.Stat()
	if err != nil {
		return Filestat{}, unwrapErrno(err)
	}
	return statFromInfo(fi), nil
}

func (o *osFile) SetSize(n int64) error {
	if o.ro {
		return syscall.EROFS
	}
	if n < 0 {
		return syscall.EINVAL
	}
	return unwrapErrno(o.f.Truncate(n))
}

func (o *osFile) SetTimes(atim, mtim time.Time, setA, setM bool) error {
	if o.ro {
		return syscall.EROFS
	}
	return futimens(o.f, atim, mtim, setA, setM)
}

// SetAppend accepts only the mode the file already has: os.File fixes it
// at open.
func (o *osFile) SetAppend(on bool) error {
	if on != o.append {
		return syscall.ENOTSUP
	}
	return nil
}

func (o *osFile) Sync() error     { return unwrapErrno(o.f.Sync()) }
func (o *osFile) Datasync() error { return unwrapErrno(o.f.Sync()) }

func (o *osFile) Allocate(off, n int64) error {
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
		return unwrapErrno(err)
	}
	if end := off + n; end > fi.Size() && end > off {
		return unwrapErrno(o.f.Truncate(end))
	}
	return nil
}

func (o *osFile) Advise(off, n int64, advice uint8) error {
	if advice > 5 {
		return syscall.EINVAL
	}
	return nil // advisory; nothing to do
}

func (o *osFile) Close() error { return o.f.Close() }
