//go:build linux

package sysfs

import (
	"io/fs"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// The Linux directory capability: a directory descriptor, and every path
// resolved by the kernel with openat2(2) RESOLVE_BENEATH (no "..", no
// absolute path, no symlink may take the lookup above the descriptor it
// starts from, checked atomically during the walk) and RESOLVE_NO_MAGICLINKS
// (no /proc/self/fd-style jumps).
//
// Operations on a path's last component that must not follow it (unlink,
// rmdir, mkdir, symlink, rename, link, lstat, readlink, times without
// SYMLINK_FOLLOW) open the parent directory that way and then act on the
// single last component with the *at system call, which never follows it.
// A last component of "." or ".." becomes part of the resolved directory
// (splitPath), so no *at call ever gets ".." as a name. A trailing slash
// makes POSIX follow the last component: those lookups go through openat2
// as a whole too. Where the kernel offers no beneath-checked way to follow
// a last symlink (linkat, utimensat), resolveLast follows it itself, each
// step resolved beneath the directory again.

const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// maxSymlinks bounds the symbolic links followed while resolving one path
// where this package follows them itself (resolveLast), as Linux's
// MAXSYMLINKS.
const maxSymlinks = 40

// maxRaceRetries bounds retries of openat2 when it reports EAGAIN: with
// RESOLVE_BENEATH the kernel gives up on a ".." step while a rename runs
// somewhere on the system and asks the caller to retry.
const maxRaceRetries = 64

var (
	openat2Once sync.Once
	openat2OK   bool
)

// haveOpenat2 reports whether openat2 with RESOLVE_BENEATH works here
// (Linux 5.6+, and not refused by a seccomp filter). dirfd is any
// directory descriptor to probe with.
func haveOpenat2(dirfd int) bool {
	openat2Once.Do(func() {
		fd, err := unix.Openat2(dirfd, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolveBeneath})
		if err == nil {
			unix.Close(fd)
			openat2OK = true
		}
	})
	return openat2OK
}

// OpenHostDir opens the host directory hostDir as a directory capability:
// the openat2 implementation when the kernel offers it, else os.Root
// (OpenRootDir).
func OpenHostDir(hostDir string, readOnly bool) (Dir, error) {
	fd, err := openDirFd(hostDir)
	if err != nil {
		return nil, err
	}
	if !haveOpenat2(fd) {
		unix.Close(fd)
		return OpenRootDir(hostDir, readOnly)
	}
	return newBeneathDir(fd, readOnly)
}

func openDirFd(hostDir string) (int, error) {
	for {
		fd, err := unix.Open(hostDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: hostDir, Err: err}
		}
		return fd, nil
	}
}

func newBeneathDir(fd int, ro bool) (*beneathDir, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &beneathDir{fd: fd, ro: ro, rootDev: st.Dev, rootIno: st.Ino}, nil
}

// beneathDir is a directory capability on Linux (see above).
type beneathDir struct {
	fd int // O_RDONLY|O_DIRECTORY
	ro bool
	// rootDev and rootIno identify the preopened directory this one was
	// opened under: its ".." entry in listings reports inode 0 rather
	// than reveal the host's directory above the preopen.
	rootDev uint64
	rootIno uint64
}

// openat2 opens p beneath dirfd. An escape attempt is wasi.ErrPathEscapes.
func openat2(dirfd int, p string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveBeneath}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, p, &how)
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN && i < maxRaceRetries:
			continue
		case err == unix.EXDEV, err == unix.EAGAIN:
			// EXDEV: the lookup would have left the directory (".."
			// above it, an absolute symlink). EAGAIN after the retries:
			// the kernel could not prove a ".." step safe.
			return -1, wasi.ErrPathEscapes
		}
		return -1, err
	}
}

// parent resolves the directory part of p beneath d. It returns a
// descriptor of that directory (d.fd itself for a one-component path;
// release it with d.release), the last component (never ".."), and whether
// p ended in slashes.
func (d *beneathDir) parent(p string) (pfd int, name string, trailing bool, err error) {
	if err := CheckPath(p); err != nil {
		return -1, "", false, err
	}
	dir, name, trailing := splitPath(p)
	if dir == "" || dir == "." {
		return d.fd, name, trailing, nil
	}
	pfd, err = openat2(d.fd, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", false, err
	}
	return pfd, name, trailing, nil
}

