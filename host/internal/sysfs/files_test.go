//go:build linux

package sysfs

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

func wantErrno(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func pread(t *testing.T, f File, off int64, sizes ...int) string {
	t.Helper()
	bufs := make([][]byte, len(sizes))
	for i, n := range sizes {
		bufs[i] = make([]byte, n)
	}
	n, err := f.Pread(bufs, off)
	if err != nil {
		t.Fatalf("pread at %d: %v", off, err)
	}
	var s []byte
	for _, b := range bufs {
		s = append(s, b...)
	}
	return string(s[:n])
}

// TestFileOps: what a guest relies on for a regular file opened through a
// preopen, in both implementations: vectored reads and writes, positional
// I/O that leaves the offset alone, seek, stat, truncate, allocate, sync,
// times, advice; on a read-only mount nothing changes.
func TestFileOps(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := newSandbox(t)
			d, err := im.open(s.root, false)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			f, err := d.OpenAt("f", OpenArgs{Read: true, Write: true, Create: true, Excl: true, Sync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Filetype() != wasi.FiletypeRegularFile {
				t.Errorf("filetype %v", f.Filetype())
			}
			if _, ok := f.PollFd(); ok {
				t.Error("a regular file asks to be polled")
			}
			if n, err := f.Write([][]byte{[]byte("hello"), nil, []byte(" world")}); n != 11 || err != nil {
				t.Fatalf("write: %d %v", n, err)
			}
			if n, err := f.Write([][]byte{[]byte("!")}); n != 1 || err != nil {
				t.Fatalf("write: %d %v", n, err)
			}
			st, err := f.Stat()
			if err != nil || st.Filetype != wasi.FiletypeRegularFile || st.Size != 12 || st.Nlink != 1 {
				t.Fatalf("stat %+v %v", st, err)
			}
			if at, _ := d.StatAt("f", false); at.Ino != st.Ino || at.Dev != st.Dev || st.Ino == 0 {
				t.Errorf("fd stat and path stat disagree: %+v %+v", st, at)
			}
			if got := pread(t, f, 6, 3, 0, 10); got != "world!" {
				t.Errorf("pread = %q", got)
			}
			if got := pread(t, f, 100, 4); got != "" {
				t.Errorf("pread past the end = %q", got)
			}
			if pos, err := f.Seek(0, io.SeekCurrent); pos != 12 || err != nil {
				t.Errorf("pread moved the offset to %d (%v)", pos, err)
			}
			if _, err := f.Pread([][]byte{make([]byte, 1)}, -1); err == nil {
				t.Error("pread at a negative offset succeeded")
			}
			if n, err := f.Pwrite([][]byte{[]byte("HE"), []byte("L")}, 0); n != 3 || err != nil {
				t.Fatalf("pwrite: %d %v", n, err)
			}
			if _, err := f.Pwrite([][]byte{[]byte("x")}, -1); err == nil {
				t.Error("pwrite at a negative offset succeeded")
			}
			if pos, err := f.Seek(-6, io.SeekEnd); pos != 6 || err != nil {
				t.Fatalf("seek: %d %v", pos, err)
			}
			a, b := make([]byte, 2), make([]byte, 10)
			if n, err := f.Read([][]byte{a, b}); n != 6 || err != nil || string(a)+string(b[:4]) != "world!" {
				t.Fatalf("readv: %d %v %q %q", n, err, a, b)
			}
			if n, err := f.Read([][]byte{b}); n != 0 || err != nil {
				t.Errorf("read at EOF: %d %v", n, err)
			}
			if _, err := f.Seek(-1, io.SeekStart); err == nil {
				t.Error("seek before the start succeeded")
			}
			content := func() string {
				t.Helper()
				c, err := os.ReadFile(filepath.Join(s.root, "f"))
				if err != nil {
					t.Fatal(err)
				}
				return string(c)
			}
			if c := content(); c != "HELlo world!" {
				t.Fatalf("file holds %q", c)
			}
			if err := f.SetSize(5); err != nil || content() != "HELlo" {
				t.Fatalf("truncate: %v %q", err, content())
			}
			if err := f.SetSize(7); err != nil || content() != "HELlo\x00\x00" {
				t.Fatalf("extend: %v %q", err, content())
			}
			wantErrno(t, "negative size", f.SetSize(-1), syscall.EINVAL)
			// fd_allocate: the range is backed afterwards, the file grows
			// to cover it and never shrinks.
			if err := f.Allocate(10, 6); err != nil {
				t.Fatal(err)
			}
			if st, _ := f.Stat(); st.Size != 16 {
				t.Errorf("size after allocate(10, 6) = %d", st.Size)
			}
			if err := f.Allocate(0, 1); err != nil {
				t.Fatal(err)
			}
			if st, _ := f.Stat(); st.Size != 16 {
				t.Errorf("allocate inside the file changed its size to %d", st.Size)
			}
			wantErrno(t, "allocate at a negative offset", f.Allocate(-1, 1), syscall.EINVAL)
			wantErrno(t, "allocate of nothing", f.Allocate(0, 0), syscall.EINVAL)
			for adv := uint8(0); adv <= 5; adv++ {
				if err := f.Advise(0, 0, adv); err != nil {
					t.Errorf("advice %d: %v", adv, err)
				}
			}
			wantErrno(t, "unknown advice", f.Advise(0, 0, 6), syscall.EINVAL)
			if err := f.Sync(); err != nil {
				t.Error(err)
			}
			if err := f.Datasync(); err != nil {
				t.Error(err)
			}
			at, mt := time.Unix(1_000_000, 123), time.Unix(2_000_000, 456)
			if err := f.SetTimes(at, mt, true, true); err != nil {
				t.Fatal(err)
			}
			if st, _ := f.Stat(); st.Atim != uint64(at.UnixNano()) || st.Mtim != uint64(mt.UnixNano()) {
				t.Errorf("times %d %d, want %d %d", st.Atim, st.Mtim, at.UnixNano(), mt.UnixNano())
			}
			if err := f.SetTimes(time.Time{}, time.Unix(3_000_000, 0), false, true); err != nil {
				t.Fatal(err)
			}
			if st, _ := f.Stat(); st.Atim != uint64(at.UnixNano()) || st.Mtim != uint64(time.Unix(3_000_000, 0).UnixNano()) {
				t.Errorf("setting mtime only: %d %d", st.Atim, st.Mtim)
			}
			if err := f.SetAppend(false); err != nil {
				t.Errorf("keeping append off: %v", err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err == nil {
				t.Error("closing twice succeeded")
			}

			// Append mode: writes and pwrites go to the end (as pwrite(2)
			// on Linux), whatever the offset.
			ap, err := d.OpenAt("log", OpenArgs{Write: true, Create: true, Append: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ap.Write([][]byte{[]byte("abc")}); err != nil {
				t.Fatal(err)
			}
			if _, err := ap.Pwrite([][]byte{[]byte("X"), []byte("Y")}, 0); err != nil {
				t.Fatal(err)
			}
			if err := ap.SetAppend(true); err != nil {
				t.Errorf("keeping append on: %v", err)
			}
			ap.Close()
			if b, _ := os.ReadFile(filepath.Join(s.root, "log")); string(b) != "abcXY" {
				t.Errorf("append file holds %q, want abcXY", b)
			}

			// Read-only mount: the file opens for reading, nothing changes it.
			ro, err := im.open(s.root, true)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			before := content()
			g, err := ro.OpenAt("f", rd)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			wantErrno(t, "ro truncate", g.SetSize(1), syscall.EROFS)
			wantErrno(t, "ro times", g.SetTimes(at, mt, true, true), syscall.EROFS)
			wantErrno(t, "ro allocate", g.Allocate(0, 100), syscall.EROFS)
			if _, err := g.Write([][]byte{[]byte("x")}); err == nil {
				t.Error("write to a file opened read-only succeeded")
			}
			wantErrno(t, "ro dir times", ro.SetTimes(at, mt, true, true), syscall.EROFS)
			wantErrno(t, "ro open for writing", openErr(ro, "f", OpenArgs{Write: true}), syscall.EROFS)
			if c := content(); c != before {
				t.Errorf("read-only mount changed the file: %q", c)
			}
		})
	}
}

// TestDirAsFile: a preopened directory and one opened through it answer
// the fd_* calls a guest makes on a directory descriptor: stat, sync,
// set_times and readdir work; byte I/O fails with EISDIR.
func TestDirAsFile(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := newSandbox(t)
			d, err := im.open(s.root, false)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			sub, err := d.OpenAt("sub", rd)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			sd, ok := sub.(Dir)
			if !ok {
				t.Fatalf("opening a directory gave a %T", sub)
			}
			for name, dir := range map[string]Dir{"preopen": d, "sub": sd} {
				if dir.Filetype() != wasi.FiletypeDirectory {
					t.Errorf("%s: filetype %v", name, dir.Filetype())
				}
				st, err := dir.Stat()
				if err != nil || st.Filetype != wasi.FiletypeDirectory || st.Ino == 0 {
					t.Errorf("%s: stat %+v %v", name, st, err)
				}
				if err := dir.Sync(); err != nil {
					t.Errorf("%s: sync %v", name, err)
				}
				if err := dir.Datasync(); err != nil {
					t.Errorf("%s: datasync %v", name, err)
				}
				mt := time.Unix(1_500_000_000, 789)
				if err := dir.SetTimes(time.Time{}, mt, false, true); err != nil {
					t.Errorf("%s: set_times %v", name, err)
				} else if st, _ := dir.Stat(); st.Mtim != uint64(mt.UnixNano()) {
					t.Errorf("%s: mtime %d, want %d", name, st.Mtim, mt.UnixNano())
				}
				buf := [][]byte{make([]byte, 4)}
				_, rerr := dir.Read(buf)
				_, werr := dir.Write(buf)
				_, prerr := dir.Pread(buf, 0)
				_, pwerr := dir.Pwrite(buf, 0)
				_, serr := dir.Seek(0, io.SeekStart)
				for what, err := range map[string]error{"read": rerr, "write": werr, "pread": prerr, "pwrite": pwerr,
					"seek": serr, "truncate": dir.SetSize(0), "allocate": dir.Allocate(0, 1)} {
					wantErrno(t, name+" "+what, err, syscall.EISDIR)
				}
				wantErrno(t, name+" set append", dir.SetAppend(true), syscall.ENOTSUP)
				if err := dir.Advise(0, 0, 0); err != nil {
					t.Errorf("%s: advise %v", name, err)
				}
				if _, ok := dir.PollFd(); ok {
					t.Errorf("%s: a directory asks to be polled", name)
				}
			}
			if sd.ReadOnly() {
				t.Error("a directory under a writable preopen is read-only")
			}
			if st, _ := d.StatAt("sub", true); st.Mtim != uint64(time.Unix(1_500_000_000, 789).UnixNano()) {
				t.Error("set_times on the opened directory did not reach it")
			}
			ents, err := sd.List()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]wasi.Filetype{}
			for _, e := range ents {
				got[e.Name] = e.Type
			}
			want := map[string]wasi.Filetype{".": wasi.FiletypeDirectory, "..": wasi.FiletypeDirectory,
				"deep": wasi.FiletypeDirectory, "f": wasi.FiletypeRegularFile}
			if len(got) != len(want) {
				t.Errorf("sub lists %v", got)
			}
			for n, ft := range want {
				if got[n] != ft {
					t.Errorf("sub lists %q as %v, want %v", n, got[n], ft)
				}
			}
			// Entry types of the preopen: links are links, not their targets.
			ents, _ = d.List()
			for _, e := range ents {
				if e.Name == "abs" && e.Type != wasi.FiletypeSymbolicLink {
					t.Errorf("symlink listed as %v", e.Type)
				}
			}
			if err := sd.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSpecialFiles: a FIFO opens without waiting for the other end, is
// polled (PollFd) and returns EAGAIN instead of blocking the host; sockets
// and devices report their own filetypes in stat and listings.
func TestSpecialFiles(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := newSandbox(t)
			fifo := filepath.Join(s.root, "fifo")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := im.open(s.root, false)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			// No writer yet: opening must not block.
			type opened struct {
				f   File
				err error
			}
			ch := make(chan opened, 1)
			go func() {
				f, err := d.OpenAt("fifo", rd)
				ch <- opened{f, err}
			}()
			var r File
			select {
			case o := <-ch:
				if o.err != nil {
					t.Fatal(o.err)
				}
				r = o.f
			case <-time.After(5 * time.Second):
				// Unblock the open before failing.
				if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
					defer w.Close()
				}
				t.Fatal("opening a FIFO without a writer blocked")
			}
			defer r.Close()
			if fd, ok := r.PollFd(); !ok || fd < 0 {
				t.Fatalf("a FIFO is not polled: %d %v", fd, ok)
			}
			w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			buf := make([]byte, 16)
			if _, err := r.Read([][]byte{buf}); !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("read of an empty FIFO: %v, want EAGAIN", err)
			}
			if _, err := w.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if n, err := r.Read([][]byte{buf[:2], buf[2:]}); err != nil || string(buf[:n]) != "ping" {
				t.Fatalf("read %q %v", buf[:n], err)
			}

			// Writing end through the capability.
			hr, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer hr.Close()
			wf, err := d.OpenAt("fifo", OpenArgs{Follow: true, Write: true})
			if err != nil {
				t.Fatal(err)
			}
			defer wf.Close()
			if n, err := wf.Write([][]byte{[]byte("po"), []byte("ng")}); n != 4 || err != nil {
				t.Fatalf("write to FIFO: %d %v", n, err)
			}
			if n, err := hr.Read(buf); err != nil || string(buf[:n]) != "pong" {
				t.Fatalf("host read %q %v", buf[:n], err)
			}

			l, err := net.Listen("unix", filepath.Join(s.root, "sock"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if st, err := d.StatAt("sock", false); err != nil || st.Filetype != wasi.FiletypeSocketStream {
				t.Errorf("socket stat %v %v", st.Filetype, err)
			}
			ents, _ := d.List()
			types := map[string]wasi.Filetype{}
			for _, e := range ents {
				types[e.Name] = e.Type
			}
			if types["sock"] != wasi.FiletypeSocketStream || types["fifo"] != wasi.FiletypeUnknown {
				t.Errorf("listed sock as %v, fifo as %v", types["sock"], types["fifo"])
			}

			dev, err := im.open("/dev", true)
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Close()
			if st, err := dev.StatAt("null", true); err != nil || st.Filetype != wasi.FiletypeCharacterDevice {
				t.Errorf("/dev/null stat %v %v", st.Filetype, err)
			}
			null, err := dev.OpenAt("null", rd)
			if err != nil {
				t.Fatal(err)
			}
			defer null.Close()
			if null.Filetype() != wasi.FiletypeCharacterDevice {
				t.Errorf("/dev/null filetype %v", null.Filetype())
			}
			if n, err := null.Read([][]byte{buf}); n != 0 || err != nil {
				t.Errorf("read /dev/null: %d %v", n, err)
			}
		})
	}
}

// TestBadPaths: paths that can never name anything inside are refused
// before any lookup, with the errno POSIX gives; a preopen must be a
// directory that exists.
func TestBadPaths(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := newSandbox(t)
			d, err := im.open(s.root, false)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			for p, want := range map[string]error{
				"":                                syscall.ENOENT,
				"a\x00b":                          syscall.EINVAL,
				strings.Repeat("a/", MaxPath/2+1): syscall.ENAMETOOLONG,
				"/sub/f":                          wasi.ErrPathEscapes,
			} {
				_, err := d.StatAt(p, true)
				wantErrno(t, "stat "+strings.ToValidUTF8(p[:min(len(p), 10)], "?"), err, want)
				wantErrno(t, "open", openErr(d, p, rd), want)
			}
			if _, err := im.open(filepath.Join(s.root, "missing"), false); !errors.Is(err, syscall.ENOENT) {
				t.Errorf("preopen of a missing directory: %v", err)
			}
			if _, err := im.open(filepath.Join(s.root, "sub", "f"), false); err == nil {
				t.Error("a regular file opened as a preopen")
			}
		})
	}
}

