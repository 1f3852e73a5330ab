package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/network"
)

// Guest memory layout of the rights tests: paths at 1000+, an iovec at 100
// pointing at 5000 (16 bytes), results at 900, a filestat at 2000.
var rightsPaths = map[uint32]string{1000: "f", 1010: "g", 1020: "newd", 1030: "lnk", 1040: "newf", 1050: "sl", 1060: "d", 1070: "."}

func rightsPath(p string) (uint64, uint64) {
	for off, s := range rightsPaths {
		if s == p {
			return uint64(off), uint64(len(s))
		}
	}
	panic("no path " + p)
}

// rightsCase is one function call that needs right on the fd under test:
// a directory opened from the preopen (dir) or the regular file "f".
type rightsCase struct {
	fn    string
	right wasi.Rights
	dir   bool
	args  func(fd uint64) []uint64
}

func pathArgs(fd uint64, p string, rest ...uint64) []uint64 {
	ptr, n := rightsPath(p)
	return append([]uint64{fd, ptr, n}, rest...)
}

var rightsCases = []rightsCase{
	{"path_create_directory", wasi.RightPathCreateDirectory, true, func(fd uint64) []uint64 { return pathArgs(fd, "newd") }},
	{"path_filestat_get", wasi.RightPathFilestatGet, true, func(fd uint64) []uint64 {
		p, n := rightsPath("f")
		return []uint64{fd, 0, p, n, 2000}
	}},
	{"path_filestat_set_times", wasi.RightPathFilestatSetTimes, true, func(fd uint64) []uint64 {
		p, n := rightsPath("f")
		return []uint64{fd, 0, p, n, 0, 0, uint64(wasi.FstflagMtimNow)}
	}},
	{"path_link", wasi.RightPathLinkSource, true, func(fd uint64) []uint64 {
		p, n := rightsPath("f")
		q, m := rightsPath("lnk")
		return []uint64{fd, 0, p, n, 3, q, m}
	}},
	{"path_link", wasi.RightPathLinkTarget, true, func(fd uint64) []uint64 {
		p, n := rightsPath("f")
		q, m := rightsPath("lnk")
		return []uint64{3, 0, p, n, fd, q, m}
	}},
	{"path_open", wasi.RightPathOpen, true, func(fd uint64) []uint64 {
		p, n := rightsPath("f")
		return []uint64{fd, 0, p, n, 0, wasi.RightFdRead, 0, 0, 900}
	}},
	{"path_open", wasi.RightPathCreateFile, true, func(fd uint64) []uint64 {
		p, n := rightsPath("newf")
		return []uint64{fd, 0, p, n, uint64(wasi.OflagCreat), wasi.RightFdRead, 0, 0, 900}
	}},
	{"path_open", wasi.RightPathFilestatSetSize, true, func(fd uint64) []uint64 {
		p, n := rightsPath("f")
		return []uint64{fd, 0, p, n, uint64(wasi.OflagTrunc), 0, 0, 0, 900}
	}},
	{"path_readlink", wasi.RightPathReadlink, true, func(fd uint64) []uint64 { return pathArgs(fd, "sl", 5000, 16, 900) }},
	{"path_remove_directory", wasi.RightPathRemoveDirectory, true, func(fd uint64) []uint64 { return pathArgs(fd, "d") }},
	{"path_rename", wasi.RightPathRenameSource, true, func(fd uint64) []uint64 {
		q, m := rightsPath("g")
		return pathArgs(fd, "f", 3, q, m)
	}},
	{"path_rename", wasi.RightPathRenameTarget, true, func(fd uint64) []uint64 {
		q, m := rightsPath("g")
		return pathArgs(3, "f", fd, q, m)
	}},
	{"path_symlink", wasi.RightPathSymlink, true, func(fd uint64) []uint64 {
		p, n := rightsPath("f")
		return append([]uint64{p, n}, pathArgs(fd, "lnk")...)
	}},
	{"path_unlink_file", wasi.RightPathUnlinkFile, true, func(fd uint64) []uint64 { return pathArgs(fd, "f") }},
	{"fd_readdir", wasi.RightFdReaddir, true, func(fd uint64) []uint64 { return []uint64{fd, 5000, 100, 0, 900} }},
	{"fd_filestat_get", wasi.RightFdFilestatGet, true, func(fd uint64) []uint64 { return []uint64{fd, 2000} }},
	{"fd_filestat_set_times", wasi.RightFdFilestatSetTimes, true, func(fd uint64) []uint64 {
		return []uint64{fd, 0, 0, uint64(wasi.FstflagMtimNow)}
	}},
	{"fd_fdstat_set_flags", wasi.RightFdFdstatSetFlags, true, func(fd uint64) []uint64 { return []uint64{fd, 0} }},

	{"fd_read", wasi.RightFdRead, false, func(fd uint64) []uint64 { return []uint64{fd, 100, 1, 900} }},
	{"fd_write", wasi.RightFdWrite, false, func(fd uint64) []uint64 { return []uint64{fd, 100, 1, 900} }},
	{"fd_pread", wasi.RightFdSeek, false, func(fd uint64) []uint64 { return []uint64{fd, 100, 1, 0, 900} }},
	{"fd_pwrite", wasi.RightFdSeek, false, func(fd uint64) []uint64 { return []uint64{fd, 100, 1, 0, 900} }},
	{"fd_seek", wasi.RightFdSeek, false, func(fd uint64) []uint64 { return []uint64{fd, 1, uint64(wasi.WhenceSet), 900} }},
	{"fd_tell", wasi.RightFdTell, false, func(fd uint64) []uint64 { return []uint64{fd, 900} }},
	{"fd_advise", wasi.RightFdAdvise, false, func(fd uint64) []uint64 { return []uint64{fd, 0, 10, 0} }},
	{"fd_allocate", wasi.RightFdAllocate, false, func(fd uint64) []uint64 { return []uint64{fd, 0, 10} }},
	{"fd_datasync", wasi.RightFdDatasync, false, func(fd uint64) []uint64 { return []uint64{fd} }},
	{"fd_sync", wasi.RightFdSync, false, func(fd uint64) []uint64 { return []uint64{fd} }},
	{"fd_filestat_get", wasi.RightFdFilestatGet, false, func(fd uint64) []uint64 { return []uint64{fd, 2000} }},
	{"fd_filestat_set_size", wasi.RightFdFilestatSetSize, false, func(fd uint64) []uint64 { return []uint64{fd, 3} }},
	{"fd_filestat_set_times", wasi.RightFdFilestatSetTimes, false, func(fd uint64) []uint64 {
		return []uint64{fd, 0, 0, uint64(wasi.FstflagMtimNow)}
	}},
	{"fd_fdstat_set_flags", wasi.RightFdFdstatSetFlags, false, func(fd uint64) []uint64 {
		return []uint64{fd, uint64(wasi.FdflagAppend)}
	}},
}