func (d *beneathDir) release(pfd int) {
	if pfd != d.fd && pfd >= 0 {
		unix.Close(pfd)
	}
}

// resolveLast resolves p beneath d following a symbolic link in the last
// component too, and returns the parent descriptor and name of what it
// ends at (not a symlink; "." when p names a directory through a trailing
// slash). The links are read and followed here, each step resolved beneath
// d again, because linkat and utimensat have no beneath-checked way to
// follow the last component.
func (d *beneathDir) resolveLast(p string) (pfd int, name string, err error) {
	for range maxSymlinks {
		pfd, name, trailing, err := d.parent(p)
		if err != nil {
			return -1, "", err
		}
		if trailing {
			// "x/" follows x and must be a directory: let openat2 do
			// both, beneath d.
			d.release(pfd)
			fd, err := openat2(d.fd, p, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				return -1, "", err
			}
			return fd, ".", nil
		}
		var st unix.Stat_t
		if err := fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			d.release(pfd)
			return -1, "", err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return pfd, name, nil
		}
		target, err := readlinkat(pfd, name)
		d.release(pfd)
		if err != nil {
			return -1, "", err
		}
		if target == "" {
			return -1, "", syscall.ENOENT
		}
		if target[0] == '/' {
			return -1, "", wasi.ErrPathEscapes
		}
		// The link's target is relative to the directory holding it.
		dir, _, _ := splitPath(p)
		if dir != "" {
			target = dir + "/" + target
		}
		if len(target) > MaxPath {
			return -1, "", syscall.ENAMETOOLONG
		}
		p = target
	}
	return -1, "", syscall.ELOOP
}

func fstatat(dirfd int, name string, st *unix.Stat_t, flags int) error {
	for {
		err := unix.Fstatat(dirfd, name, st, flags)
		if err != unix.EINTR {
			return err
		}
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if len(buf) > MaxPath {
			return "", syscall.ENAMETOOLONG
		}
		buf = make([]byte, 2*len(buf))
	}
}

func statOf(st *unix.Stat_t) Filestat {
	return Filestat{
		Dev:      st.Dev,
		Ino:      st.Ino,
		Filetype: filetypeOfMode(st.Mode),
		Nlink:    uint64(st.Nlink),
		Size:     uint64(st.Size),
		Atim:     uint64(st.Atim.Nano()),
		Mtim:     uint64(st.Mtim.Nano()),
		Ctim:     uint64(st.Ctim.Nano()),
	}
}

func filetypeOfMode(m uint32) wasi.Filetype {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return wasi.FiletypeRegularFile
	case unix.S_IFDIR:
		return wasi.FiletypeDirectory
	case unix.S_IFLNK:
		return wasi.FiletypeSymbolicLink
	case unix.S_IFSOCK:
		return wasi.FiletypeSocketStream
	case unix.S_IFCHR:
		return wasi.FiletypeCharacterDevice
	case unix.S_IFBLK:
		return wasi.FiletypeBlockDevice
	}
	return wasi.FiletypeUnknown
}

func (d *beneathDir) Filetype() wasi.Filetype            { return wasi.FiletypeDirectory }
func (d *beneathDir) ReadOnly() bool                     { return d.ro }
func (d *beneathDir) Read([][]byte) (int, error)         { return 0, syscall.EISDIR }
func (d *beneathDir) Write([][]byte) (int, error)        { return 0, syscall.EISDIR }
func (d *beneathDir) Pread([][]byte, int64) (int, error) { return 0, syscall.EISDIR }
func (d *beneathDir) Pwrite([][]byte, int64) (int, error) {
	return 0, syscall.EISDIR
}
func (d *beneathDir) Seek(int64, int) (int64, error)   { return 0, syscall.EISDIR }
func (d *beneathDir) SetSize(int64) error              { return syscall.EISDIR }
func (d *beneathDir) SetAppend(bool) error             { return syscall.ENOTSUP }
func (d *beneathDir) Allocate(int64, int64) error      { return syscall.EISDIR }
func (d *beneathDir) Advise(int64, int64, uint8) error { return nil }
func (d *beneathDir) PollFd() (int, bool)              { return -1, false }
func (d *beneathDir) Sync() error                      { return eintr(func() error { return unix.Fsync(d.fd) }) }
func (d *beneathDir) Datasync() error                  { return eintr(func() error { return unix.Fdatasync(d.fd) }) }