// TestReadvWritev: vectored I/O over plain readers and writers stops at
// the first short transfer and reports bytes already moved rather than a
// later error, as readv(2)/writev(2) do.
func TestReadvWritev(t *testing.T) {
	a, b := make([]byte, 3), make([]byte, 3)
	if n, err := Readv(strings.NewReader("abcd"), [][]byte{nil, a, b}); n != 4 || err != nil || string(a)+string(b[:1]) != "abcd" {
		t.Errorf("readv %d %v", n, err)
	}
	if n, err := Readv(strings.NewReader(""), [][]byte{a}); n != 0 || err != nil {
		t.Errorf("readv at EOF: %d %v", n, err)
	}
	boom := errors.New("boom")
	if n, err := Readv(io.MultiReader(strings.NewReader("ab"), &failReader{boom}), [][]byte{make([]byte, 2), a}); n != 2 || err != nil {
		t.Errorf("readv with a late error: %d %v", n, err)
	}
	if _, err := Readv(&failReader{boom}, [][]byte{a}); err != boom {
		t.Errorf("readv with an immediate error: %v", err)
	}
	var sb strings.Builder
	if n, err := Writev(&sb, [][]byte{[]byte("ab"), nil, []byte("c")}); n != 3 || err != nil || sb.String() != "abc" {
		t.Errorf("writev %d %v %q", n, err, sb.String())
	}
	lw := &limitWriter{n: 3}
	if n, err := Writev(lw, [][]byte{[]byte("ab"), []byte("cd"), []byte("ef")}); n != 3 || err != nil {
		t.Errorf("writev with a late error: %d %v", n, err)
	}
	if _, err := Writev(&limitWriter{}, [][]byte{[]byte("a")}); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writev with an immediate error: %v", err)
	}
}

