package host

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// preopenFd returns the fd of the preopen named name.
func (h *fnHarness) preopenFd(t *testing.T, name string) uint64 {
	t.Helper()
	for fd := uint64(3); fd < 10; fd++ {
		if h.call("fd_prestat_get", fd, 700) != 0 {
			continue
		}
		n := h.u32(704)
		if h.call("fd_prestat_dir_name", fd, 710, uint64(n)) != 0 {
			continue
		}
		if b, _ := h.m.Memory().Read(710, n); string(b) == name {
			return fd
		}
	}
	t.Fatalf("no preopen %q", name)
	return 0
}

// TestPreopenDirFunctions: fd_filestat_get, fd_sync and fd_filestat_set_times on a
// preopened directory act on that directory;
// on a read-only preopen set_times is EROFS and changes nothing.
func TestPreopenDirFunctions(t *testing.T) {
	ro := t.TempDir()
	h := newHarness(t, NewConfig().WithDir(ro, "/ro", ReadOnly))
	rw := h.preopenFd(t, "/")
	rofd := h.preopenFd(t, "/ro")
	if e := h.call("fd_filestat_get", rw, 400); e != 0 {
		t.Fatalf("fd_filestat_get: %d", e)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(h.dir, &st); err != nil {
		t.Fatal(err)
	}
	ino, _ := h.m.Memory().ReadUint64Le(400 + 8)
	if ft, _ := h.m.Memory().ReadByte(400 + 16); ft != wasi.FiletypeDirectory || ino != st.Ino {
		t.Errorf("preopen stat: filetype %d ino %d, want directory, %d", ft, ino, st.Ino)
	}
	if e := h.call("fd_sync", rw); e != 0 {
		t.Errorf("fd_sync on the preopen: %d", e)
	}
	// A directory has no FD_DATASYNC right (as in other WASI hosts).
	if e := h.call("fd_datasync", rw); e != wasi.ENOTCAPABLE {
		t.Errorf("fd_datasync on the preopen: %d, want ENOTCAPABLE", e)
	}
	const mtim = 1_650_000_000_111_222_333
	if e := h.call("fd_filestat_set_times", rw, 0, mtim, uint64(wasi.FstflagMtim)); e != 0 {
		t.Fatalf("fd_filestat_set_times: %d", e)
	}
	if fi, _ := os.Stat(h.dir); fi.ModTime().UnixNano() != mtim {
		t.Errorf("preopen mtime %d, want %d", fi.ModTime().UnixNano(), mtim)
	}
	if e := h.call("fd_filestat_get", rw, 400); e != 0 {
		t.Fatal(e)
	}
	if got, _ := h.m.Memory().ReadUint64Le(400 + 48); got != mtim {
		t.Errorf("fd_filestat_get mtim %d after set_times", got)
	}
	before, _ := os.Stat(ro)
	if e := h.call("fd_filestat_set_times", rofd, 0, mtim, uint64(wasi.FstflagMtim)); e != wasi.EROFS {
		t.Errorf("set_times on a read-only preopen: %d, want EROFS", e)
	}
	if after, _ := os.Stat(ro); !after.ModTime().Equal(before.ModTime()) {
		t.Error("a read-only preopen's mtime changed")
	}
	if e := h.call("fd_sync", rofd); e != 0 {
		t.Errorf("fd_sync on a read-only preopen: %d", e)
	}
}

// TestWithFSReads: a WithFS mount is read through the WASI functions like
// a host directory: path_open, fd_read, fd_seek, fd_filestat_get and
// fd_readdir; opening for writing is EROFS.
func TestWithFSReads(t *testing.T) {
	fsys := fstest.MapFS{"etc/motd": {Data: []byte("welcome to the mount\n")}}
	h := newHarness(t, NewConfig().WithFS("/v", fsys))
	v := h.preopenFd(t, "/v")
	open := func(p string, rights uint64, oflags uint16) (uint64, wasi.Errno) {
		h.put(1000, []byte(p))
		e := h.call("path_open", v, 1, 1000, uint64(len(p)), uint64(oflags), rights, rights, 0, 900)
		return uint64(h.u32(900)), e
	}
	fd, e := open("etc/motd", wasi.RightFdRead|wasi.RightFdSeek|wasi.RightFdFilestatGet, 0)
	if e != 0 {
		t.Fatalf("path_open: %d", e)
	}
	h.put(100, []byte{0x88, 0x13, 0, 0, 7, 0, 0, 0}) // {5000, 7}
	off := int64(-5)
	minus5 := uint64(off)
	if e := h.call("fd_read", fd, 100, 1, 200); e != 0 || h.u32(200) != 7 {
		t.Fatalf("fd_read: %d, %d bytes", e, h.u32(200))
	}
	if b, _ := h.m.Memory().Read(5000, 7); string(b) != "welcome" {
		t.Errorf("read %q", b)
	}
	if e := h.call("fd_seek", fd, minus5, uint64(wasi.WhenceEnd), 300); e != 0 {
		t.Fatalf("fd_seek: %d", e)
	}
	if e := h.call("fd_read", fd, 100, 1, 200); e != 0 {
		t.Fatal(e)
	}
	if b, _ := h.m.Memory().Read(5000, h.u32(200)); string(b) != "ount\n" {
		t.Errorf("read after seek %q", b)
	}
	if e := h.call("fd_filestat_get", fd, 400); e != 0 {
		t.Fatal(e)
	}
	if size, _ := h.m.Memory().ReadUint64Le(400 + 32); size != 21 {
		t.Errorf("size %d", size)
	}
	if _, e := open("etc/motd", wasi.RightFdRead|wasi.RightFdWrite, 0); e != wasi.EROFS {
		t.Errorf("open for writing: %d, want EROFS", e)
	}
	if _, e := open("new", wasi.RightFdWrite, wasi.OflagCreat); e != wasi.EROFS {
		t.Errorf("create: %d, want EROFS", e)
	}
	dir, e := open("etc", wasi.RightFdReaddir, wasi.OflagDirectory)
	if e != 0 {
		t.Fatalf("open etc: %d", e)
	}
	if e := h.call("fd_readdir", dir, 2000, 1000, 0, 200); e != 0 {
		t.Fatalf("fd_readdir: %d", e)
	}
	if b, _ := h.m.Memory().Read(2000, h.u32(200)); !strings.Contains(string(b), "motd") {
		t.Errorf("readdir lacks motd: %q", b)
	}
}