func (d *beneathDir) Close() error {
	fd := d.fd
	d.fd = -1
	if fd < 0 {
		return syscall.EBADF
	}
	return unix.Close(fd)
}

func (d *beneathDir) Stat() (Filestat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return Filestat{}, err
	}
	return statOf(&st), nil
}

func (d *beneathDir) SetTimes(atim, mtim time.Time, setA, setM bool) error {
	if d.ro {
		return syscall.EROFS
	}
	return futimensFd(d.fd, atim, mtim, setA, setM)
}

func (d *beneathDir) OpenAt(p string, a OpenArgs) (File, error) {
	if err := CheckPath(p); err != nil {
		return nil, err
	}
	if d.ro && (a.Write || a.Create || a.Trunc) {
		return nil, syscall.EROFS
	}
	flags := unix.O_RDONLY
	switch {
	case a.Read && a.Write:
		flags = unix.O_RDWR
	case a.Write:
		flags = unix.O_WRONLY
	}
	if a.Create {
		flags |= unix.O_CREAT
	}
	if a.Excl {
		flags |= unix.O_EXCL
	}
	if a.Trunc {
		flags |= unix.O_TRUNC
	}
	if a.Append {
		flags |= unix.O_APPEND
	}
	if a.Sync {
		flags |= unix.O_SYNC
	}
	if a.Directory {
		flags |= unix.O_DIRECTORY
	}
	if !a.Follow {
		flags |= unix.O_NOFOLLOW
	}
	// Opened non-blocking whatever it turns out to be, so that opening a
	// FIFO does not wait for a writer; regular files are switched back
	// below, FIFOs and devices stay non-blocking and are waited on with
	// poll (PollFd).
	flags |= unix.O_NONBLOCK | unix.O_NOCTTY
	var mode uint32
	if a.Create {
		mode = 0o644
	}
	fd, err := openat2(d.fd, p, flags, mode)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return &beneathDir{fd: fd, ro: d.ro, rootDev: d.rootDev, rootIno: d.rootIno}, nil
	case unix.S_IFREG:
		if err := setFl(fd, unix.O_NONBLOCK, false); err != nil {
			unix.Close(fd)
			return nil, err
		}
		return &fdFile{fd: fd, ft: wasi.FiletypeRegularFile, ro: d.ro}, nil
	}
	return &fdFile{fd: fd, ft: filetypeOfMode(st.Mode), ro: d.ro, special: true}, nil
}

func (d *beneathDir) StatAt(p string, follow bool) (Filestat, error) {
	pfd, name, trailing, err := d.parent(p)
	if err != nil {
		return Filestat{}, err
	}
	if !trailing {
		// The last component itself, not followed: one fstatat, which
		// cannot leave pfd. With follow, this is also the answer unless
		// it is a symlink (the common case: one system call).
		var st unix.Stat_t
		err := fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		d.release(pfd)
		if err != nil {
			return Filestat{}, err
		}
		if !follow || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return statOf(&st), nil
		}
	} else {
		d.release(pfd)
	}
	// Follow the last component (a symlink, or a trailing slash) beneath d.
	flags := unix.O_PATH
	if trailing {
		flags |= unix.O_DIRECTORY
	}
	fd, err := openat2(d.fd, p, flags, 0)
	if err != nil {
		return Filestat{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Filestat{}, err
	}
	return statOf(&st), nil
}

