package host

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// fsDir is a read-only directory capability over an fs.FS (WithFS). dir is
// the directory's path inside fsys ("." for the mount point). Paths are
// joined and cleaned lexically; one that climbs above the mount point is
// refused with EPERM like an os.Root escape.
type fsDir struct {
	baseFile
	fsys fs.FS
	dir  string
}

func (d *fsDir) resolve(p string) (string, error) {
	full := path.Join(d.dir, p)
	if !fs.ValidPath(full) {
		return "", wasi.ErrPathEscapes
	}
	return full, nil
}

func (d *fsDir) filetype() wasi.Filetype                      { return wasi.FiletypeDirectory }
func (d *fsDir) read(context.Context, [][]byte) (int, error)  { return 0, syscall.EISDIR }
func (d *fsDir) write(context.Context, [][]byte) (int, error) { return 0, syscall.EISDIR }
func (d *fsDir) advise(int64, int64, uint8) error             { return nil }
func (d *fsDir) setTimes(time.Time, time.Time, bool, bool) error {
	return syscall.EROFS
}
func (d *fsDir) sync() error     { return nil }
func (d *fsDir) datasync() error { return nil }

func (d *fsDir) stat() (filestat, error) { return d.statAt(".", true) }

func (d *fsDir) openAt(p string, a openArgs) (file, error) {
	if a.write || a.creat || a.trunc || a.append {
		return nil, syscall.EROFS
	}
	full, err := d.resolve(p)
	if err != nil {
		return nil, err
	}
	fi, err := fs.Stat(d.fsys, full)
	if err != nil {
		return nil, fsErr(err)
	}
	if fi.IsDir() {
		return &fsDir{fsys: d.fsys, dir: full}, nil
	}
	if a.directory {
		return nil, syscall.ENOTDIR
	}
	f, err := d.fsys.Open(full)
	if err != nil {
		return nil, fsErr(err)
	}
	return &fsFile{f: f, info: fi}, nil
}

func (d *fsDir) statAt(p string, _ bool) (filestat, error) {
	full, err := d.resolve(p)
	if err != nil {
		return filestat{}, err
	}
	fi, err := fs.Stat(d.fsys, full)
	if err != nil {
		return filestat{}, fsErr(err)
	}
	t := uint64(fi.ModTime().UnixNano())
	if fi.ModTime().IsZero() {
		t = 0
	}
	return filestat{filetype: filetypeOf(fi.Mode()), nlink: 1, size: uint64(fi.Size()), atim: t, mtim: t, ctim: t}, nil
}

func (d *fsDir) mkdirAt(string) error                       { return syscall.EROFS }
func (d *fsDir) unlinkAt(string) error                      { return syscall.EROFS }
func (d *fsDir) rmdirAt(string) error                       { return syscall.EROFS }
func (d *fsDir) renameAt(string, dirFile, string) error     { return syscall.EROFS }
func (d *fsDir) linkAt(string, bool, dirFile, string) error { return syscall.EROFS }
func (d *fsDir) symlinkAt(string, string) error             { return syscall.EROFS }
func (d *fsDir) readlinkAt(p string) (string, error) {
	if _, err := d.statAt(p, false); err != nil {
		return "", err
	}
	return "", syscall.EINVAL // fs.FS has no symlinks
}
func (d *fsDir) setTimesAt(string, bool, time.Time, time.Time, bool, bool) error {
	return syscall.EROFS
}

func (d *fsDir) list() ([]dirent, error) {
	des, err := fs.ReadDir(d.fsys, d.dir)
	if err != nil {
		return nil, fsErr(err)
	}
	out := make([]dirent, 0, len(des)+2)
	out = append(out, dirent{name: ".", typ: wasi.FiletypeDirectory}, dirent{name: "..", typ: wasi.FiletypeDirectory})
	for _, de := range des {
		out = append(out, dirent{name: de.Name(), typ: filetypeOf(de.Type())})
	}
	return out, nil
}

// fsFile is a file of an fs.FS: readable, seekable when the fs.File
// supports it, never writable.
type fsFile struct {
	baseFile
	f    fs.File
	info fs.FileInfo
}

func (f *fsFile) filetype() wasi.Filetype { return filetypeOf(f.info.Mode()) }

func (f *fsFile) read(_ context.Context, bufs [][]byte) (int, error) { return readv(f.f, bufs) }

func (f *fsFile) write(context.Context, [][]byte) (int, error) { return 0, syscall.EBADF }
func (f *fsFile) pwrite([][]byte, int64) (int, error)          { return 0, syscall.EBADF }

func (f *fsFile) pread(bufs [][]byte, off int64) (int, error) {
	ra, ok := f.f.(io.ReaderAt)
	if !ok {
		return 0, syscall.ESPIPE
	}
	if off < 0 {
		return 0, syscall.EINVAL
	}
	total := 0
	for _, b := range bufs {
		n, err := ra.ReadAt(b, off)
		total += n
		off += int64(n)
		if err != nil || n < len(b) {
			break
		}
	}
	return total, nil
}

func (f *fsFile) seek(off int64, whence int) (int64, error) {
	s, ok := f.f.(io.Seeker)
	if !ok {
		return 0, syscall.ESPIPE
	}
	n, err := s.Seek(off, whence)
	if err != nil {
		return 0, syscall.EINVAL
	}
	return n, nil
}

func (f *fsFile) stat() (filestat, error) {
	t := uint64(f.info.ModTime().UnixNano())
	if f.info.ModTime().IsZero() {
		t = 0
	}
	return filestat{filetype: f.filetype(), nlink: 1, size: uint64(f.info.Size()), atim: t, mtim: t, ctim: t}, nil
}

func (f *fsFile) setSize(int64) error { return syscall.EROFS }
func (f *fsFile) setTimes(time.Time, time.Time, bool, bool) error {
	return syscall.EROFS
}
func (f *fsFile) sync() error                      { return nil }
func (f *fsFile) datasync() error                  { return nil }
func (f *fsFile) advise(int64, int64, uint8) error { return nil }
func (f *fsFile) allocate(int64, int64) error      { return syscall.EROFS }
func (f *fsFile) close() error                     { return f.f.Close() }

// fsErr maps io/fs errors (which carry no errno) to host errnos.
func fsErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	}
	return unwrapErrno(err)
}
