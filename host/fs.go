package host

import (
	"context"
	"io"
	"io/fs"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/sysfs"
	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// The guest's files and directories live in internal/sysfs, which alone
// decides what a path may reach; this file puts them in the fd table.

// sysFile is the fd-table entry of a file or directory of a preopen: a
// sysfs.File, and for directories the same object as a sysfs.Dir.
type sysFile struct {
	f sysfs.File
	d sysfs.Dir // nil for a non-directory
}

func newSysFile(f sysfs.File) *sysFile {
	d, _ := f.(sysfs.Dir)
	return &sysFile{f: f, d: d}
}

func (s *sysFile) filetype() wasi.Filetype { return s.f.Filetype() }
func (s *sysFile) read(_ context.Context, bufs [][]byte) (int, error) {
	return s.f.Read(bufs)
}
func (s *sysFile) write(_ context.Context, bufs [][]byte) (int, error) {
	return s.f.Write(bufs)
}
func (s *sysFile) pread(bufs [][]byte, off int64) (int, error)  { return s.f.Pread(bufs, off) }
func (s *sysFile) pwrite(bufs [][]byte, off int64) (int, error) { return s.f.Pwrite(bufs, off) }
func (s *sysFile) seek(off int64, whence int) (int64, error)    { return s.f.Seek(off, whence) }
func (s *sysFile) setSize(size int64) error                     { return s.f.SetSize(size) }
func (s *sysFile) setTimes(atim, mtim time.Time, setA, setM bool) error {
	return s.f.SetTimes(atim, mtim, setA, setM)
}
func (s *sysFile) sync() error                             { return s.f.Sync() }
func (s *sysFile) datasync() error                         { return s.f.Datasync() }
func (s *sysFile) allocate(off, n int64) error             { return s.f.Allocate(off, n) }
func (s *sysFile) advise(off, n int64, advice uint8) error { return s.f.Advise(off, n, advice) }
func (s *sysFile) pollFd() (int, bool)                     { return s.f.PollFd() }
func (s *sysFile) close() error                            { return s.f.Close() }

func (s *sysFile) stat() (filestat, error) {
	st, err := s.f.Stat()
	if err != nil {
		return filestat{}, err
	}
	return fromSysStat(st), nil
}

func fromSysStat(st sysfs.Filestat) filestat {
	return filestat{
		dev: st.Dev, ino: st.Ino, filetype: st.Filetype, nlink: st.Nlink, size: st.Size,
		atim: st.Atim, mtim: st.Mtim, ctim: st.Ctim,
	}
}

// dirListing is the snapshot of a directory that fd_readdir pages through.
// It is taken at cookie 0, so a guest that rewinds sees fresh contents.
type dirListing struct {
	ents []sysfs.Dirent
}

// filetypeOf maps a Go file mode to a WASI filetype.
func filetypeOf(m fs.FileMode) wasi.Filetype { return sysfs.FiletypeOf(m) }

func writev(w io.Writer, bufs [][]byte) (int, error) { return sysfs.Writev(w, bufs) }

// nsTime converts WASI ns since the epoch to time.Time.
func nsTime(ns uint64) time.Time { return time.Unix(0, int64(ns)) }