// mutate resolves p's parent for a modification.
func (d *beneathDir) mutate(p string) (pfd int, name string, trailing bool, err error) {
	if err := CheckPath(p); err != nil {
		return -1, "", false, err
	}
	if d.ro {
		return -1, "", false, syscall.EROFS
	}
	return d.parent(p)
}

// slashed gives the last component back its trailing slash, which the
// *at calls interpret (ENOTDIR for a non-directory) without following it.
func slashed(name string, trailing bool) string {
	if trailing && name != "." {
		return name + "/"
	}
	return name
}

func (d *beneathDir) MkdirAt(p string) error {
	pfd, name, _, err := d.mutate(p)
	if err != nil {
		return err
	}
	defer d.release(pfd)
	return eintr(func() error { return unix.Mkdirat(pfd, name, 0o755) })
}

func (d *beneathDir) UnlinkAt(p string) error {
	pfd, name, trailing, err := d.mutate(p)
	if err != nil {
		return err
	}
	defer d.release(pfd)
	return eintr(func() error { return unix.Unlinkat(pfd, slashed(name, trailing), 0) })
}

func (d *beneathDir) RmdirAt(p string) error {
	pfd, name, trailing, err := d.mutate(p)
	if err != nil {
		return err
	}
	defer d.release(pfd)
	return eintr(func() error { return unix.Unlinkat(pfd, slashed(name, trailing), unix.AT_REMOVEDIR) })
}

// peer returns dst as a beneathDir, or the errno for a directory this
// implementation cannot rename or link into.
func (d *beneathDir) peer(dst Dir) (*beneathDir, error) {
	if dst.ReadOnly() {
		return nil, syscall.EROFS
	}
	dd, ok := dst.(*beneathDir)
	if !ok {
		return nil, syscall.EXDEV
	}
	return dd, nil
}

func (d *beneathDir) RenameAt(oldp string, dst Dir, newp string) error {
	if err := CheckPath(newp); err != nil {
		return err
	}
	dd, err := d.peer(dst)
	if err != nil {
		if cerr := CheckPath(oldp); cerr != nil {
			return cerr
		}
		return err
	}
	opfd, oname, otrail, err := d.mutate(oldp)
	if err != nil {
		return err
	}
	defer d.release(opfd)
	npfd, nname, ntrail, err := dd.parent(newp)
	if err != nil {
		return err
	}
	defer dd.release(npfd)
	return eintr(func() error {
		return unix.Renameat(opfd, slashed(oname, otrail), npfd, slashed(nname, ntrail))
	})
}

func (d *beneathDir) LinkAt(oldp string, follow bool, dst Dir, newp string) error {
	if err := CheckPath(newp); err != nil {
		return err
	}
	dd, err := d.peer(dst)
	if err != nil {
		if cerr := CheckPath(oldp); cerr != nil {
			return cerr
		}
		return err
	}
	// The source must be writable too: a hard link made from a read-only
	// mount into a writable one would open the file for writing.
	opfd, oname, otrail, err := d.mutate(oldp)
	if err != nil {
		return err
	}
	if follow || otrail {
		d.release(opfd)
		opfd, oname, err = d.resolveLast(oldp)
		if err != nil {
			return err
		}
		if oname == "." {
			// A trailing slash named a directory: no hard links to
			// directories (linkat itself would follow the slash without
			// the beneath check).
			d.release(opfd)
			return syscall.EPERM
		}
	}
	defer d.release(opfd)
	npfd, nname, ntrail, err := dd.parent(newp)
	if err != nil {
		return err
	}
	defer dd.release(npfd)
	return eintr(func() error { return unix.Linkat(opfd, oname, npfd, slashed(nname, ntrail), 0) })
}

func (d *beneathDir) SymlinkAt(target, p string) error {
	pfd, name, trailing, err := d.mutate(p)
	if err != nil {
		return err
	}
	defer d.release(pfd)
	if err := checkTarget(target); err != nil {
		return err
	}
	return eintr(func() error { return unix.Symlinkat(target, pfd, slashed(name, trailing)) })
}