// rightsHarness is a harness whose preopen (fd 3) holds the file "f"
// ("hello"), the directory "d" and the symlink "sl" -> "f".
func rightsHarness(t *testing.T) *fnHarness {
	h := newHarness(t, nil)
	for off, s := range rightsPaths {
		h.put(off, []byte(s))
	}
	iov := []byte{0x88, 0x13, 0, 0, 16, 0, 0, 0} // {5000, 16}
	h.put(100, iov)
	if err := os.WriteFile(filepath.Join(h.dir, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(h.dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(h.dir, "sl")); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRightsChecked: every fd_* and path_* call that needs a right
// succeeds with it and fails without it: ENOTCAPABLE, or EBADF for reading
// or writing an fd not opened for it.
func TestRightsChecked(t *testing.T) {
	for _, tc := range rightsCases {
		for _, have := range []bool{true, false} {
			h := rightsHarness(t)
			var fd uint64
			var e wasi.Errno
			if tc.dir {
				// Opened with every right, then the one under test dropped
				// with fd_fdstat_set_rights, as a guest gives rights up.
				p, n := rightsPath(".")
				e = h.call("path_open", 3, 0, p, n, uint64(wasi.OflagDirectory), wasi.RightsDirBase, wasi.RightsDirInheriting, 0, 900)
				if e == 0 && !have {
					e = h.call("fd_fdstat_set_rights", uint64(h.u32(900)), wasi.RightsDirBase&^tc.right, wasi.RightsDirInheriting)
				}
			} else {
				p, n := rightsPath("f")
				base := wasi.RightsFileBase
				if !have {
					base &^= tc.right
				}
				e = h.call("path_open", 3, 0, p, n, 0, base, 0, 0, 900)
			}
			if e != 0 {
				t.Fatalf("%s: opening the fd under test: errno %d", tc.fn, e)
			}
			fd = uint64(h.u32(900))
			got := h.call(tc.fn, tc.args(fd)...)
			want := wasi.ENOTCAPABLE
			if tc.right == wasi.RightFdRead || tc.right == wasi.RightFdWrite {
				want = wasi.EBADF
			}
			switch {
			case have && (got == wasi.ENOTCAPABLE || got == want):
				t.Errorf("%s with right %#x: errno %d", tc.fn, tc.right, got)
			case have && got != 0:
				t.Errorf("%s with right %#x failed for another reason: errno %d", tc.fn, tc.right, got)
			case !have && got != want:
				t.Errorf("%s without right %#x: errno %d, want %d", tc.fn, tc.right, got, want)
			}
		}
	}
}

func rightsOf(h *fnHarness, fd uint64) (base, inh wasi.Rights) {
	if e := h.call("fd_fdstat_get", fd, 2000); e != 0 {
		panic(e)
	}
	b, _ := h.m.Memory().ReadUint64Le(2008)
	i, _ := h.m.Memory().ReadUint64Le(2016)
	return b, i
}

// TestRightsOnlyShrink: what path_open hands out is within what was asked
// for and what the directory may pass on; fd_fdstat_set_rights can only
// drop rights; a directory never gets FD_SEEK.
func TestRightsOnlyShrink(t *testing.T) {
	h := rightsHarness(t)
	p, n := rightsPath(".")
	// Everything but FD_WRITE (opening a directory for writing is EISDIR).
	if e := h.call("path_open", 3, 0, p, n, uint64(wasi.OflagDirectory), wasi.RightsAll&^wasi.RightFdWrite, wasi.RightsAll, 0, 900); e != 0 {
		t.Fatal(e)
	}
	dir := uint64(h.u32(900))
	base, inh := rightsOf(h, dir)
	if base&wasi.RightFdSeek != 0 || base&^wasi.RightsDirBase != 0 {
		t.Errorf("directory base rights %#x exceed a directory's %#x", base, wasi.RightsDirBase)
	}
	if inh != wasi.RightsDirInheriting {
		t.Errorf("inheriting %#x, want the preopen's %#x", inh, wasi.RightsDirInheriting)
	}
	// Go opens directories for reading without PATH_FILESTAT_SET_SIZE and
	// then truncates files below them (os.Root.WriteFile): a directory
	// gets it from its parent anyway.
	if e := h.call("path_open", 3, 0, p, n, uint64(wasi.OflagDirectory), wasi.RightsDirBase&^wasi.RightPathFilestatSetSize, 0, 0, 900); e != 0 {
		t.Fatal(e)
	}
	if b, _ := rightsOf(h, uint64(h.u32(900))); b&wasi.RightPathFilestatSetSize == 0 {
		t.Error("a directory opened without PATH_FILESTAT_SET_SIZE did not get it from its parent")
	}
	if e := h.call("fd_fdstat_set_rights", dir, base|wasi.RightFdSeek, inh); e != wasi.ENOTCAPABLE {
		t.Errorf("growing base rights: errno %d", e)
	}
	// Drop FD_WRITE from what the directory passes on: opening for writing
	// below it is refused; opening for reading gets no FD_WRITE.
	if e := h.call("fd_fdstat_set_rights", dir, base, inh&^wasi.RightFdWrite); e != 0 {
		t.Fatal(e)
	}
	if e := h.call("fd_fdstat_set_rights", dir, base, inh); e != wasi.ENOTCAPABLE {
		t.Errorf("regaining an inheriting right: errno %d", e)
	}
	fp, fn := rightsPath("f")
	if e := h.call("path_open", dir, 0, fp, fn, 0, wasi.RightFdRead|wasi.RightFdWrite, 0, 0, 900); e != wasi.ENOTCAPABLE {
		t.Errorf("opening for writing without the inheriting right: errno %d", e)
	}
	if e := h.call("path_open", dir, 0, fp, fn, 0, wasi.RightsAll&^wasi.RightFdWrite, 0, 0, 900); e != 0 {
		t.Fatal(e)
	}
	if b, _ := rightsOf(h, uint64(h.u32(900))); b&^(wasi.RightsFileBase&^wasi.RightFdWrite) != 0 {
		t.Errorf("file rights %#x exceed what was asked and allowed", b)
	}
}

// TestRightsReadOnlyMount: a read-only mount reports no modifying rights,
// and a call that needs one gets EROFS, not ENOTCAPABLE.
func TestRightsReadOnlyMount(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, NewConfig().WithDir(dir, "/ro", ReadOnly)) // fd 3 "/ro", fd 4 "/"
	for off, s := range rightsPaths {
		h.put(off, []byte(s))
	}
	base, _ := rightsOf(h, 3)
	if base&wasi.RightsDirModify != 0 {
		t.Errorf("read-only preopen has modifying rights %#x", base&wasi.RightsDirModify)
	}
	fp, fn := rightsPath("f")
	gp, gn := rightsPath("g")
	for _, tc := range []struct {
		fn   string
		args []uint64
	}{
		{"path_unlink_file", []uint64{3, fp, fn}},
		{"path_create_directory", []uint64{3, gp, gn}},
		{"path_rename", []uint64{3, fp, fn, 4, gp, gn}},
		{"path_link", []uint64{3, 0, fp, fn, 4, gp, gn}},
		{"path_open", []uint64{3, 0, gp, gn, uint64(wasi.OflagCreat), wasi.RightFdWrite, 0, 0, 900}},
		{"path_open", []uint64{3, 0, fp, fn, 0, wasi.RightFdWrite, 0, 0, 900}},
	} {
		if e := h.call(tc.fn, tc.args...); e != wasi.EROFS {
			t.Errorf("%s%v on a read-only mount: errno %d, want EROFS", tc.fn, tc.args, e)
		}
	}
	if _, err := os.Stat(filepath.Join(h.dir, "g")); err == nil {
		t.Error("a file was moved or linked out of the read-only mount")
	}
}

// TestVirtualEtcPlacement: the user's directories are fds 3... in order;
// the virtual /etc exists only for a guest with a network, after them, and
// not when the guest mounts "/" or "/etc" itself.
func TestVirtualEtcPlacement(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	withNet := NewConfig().WithNetwork(&network.Default{Policy: network.PolicyFunc(allowLoopback)})
	for _, tc := range []struct {
		name string
		cfg  *Config
		want string // preopen names from fd 3 on
	}{
		{"no network", NewConfig().WithDir(a, "/a", ReadWrite), "/a"},
		{"no network, no dirs", NewConfig(), ""},
		{"Default without a policy", NewConfig().WithNetwork(&network.Default{}).WithDir(a, "/a", ReadWrite), "/a"},
		{"network", withNet.WithDir(a, "/a", ReadWrite).WithDir(b, "/b", ReadOnly), "/a /b /etc"},
		{"network, no dirs", withNet, "/etc"},
		{"network, own /etc", withNet.WithDir(a, "/etc", ReadOnly), "/etc"},
		{"network, own /", withNet.WithDir(a, "/", ReadWrite), "/"},
		{"network, own /etc/ssl", withNet.WithDir(a, "/etc/ssl", ReadOnly), "/etc/ssl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := preopenNames(t, tc.cfg); got != tc.want {
				t.Errorf("preopens %q, want %q", got, tc.want)
			}
		})
	}
}

// preopenNames lists the preopens as a guest's libc finds them: fd_prestat_get
// and fd_prestat_dir_name from fd 3 until the first EBADF.
func preopenNames(t *testing.T, cfg *Config) string {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	m, err := r.Instantiate(ctx, memoryModule)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newState(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.openPreopenedSockets(ctx); err != nil {
		t.Fatal(err)
	}
	var names []string
	for fd := uint64(3); ; fd++ {
		if e := s.fdPrestatGet(ctx, m, []uint64{fd, 0}); e == wasi.EBADF {
			break
		} else if e != 0 {
			t.Fatalf("fd_prestat_get(%d) = %d", fd, e)
		}
		n, _ := m.Memory().ReadUint32Le(4)
		if e := s.fdPrestatDirName(ctx, m, []uint64{fd, 100, uint64(n)}); e != 0 {
			t.Fatalf("fd_prestat_dir_name(%d) = %d", fd, e)
		}
		name, _ := m.Memory().Read(100, n)
		names = append(names, string(name))
	}
	return strings.Join(names, " ")
}