type failReader struct{ err error }

func (r *failReader) Read([]byte) (int, error) { return 0, r.err }

// limitWriter accepts n bytes, then fails with ENOSPC.
type limitWriter struct{ n int }

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, syscall.ENOSPC
	}
	w.n -= len(p)
	return len(p), nil
}

// sortedNames lists a directory's entry names in order.
func sortedNames(t *testing.T, d Dir) []string {
	t.Helper()
	ents, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	return names
}

// TestFSDir: a WithFS mount (NewFSDir) is readable like a directory of
// the host — open, read, pread, seek, stat, list, subdirectories — and
// every change fails with EROFS; paths are checked as for host
// directories and cannot climb above the mount point.
func TestFSDir(t *testing.T) {
	mtime := time.Unix(1_700_000_000, 42)
	fsys := fstest.MapFS{
		"hosts":     {Data: []byte("127.0.0.1 localhost\n"), ModTime: mtime},
		"dir/a.txt": {Data: []byte("alpha")},
		"dir/sub/b": {Data: []byte("b")},
	}
	d := NewFSDir(fsys)
	defer d.Close()
	if !d.ReadOnly() || d.Filetype() != wasi.FiletypeDirectory {
		t.Fatal("a WithFS mount is not a read-only directory")
	}
	if st, err := d.Stat(); err != nil || st.Filetype != wasi.FiletypeDirectory {
		t.Fatalf("stat of the mount: %+v %v", st, err)
	}
	f, err := d.OpenAt("hosts", rd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAll(t, f); got != "127.0.0.1 localhost\n" {
		t.Fatalf("read %q", got)
	}
	if got := pread(t, f, 10, 4, 5); got != "localhost" {
		t.Errorf("pread %q", got)
	}
	if got := pread(t, f, 100, 4); got != "" {
		t.Errorf("pread past the end %q", got)
	}
	wantErrno(t, "pread at a negative offset", func() error { _, err := f.Pread([][]byte{make([]byte, 1)}, -1); return err }(), syscall.EINVAL)
	if pos, err := f.Seek(-10, io.SeekEnd); pos != 10 || err != nil {
		t.Fatalf("seek %d %v", pos, err)
	}
	if got := readAll(t, f); got != "localhost\n" {
		t.Errorf("read after seek %q", got)
	}
	wantErrno(t, "seek before the start", func() error { _, err := f.Seek(-1, io.SeekStart); return err }(), syscall.EINVAL)
	st, err := f.Stat()
	if err != nil || st.Filetype != wasi.FiletypeRegularFile || st.Size != 20 || st.Mtim != uint64(mtime.UnixNano()) || st.Nlink != 1 {
		t.Errorf("stat %+v %v", st, err)
	}
	if f.Filetype() != wasi.FiletypeRegularFile {
		t.Errorf("filetype %v", f.Filetype())
	}
	_, werr := f.Write([][]byte{[]byte("x")})
	_, pwerr := f.Pwrite([][]byte{[]byte("x")}, 0)
	wantErrno(t, "write", werr, syscall.EBADF)
	wantErrno(t, "pwrite", pwerr, syscall.EBADF)
	wantErrno(t, "truncate", f.SetSize(0), syscall.EROFS)
	wantErrno(t, "set times", f.SetTimes(mtime, mtime, true, true), syscall.EROFS)
	wantErrno(t, "allocate", f.Allocate(0, 1), syscall.EROFS)
	wantErrno(t, "append", f.SetAppend(true), syscall.ENOTSUP)
	if f.Sync() != nil || f.Datasync() != nil || f.Advise(0, 0, 0) != nil {
		t.Error("sync/datasync/advise on a read-only file failed")
	}
	if _, ok := f.PollFd(); ok {
		t.Error("a virtual file asks to be polled")
	}

	// Times: a file without a modification time reports 0, not year 1.
	if st, err := d.StatAt("dir/a.txt", true); err != nil || st.Size != 5 || st.Mtim != 0 {
		t.Errorf("stat dir/a.txt %+v %v", st, err)
	}
	// Subdirectories are directories of the mount; ".." stays inside.
	sub, err := d.OpenAt("dir", rd)
	if err != nil {
		t.Fatal(err)
	}
	sd := sub.(Dir)
	a, err := sd.OpenAt("a.txt", rd)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, a); got != "alpha" {
		t.Errorf("dir/a.txt read %q", got)
	}
	a.Close()
	if h, err := sd.OpenAt("sub/../../hosts", rd); err != nil {
		t.Errorf("a path back to the mount point: %v", err)
	} else {
		h.Close()
	}
	if got := strings.Join(sortedNames(t, sd), " "); got != ". .. a.txt sub" {
		t.Errorf("dir lists %s", got)
	}
	ents, _ := sd.List()
	for _, e := range ents {
		if want := map[string]wasi.Filetype{"a.txt": wasi.FiletypeRegularFile, "sub": wasi.FiletypeDirectory}[e.Name]; want != 0 && e.Type != want {
			t.Errorf("%s listed as %v", e.Name, e.Type)
		}
	}
	if got := strings.Join(sortedNames(t, d), " "); got != ". .. dir hosts" {
		t.Errorf("mount lists %s", got)
	}

	for _, c := range []struct {
		p    string
		a    OpenArgs
		want error
	}{
		{"hosts", OpenArgs{Write: true}, syscall.EROFS},
		{"new", OpenArgs{Create: true, Write: true}, syscall.EROFS},
		{"hosts", OpenArgs{Read: true, Trunc: true}, syscall.EROFS},
		{"hosts", OpenArgs{Read: true, Directory: true}, syscall.ENOTDIR},
		{"missing", rd, syscall.ENOENT},
		{"../hosts", rd, wasi.ErrPathEscapes},
		{"dir/../../hosts", rd, wasi.ErrPathEscapes},
		{"/hosts", rd, wasi.ErrPathEscapes},
		{"", rd, syscall.ENOENT},
		{"a\x00", rd, syscall.EINVAL},
	} {
		wantErrno(t, "open "+c.p, openErr(d, c.p, c.a), c.want)
	}
	wantErrno(t, "escape from a subdirectory", openErr(sd, "../../x", rd), wasi.ErrPathEscapes)

	// Every change is EROFS; a bad path reports its own errno first.
	now := time.Now()
	for what, err := range map[string]error{
		"mkdir":     d.MkdirAt("new"),
		"unlink":    d.UnlinkAt("hosts"),
		"rmdir":     d.RmdirAt("dir"),
		"rename":    d.RenameAt("hosts", d, "h2"),
		"link":      d.LinkAt("hosts", false, d, "h2"),
		"symlink":   d.SymlinkAt("hosts", "h2"),
		"set times": d.SetTimesAt("hosts", true, now, now, true, true),
		"dir times": d.SetTimes(now, now, true, true),
	} {
		wantErrno(t, what, err, syscall.EROFS)
	}
	wantErrno(t, "mkdir outside", d.MkdirAt("../x"), wasi.ErrPathEscapes)
	wantErrno(t, "unlink absolute", d.UnlinkAt("/hosts"), wasi.ErrPathEscapes)
	if _, err := d.ReadlinkAt("hosts"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("readlink of a file: %v (fs.FS has no links: EINVAL)", err)
	}
	if _, err := d.ReadlinkAt("missing"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("readlink of nothing: %v", err)
	}
	if _, err := d.StatAt("../x", true); !errors.Is(err, wasi.ErrPathEscapes) {
		t.Errorf("stat outside: %v", err)
	}
	buf := [][]byte{make([]byte, 1)}
	_, rerr := d.Read(buf)
	_, derr := d.Write(buf)
	_, prerr := d.Pread(buf, 0)
	_, pw := d.Pwrite(buf, 0)
	_, serr := d.Seek(0, 0)
	for what, err := range map[string]error{"read": rerr, "write": derr, "pread": prerr, "pwrite": pw,
		"seek": serr, "truncate": d.SetSize(0), "allocate": d.Allocate(0, 1)} {
		wantErrno(t, "mount "+what, err, syscall.EISDIR)
	}
	wantErrno(t, "mount append", d.SetAppend(true), syscall.ENOTSUP)
	if d.Sync() != nil || d.Datasync() != nil || d.Advise(0, 0, 0) != nil {
		t.Error("sync/datasync/advise on the mount failed")
	}
	if _, ok := d.PollFd(); ok {
		t.Error("the mount asks to be polled")
	}
}