func (d *beneathDir) ReadlinkAt(p string) (string, error) {
	pfd, name, trailing, err := d.parent(p)
	if err != nil {
		return "", err
	}
	defer d.release(pfd)
	if trailing || name == "." {
		// "x/" or "x/.." names a directory (following x): not a link.
		fd, err := openat2(d.fd, p, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return "", err
		}
		unix.Close(fd)
		return "", syscall.EINVAL
	}
	return readlinkat(pfd, name)
}

func (d *beneathDir) SetTimesAt(p string, follow bool, atim, mtim time.Time, setA, setM bool) error {
	pfd, name, trailing, err := d.mutate(p)
	if err != nil {
		return err
	}
	flags := unix.AT_SYMLINK_NOFOLLOW
	if follow || trailing {
		d.release(pfd)
		if pfd, name, err = d.resolveLast(p); err != nil {
			return err
		}
	}
	defer d.release(pfd)
	ts := timespecs(atim, mtim, setA, setM)
	return eintr(func() error { return unix.UtimesNanoAt(pfd, name, ts[:], flags) })
}

func (d *beneathDir) List() ([]Dirent, error) {
	fd, err := openat2(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var self unix.Stat_t
	if err := unix.Fstat(fd, &self); err != nil {
		return nil, err
	}
	var parentIno uint64
	if self.Dev != d.rootDev || self.Ino != d.rootIno {
		var st unix.Stat_t
		if fstatat(fd, "..", &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			parentIno = st.Ino
		}
	}
	out := []Dirent{
		{Name: ".", Ino: self.Ino, Type: wasi.FiletypeDirectory},
		{Name: "..", Ino: parentIno, Type: wasi.FiletypeDirectory},
	}
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		out = parseDirents(fd, buf[:n], out)
	}
}

