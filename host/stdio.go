package host

import (
	"context"
	"io"
	"os"
	"syscall"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// stdinFile is fd 0. When the reader is an *os.File its descriptor is
// polled before each read (and by poll_oneoff), so that a guest waiting for
// input can be cancelled and a NONBLOCK guest gets EAGAIN; the host
// descriptor's own blocking mode is never changed.
type stdinFile struct {
	baseFile
	r  io.Reader
	fd int // -1 when r is not a file
	ft wasi.Filetype
	// nowait: fd is a pipe or socket, read with one non-blocking
	// preadv2(RWF_NOWAIT) rather than a poll probe and a read (see
	// stdin_nowait_linux.go); cleared if the kernel refuses it.
	nowait bool
}

func newStdin(r io.Reader) *stdinFile {
	if r == nil {
		r = eofReader{}
	}
	s := &stdinFile{r: r, fd: -1, ft: wasi.FiletypeCharacterDevice}
	if f, ok := r.(*os.File); ok {
		s.fd, s.ft = hostFd(f)
		if s.ft == wasi.FiletypeRegularFile {
			s.fd = -1 // a regular file never blocks: no readiness probe
		}
		s.nowait = s.fd >= 0 && nowaitCapable(f)
	}
	return s
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// hostFd returns f's descriptor without switching it to blocking mode (as
// (*os.File).Fd would) and the WASI filetype it should report.
func hostFd(f *os.File) (int, wasi.Filetype) {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(u uintptr) { fd = int(u) })
	}
	ft := wasi.FiletypeUnknown
	if fi, err := f.Stat(); err == nil {
		ft = filetypeOf(fi.Mode())
		if ft == wasi.FiletypeSocketStream {
			ft = wasi.FiletypeUnknown // a socket as stdio is not a guest socket
		}
	}
	return fd, ft
}

func (s *stdinFile) filetype() wasi.Filetype { return s.ft }

func (s *stdinFile) read(_ context.Context, bufs [][]byte) (int, error) {
	if s.nowait {
		n, err := readNowait(s.fd, bufs)
		if err != errNowaitUnsupported {
			return n, err
		}
		s.nowait = false
	}
	if s.fd >= 0 && !fdReadable(s.fd) {
		return 0, syscall.EAGAIN
	}
	// One Read only: a second could block after a short read.
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		n, err := s.r.Read(b)
		if err == io.EOF {
			return n, nil
		}
		return n, err
	}
	return 0, nil
}

func (s *stdinFile) write(context.Context, [][]byte) (int, error) { return 0, syscall.EBADF }
func (s *stdinFile) pollFd() (int, bool)                          { return s.fd, s.fd >= 0 }
func (s *stdinFile) stat() (filestat, error)                      { return filestat{filetype: s.ft}, nil }
func (s *stdinFile) close() error                                 { return nil }

// outFile is fd 1 or 2. Writes are always complete and blocking whatever
// NONBLOCK flag the guest set: Go's runtime throws if a write to stdout or
// stderr fails, and EAGAIN there would be a failure. It is never
// "not ready" for poll_oneoff.
type outFile struct {
	baseFile
	w  io.Writer
	ft wasi.Filetype
}

func newOut(w io.Writer) *outFile {
	if w == nil {
		w = io.Discard
	}
	o := &outFile{w: w, ft: wasi.FiletypeCharacterDevice}
	if f, ok := w.(*os.File); ok {
		_, o.ft = hostFd(f)
	}
	return o
}

func (o *outFile) filetype() wasi.Filetype { return o.ft }

func (o *outFile) write(_ context.Context, bufs [][]byte) (int, error) {
	if len(bufs) == 1 {
		return o.w.Write(bufs[0])
	}
	return writev(o.w, bufs)
}

func (o *outFile) read(context.Context, [][]byte) (int, error) { return 0, syscall.EBADF }
func (o *outFile) stat() (filestat, error)                     { return filestat{filetype: o.ft}, nil }
func (o *outFile) sync() error                                 { return nil }
func (o *outFile) datasync() error                             { return nil }
func (o *outFile) close() error                                { return nil }
