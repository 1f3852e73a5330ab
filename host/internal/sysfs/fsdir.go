package sysfs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// NewFSDir returns a read-only directory capability over fsys (the virtual
// /etc of the DNS stub, or an embedder's Config.WithFS). The guest can read
// files and list directories; every modification fails with EROFS. fs.FS
// has no symbolic links.
func NewFSDir(fsys fs.FS) Dir { return &fsDir{fsys: fsys, dir: "."} }

// fsDir is a directory of an fs.FS. dir is its path inside fsys ("." for
// the mount point). Paths are joined and cleaned lexically; one that climbs
// above the mount point is refused like any escape.
type fsDir struct {
	fsys fs.FS
	dir  string
}

func (d *fsDir) resolve(p string) (string, error) {
	if err := CheckPath(p); err != nil {
		return "", err
	}
	full := path.Join(d.dir, p)
	if !fs.ValidPath(full) {
		return "", wasi.ErrPathEscapes
	}
	return full, nil
}

func (d *fsDir) Filetype() wasi.Filetype                         { return wasi.FiletypeDirectory }
func (d *fsDir) ReadOnly() bool                                  { return true }
func (d *fsDir) Read([][]byte) (int, error)                      { return 0, syscall.EISDIR }
func (d *fsDir) Write([][]byte) (int, error)                     { return 0, syscall.EISDIR }
func (d *fsDir) Pread([][]byte, int64) (int, error)              { return 0, syscall.EISDIR }
func (d *fsDir) Pwrite([][]byte, int64) (int, error)             { return 0, syscall.EISDIR }
func (d *fsDir) Seek(int64, int) (int64, error)                  { return 0, syscall.EISDIR }
func (d *fsDir) SetSize(int64) error                             { return syscall.EISDIR }
func (d *fsDir) SetTimes(time.Time, time.Time, bool, bool) error { return syscall.EROFS }
func (d *fsDir) SetAppend(bool) error                            { return syscall.ENOTSUP }
func (d *fsDir) Sync() error                                     { return nil }
func (d *fsDir) Datasync() error                                 { return nil }
func (d *fsDir) Allocate(int64, int64) error                     { return syscall.EISDIR }
func (d *fsDir) Advise(int64, int64, uint8) error                { return nil }
func (d *fsDir) PollFd() (int, bool)                             { return -1, false }
func (d *fsDir) Close() error                                    { return nil }
func (d *fsDir) Stat() (Filestat, error)                         { return d.StatAt(".", true) }

func (d *fsDir) OpenAt(p string, a OpenArgs) (File, error) {
	full, err := d.resolve(p)
	if err != nil {
		return nil, err
	}
	if a.Write || a.Create || a.Trunc || a.Append {
		return nil, syscall.EROFS
	}
	fi, err := fs.Stat(d.fsys, full)
	if err != nil {
		return nil, fsErr(err)
	}
	if fi.IsDir() {
		return &fsDir{fsys: d.fsys, dir: full}, nil
	}
	if a.Directory {
		return nil, syscall.ENOTDIR
	}
	f, err := d.fsys.Open(full)
	if err != nil {
		return nil, fsErr(err)
	}
	return &fsFile{f: f, info: fi}, nil
}

func (d *fsDir) StatAt(p string, _ bool) (Filestat, error) {
	full, err := d.resolve(p)
	if err != nil {
		return Filestat{}, err
	}
	fi, err := fs.Stat(d.fsys, full)
	if err != nil {
		return Filestat{}, fsErr(err)
	}
	return fsStat(fi), nil
}

func fsStat(fi fs.FileInfo) Filestat {
	t := uint64(fi.ModTime().UnixNano())
	if fi.ModTime().IsZero() {
		t = 0
	}
	return Filestat{Filetype: FiletypeOf(fi.Mode()), Nlink: 1, Size: uint64(fi.Size()), Atim: t, Mtim: t, Ctim: t}
}

// refuse validates p (so that a bad path reports the same errno as for a
// writable directory) and then refuses the modification.
func (d *fsDir) refuse(p string) error {
	if _, err := d.resolve(p); err != nil {
		return err
	}
	return syscall.EROFS
}

func (d *fsDir) MkdirAt(p string) error                      { return d.refuse(p) }
func (d *fsDir) UnlinkAt(p string) error                     { return d.refuse(p) }
func (d *fsDir) RmdirAt(p string) error                      { return d.refuse(p) }
func (d *fsDir) RenameAt(oldp string, _ Dir, _ string) error { return d.refuse(oldp) }
func (d *fsDir) LinkAt(oldp string, _ bool, _ Dir, _ string) error {
	return d.refuse(oldp)
}
func (d *fsDir) SymlinkAt(_, p string) error { return d.refuse(p) }
func (d *fsDir) SetTimesAt(p string, _ bool, _, _ time.Time, _, _ bool) error {
	return d.refuse(p)
}

func (d *fsDir) ReadlinkAt(p string) (string, error) {
	if _, err := d.StatAt(p, false); err != nil {
		return "", err
	}
	return "", syscall.EINVAL // fs.FS has no symlinks
}

func (d *fsDir) List() ([]Dirent, error) {
	des, err := fs.ReadDir(d.fsys, d.dir)
	if err != nil {
		return nil, fsErr(err)
	}
	out := make([]Dirent, 0, len(des)+2)
	out = append(out, Dirent{Name: ".", Type: wasi.FiletypeDirectory}, Dirent{Name: "..", Type: wasi.FiletypeDirectory})
	for _, de := range des {
		out = append(out, Dirent{Name: de.Name(), Type: FiletypeOf(de.Type())})
	}
	return out, nil
}

// fsFile is a file of an fs.FS: readable, seekable when the fs.File
// supports it, never writable.
type fsFile struct {
	f    fs.File
	info fs.FileInfo
}

func (f *fsFile) Filetype() wasi.Filetype                         { return FiletypeOf(f.info.Mode()) }
func (f *fsFile) Read(bufs [][]byte) (int, error)                 { return Readv(f.f, bufs) }
func (f *fsFile) Write([][]byte) (int, error)                     { return 0, syscall.EBADF }
func (f *fsFile) Pwrite([][]byte, int64) (int, error)             { return 0, syscall.EBADF }
func (f *fsFile) Stat() (Filestat, error)                         { return fsStat(f.info), nil }
func (f *fsFile) SetSize(int64) error                             { return syscall.EROFS }
func (f *fsFile) SetTimes(time.Time, time.Time, bool, bool) error { return syscall.EROFS }
func (f *fsFile) SetAppend(bool) error                            { return syscall.ENOTSUP }
func (f *fsFile) Sync() error                                     { return nil }
func (f *fsFile) Datasync() error                                 { return nil }
func (f *fsFile) Advise(int64, int64, uint8) error                { return nil }
func (f *fsFile) Allocate(int64, int64) error                     { return syscall.EROFS }
func (f *fsFile) PollFd() (int, bool)                             { return -1, false }
func (f *fsFile) Close() error                                    { return f.f.Close() }

func (f *fsFile) Pread(bufs [][]byte, off int64) (int, error) {
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

func (f *fsFile) Seek(off int64, whence int) (int64, error) {
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