// parseDirents appends the linux_dirent64 records of b (except "." and
// "..") to out. A record of unknown type (DT_UNKNOWN, some file systems)
// is typed with an fstatat on dirfd.
func parseDirents(dirfd int, b []byte, out []Dirent) []Dirent {
	// struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
	const nameOff = 19
	for len(b) >= nameOff {
		ino := *(*uint64)(unsafe.Pointer(&b[0]))
		reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
		if reclen < nameOff || reclen > len(b) {
			break
		}
		typ := b[18]
		name := b[nameOff:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		b = b[reclen:]
		if s := string(name); s != "." && s != ".." {
			ft := direntType(typ)
			if typ == unix.DT_UNKNOWN {
				var st unix.Stat_t
				if fstatat(dirfd, s, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
					ft = filetypeOfMode(st.Mode)
				}
			}
			out = append(out, Dirent{Name: s, Ino: ino, Type: ft})
		}
	}
	return out
}

func direntType(t uint8) wasi.Filetype {
	switch t {
	case unix.DT_REG:
		return wasi.FiletypeRegularFile
	case unix.DT_DIR:
		return wasi.FiletypeDirectory
	case unix.DT_LNK:
		return wasi.FiletypeSymbolicLink
	case unix.DT_SOCK:
		return wasi.FiletypeSocketStream
	case unix.DT_CHR:
		return wasi.FiletypeCharacterDevice
	case unix.DT_BLK:
		return wasi.FiletypeBlockDevice
	}
	return wasi.FiletypeUnknown
}

// fdFile is a non-directory opened through a beneathDir: reads and writes
// are single vectored system calls on the descriptor. Regular files are
// blocking (they never wait long); special files (FIFOs, devices) stay
// non-blocking, return EAGAIN and are polled (PollFd).
type fdFile struct {
	fd      int
	ft      wasi.Filetype
	ro      bool // opened under a read-only mount
	special bool
}

func (f *fdFile) Filetype() wasi.Filetype { return f.ft }
func (f *fdFile) PollFd() (int, bool)     { return f.fd, f.special }

func (f *fdFile) Read(bufs [][]byte) (int, error) {
	for {
		var n int
		var err error
		if len(bufs) == 1 {
			n, err = unix.Read(f.fd, bufs[0])
		} else {
			n, err = unix.Readv(f.fd, bufs)
		}
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

func (f *fdFile) Write(bufs [][]byte) (int, error) {
	for {
		var n int
		var err error
		if len(bufs) == 1 {
			n, err = unix.Write(f.fd, bufs[0])
		} else {
			n, err = unix.Writev(f.fd, bufs)
		}
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

func (f *fdFile) Pread(bufs [][]byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	for {
		var n int
		var err error
		if len(bufs) == 1 {
			n, err = unix.Pread(f.fd, bufs[0], off)
		} else {
			n, err = unix.Preadv(f.fd, bufs, off)
		}
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

// Pwrite writes at off; on a file in append mode Linux appends instead
// (pwrite(2), BUGS), which WASI allows.
func (f *fdFile) Pwrite(bufs [][]byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	for {
		var n int
		var err error
		if len(bufs) == 1 {
			n, err = unix.Pwrite(f.fd, bufs[0], off)
		} else {
			n, err = unix.Pwritev(f.fd, bufs, off)
		}
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

func (f *fdFile) Seek(off int64, whence int) (int64, error) {
	return unix.Seek(f.fd, off, whence)
}

func (f *fdFile) Stat() (Filestat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return Filestat{}, err
	}
	return statOf(&st), nil
}

func (f *fdFile) SetSize(n int64) error {
	if f.ro {
		return syscall.EROFS
	}
	if n < 0 {
		return syscall.EINVAL
	}
	return eintr(func() error { return unix.Ftruncate(f.fd, n) })
}

func (f *fdFile) SetTimes(atim, mtim time.Time, setA, setM bool) error {
	if f.ro {
		return syscall.EROFS
	}
	return futimensFd(f.fd, atim, mtim, setA, setM)
}

func (f *fdFile) SetAppend(on bool) error { return setFl(f.fd, unix.O_APPEND, on) }

func (f *fdFile) Sync() error     { return eintr(func() error { return unix.Fsync(f.fd) }) }
func (f *fdFile) Datasync() error { return eintr(func() error { return unix.Fdatasync(f.fd) }) }

// Allocate reserves [off, off+n) (posix_fallocate), growing the file;
// where the file system cannot reserve space the file is only grown.
func (f *fdFile) Allocate(off, n int64) error {
	if f.ro {
		return syscall.EROFS
	}
	if off < 0 || n <= 0 || off+n < off {
		return syscall.EINVAL
	}
	err := eintr(func() error { return unix.Fallocate(f.fd, 0, off, n) })
	if err != unix.EOPNOTSUPP {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return err
	}
	if off+n > st.Size {
		return eintr(func() error { return unix.Ftruncate(f.fd, off+n) })
	}
	return nil
}

func (f *fdFile) Advise(off, n int64, advice uint8) error {
	if advice > 5 {
		return syscall.EINVAL
	}
	return nil // advisory; nothing to do
}

func (f *fdFile) Close() error {
	fd := f.fd
	f.fd = -1
	if fd < 0 {
		return syscall.EBADF
	}
	return unix.Close(fd)
}

// setFl sets or clears file status flag bit on fd.
func setFl(fd, bit int, on bool) error {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	nfl := fl &^ bit
	if on {
		nfl |= bit
	}
	if nfl == fl {
		return nil
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, nfl)
	return err
}

func timespecs(atim, mtim time.Time, setA, setM bool) [2]unix.Timespec {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if setA {
		ts[0] = unix.NsecToTimespec(atim.UnixNano())
	}
	if setM {
		ts[1] = unix.NsecToTimespec(mtim.UnixNano())
	}
	return ts
}

// futimensFd sets fd's times with nanosecond precision, leaving the ones
// not asked for unchanged (UTIME_OMIT).
func futimensFd(fd int, atim, mtim time.Time, setA, setM bool) error {
	ts := timespecs(atim, mtim, setA, setM)
	// utimensat(fd, NULL, ts, 0) is futimens(3); x/sys has no wrapper
	// that passes a NULL path.
	return eintr(func() error {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	})
}

func eintr(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