// TestFSDirPlainFS: over an fs.FS whose files cannot seek or read at an
// offset, pread and seek are ESPIPE (as on a pipe) while reads work; the
// fs.FS's permission and validity errors reach the guest as EACCES and
// EINVAL.
func TestFSDirPlainFS(t *testing.T) {
	d := NewFSDir(plainFS{})
	f, err := d.OpenAt("file", rd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAll(t, f); got != "plain" {
		t.Errorf("read %q", got)
	}
	_, perr := f.Pread([][]byte{make([]byte, 1)}, 0)
	_, serr := f.Seek(0, io.SeekStart)
	wantErrno(t, "pread", perr, syscall.ESPIPE)
	wantErrno(t, "seek", serr, syscall.ESPIPE)
	wantErrno(t, "permission", openErr(d, "denied", rd), syscall.EACCES)
	wantErrno(t, "invalid", openErr(d, "invalid", rd), syscall.EINVAL)
	if _, err := d.List(); !errors.Is(err, syscall.EACCES) {
		t.Errorf("listing an unreadable directory: %v", err)
	}
}

// plainFS has one file, "file", with only Read, Stat and Close; "denied"
// and "invalid" fail with fs.ErrPermission and fs.ErrInvalid; the root
// directory cannot be read.
type plainFS struct{}

func (plainFS) Open(name string) (fs.File, error) {
	switch name {
	case "file":
		return &plainFile{Reader: strings.NewReader("plain")}, nil
	case "denied", ".":
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	case "invalid":
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

type plainFile struct{ io.Reader }

func (f *plainFile) Stat() (fs.FileInfo, error) { return plainInfo{}, nil }
func (f *plainFile) Close() error               { return nil }

type plainInfo struct{}

func (plainInfo) Name() string       { return "file" }
func (plainInfo) Size() int64        { return 5 }
func (plainInfo) Mode() fs.FileMode  { return 0o444 }
func (plainInfo) ModTime() time.Time { return time.Time{} }
func (plainInfo) IsDir() bool        { return false }
func (plainInfo) Sys() any           { return nil }
