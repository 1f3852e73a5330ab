package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/internal/testenv"
)

// memoryModule is a hand-assembled wasm module that only exports one page
// of memory named "memory": enough to call host functions directly with a
// real api.Module.
var memoryModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x05, 0x03, 0x01, 0x00, 0x01, // memory section: 1 memory, min 1 page
	0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, // export "memory"
}

type fnHarness struct {
	s   *state
	m   api.Module
	ctx context.Context
	fns map[string]hostFunc
	dir string
}

func newHarness(t testing.TB, cfg *Config) *fnHarness {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	m, err := r.Instantiate(ctx, memoryModule)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if cfg == nil {
		cfg = NewConfig()
	}
	s, err := newState(cfg.WithDir(dir, "/", ReadWrite))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	h := &fnHarness{s: s, m: m, ctx: ctx, fns: map[string]hostFunc{}, dir: dir}
	for _, f := range s.preview1() {
		h.fns[f.name] = f
	}
	return h
}

func (h *fnHarness) call(name string, args ...uint64) wasi.Errno {
	f, ok := h.fns[name]
	if !ok {
		panic("no function " + name)
	}
	st := make([]uint64, max(len(args), 1))
	copy(st, args)
	return f.fn(h.ctx, h.m, st)
}

func (h *fnHarness) put(off uint32, b []byte) {
	if !h.m.Memory().Write(off, b) {
		panic("write out of range")
	}
}

func (h *fnHarness) u32(off uint32) uint32 {
	v, _ := h.m.Memory().ReadUint32Le(off)
	return v
}

// open calls path_open on fd 3 (the preopen) with path p.
func (h *fnHarness) open(p string, oflags uint16, rights uint64, lookup uint32) (uint32, wasi.Errno) {
	h.put(1000, []byte(p))
	e := h.call("path_open", 3, uint64(lookup), 1000, uint64(len(p)), uint64(oflags), rights, rights, 0, 900)
	return h.u32(900), e
}

func TestPathEscapes(t *testing.T) {
	h := newHarness(t, nil)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustSymlink := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(h.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(h.dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "sub", "f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustSymlink(filepath.Join(outside, "secret"), "abs")
	mustSymlink("../"+filepath.Base(outside)+"/secret", "rel")
	mustSymlink("chain2", "chain1")
	mustSymlink("sub/../../x", "chain2")
	mustSymlink("sub/f", "inside")
	mustSymlink("loop", "loop")

	read := wasi.RightFdRead
	for _, tc := range []struct {
		path   string
		oflags uint16
		lookup uint32
		want   wasi.Errno
	}{
		{"sub/f", 0, 1, wasi.ESUCCESS},
		{"inside", 0, 1, wasi.ESUCCESS},
		{"inside", 0, 0, wasi.ELOOP}, // O_NOFOLLOW on a symlink
		{"..", 0, 1, wasi.EPERM},
		{"../x", 0, 1, wasi.EPERM},
		{"sub/../../x", 0, 1, wasi.EPERM},
		{"sub/../sub/f", 0, 1, wasi.ESUCCESS},
		{"/etc/passwd", 0, 1, wasi.EPERM},
		{"abs", 0, 1, wasi.EPERM},
		{"rel", 0, 1, wasi.EPERM},
		{"chain1", 0, 1, wasi.EPERM},
		{"loop", 0, 1, wasi.ELOOP},
		{"missing", 0, 1, wasi.ENOENT},
		{"", 0, 1, wasi.ENOENT},
		{"sub/f", wasi.OflagDirectory, 1, wasi.ENOTDIR},
		{"sub/f/x", 0, 1, wasi.ENOTDIR},
		{"sub", wasi.OflagCreat | wasi.OflagExcl, 1, wasi.EEXIST},
		{"a\x00b", 0, 1, wasi.EINVAL},
	} {
		_, got := h.open(tc.path, tc.oflags, read, tc.lookup)
		if got != tc.want {
			t.Errorf("path_open(%q, oflags %d, lookup %d) = %d, want %d", tc.path, tc.oflags, tc.lookup, got, tc.want)
		}
	}
	// Other path functions refuse the same escapes.
	for _, name := range []string{"path_create_directory", "path_remove_directory", "path_unlink_file"} {
		for _, p := range []string{"../x", "/x", "abs/x"} {
			h.put(1000, []byte(p))
			if got := h.call(name, 3, 1000, uint64(len(p))); got != wasi.EPERM && got != wasi.ENOTDIR {
				t.Errorf("%s(%q) = %d, want EPERM", name, p, got)
			}
		}
	}
	h.put(1000, []byte("../x"))
	if got := h.call("path_filestat_get", 3, 1, 1000, 4, 2000); got != wasi.EPERM {
		t.Errorf("path_filestat_get(../x) = %d", got)
	}
	// Symlink with an absolute target and rename out of the root.
	h.put(1000, []byte("/etc/passwd"))
	h.put(1100, []byte("newlink"))
	if got := h.call("path_symlink", 1000, 11, 3, 1100, 7); got != wasi.EPERM {
		t.Errorf("path_symlink(abs) = %d", got)
	}
	h.put(1000, []byte("sub/f"))
	h.put(1100, []byte("../stolen"))
	if got := h.call("path_rename", 3, 1000, 5, 3, 1100, 9); got != wasi.EPERM {
		t.Errorf("path_rename out = %d", got)
	}
	if got := h.call("path_link", 3, 0, 1000, 5, 3, 1100, 9); got != wasi.EPERM {
		t.Errorf("path_link out = %d", got)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(h.dir), "stolen")); err == nil {
		t.Error("file escaped the root")
	}
}

func TestBadPointers(t *testing.T) {
	h := newHarness(t, nil)
	const oob = 70000 // beyond the 1-page memory
	for _, tc := range []struct {
		name string
		args []uint64
		want wasi.Errno
	}{
		{"args_sizes_get", []uint64{oob, 0}, wasi.EFAULT},
		{"args_get", []uint64{oob, 0}, wasi.EFAULT},
		{"environ_sizes_get", []uint64{0, 65535}, wasi.EFAULT},
		{"clock_time_get", []uint64{1, 0, 65533}, wasi.EFAULT},
		{"clock_time_get", []uint64{9, 0, 0}, wasi.EINVAL},
		{"clock_res_get", []uint64{0, oob}, wasi.EFAULT},
		{"random_get", []uint64{65000, 1000}, wasi.EFAULT},
		{"random_get", []uint64{1<<32 - 1, 2}, wasi.EFAULT},
		{"fd_write", []uint64{1, oob, 1, 0}, wasi.EFAULT},
		{"fd_write", []uint64{1, 0, 1 << 31, 0}, wasi.EINVAL},
		{"fd_write", []uint64{1, 0, 1, oob}, wasi.EFAULT},
		{"fd_write", []uint64{99, 0, 1, 0}, wasi.EBADF},
		{"fd_read", []uint64{1, 0, 0, 0}, wasi.EBADF}, // stdout is not readable
		{"fd_fdstat_get", []uint64{0, 65530}, wasi.EFAULT},
		{"fd_filestat_get", []uint64{3, oob}, wasi.EFAULT},
		{"fd_prestat_get", []uint64{3, oob}, wasi.EFAULT},
		{"fd_prestat_get", []uint64{0, 0}, wasi.EBADF},
		{"fd_prestat_get", []uint64{4, 0}, wasi.EBADF},
		{"fd_prestat_dir_name", []uint64{3, oob, 1}, wasi.EFAULT},
		{"fd_prestat_dir_name", []uint64{3, 0, 0}, wasi.ENAMETOOLONG},
		{"fd_readdir", []uint64{3, 65000, 1000, 0, 0}, wasi.EFAULT},
		{"fd_readdir", []uint64{1, 0, 10, 0, 0}, wasi.ENOTDIR},
		{"fd_seek", []uint64{3, 0, 0, 0}, wasi.ENOTCAPABLE}, // a directory has no FD_SEEK
		{"fd_seek", []uint64{1, 0, 7, 0}, wasi.EINVAL},
		{"path_open", []uint64{3, 1, oob, 4, 0, 0, 0, 0, 0}, wasi.EFAULT},
		{"path_open", []uint64{3, 1, 0, 5000, 0, 0, 0, 0, 0}, wasi.ENAMETOOLONG},
		{"path_open", []uint64{1, 1, 0, 1, 0, 0, 0, 0, 0}, wasi.ENOTDIR},
		{"poll_oneoff", []uint64{0, 0, 0, 0}, wasi.EINVAL},
		{"poll_oneoff", []uint64{65000, 0, 100, 0}, wasi.EFAULT},
		{"poll_oneoff", []uint64{0, 0, 1 << 31, 0}, wasi.ENOTSUP},
		{"fd_renumber", []uint64{1, 50}, wasi.EBADF},
		{"fd_close", []uint64{50}, wasi.EBADF},
		{"fd_fdstat_set_flags", []uint64{1, 1 << 10}, wasi.EINVAL},
		{"fd_fdstat_set_flags", []uint64{1, uint64(wasi.FdflagAppend)}, wasi.ENOTSUP},
		{"fd_fdstat_set_flags", []uint64{1, uint64(wasi.FdflagNonblock)}, wasi.ESUCCESS},
		{"fd_fdstat_set_rights", []uint64{0, wasi.RightsAll, 0}, wasi.ENOTCAPABLE},
		{"sock_accept", []uint64{1, 0, 0}, wasi.ENOTSOCK},
		{"proc_raise", []uint64{6}, wasi.ENOSYS},
		{"sched_yield", nil, wasi.ESUCCESS},
	} {
		if got := h.call(tc.name, tc.args...); got != tc.want {
			t.Errorf("%s%v = %d, want %d", tc.name, tc.args, got, tc.want)
		}
	}
}

// putSub writes a poll_oneoff subscription at off.
func putSub(h *fnHarness, off uint32, userdata uint64, typ uint8, fdOrClock uint32, timeout uint64, flags uint16) {
	b := make([]byte, subSize)
	binary.LittleEndian.PutUint64(b[0:], userdata)
	b[8] = typ
	binary.LittleEndian.PutUint32(b[16:], fdOrClock)
	binary.LittleEndian.PutUint64(b[24:], timeout)
	binary.LittleEndian.PutUint16(b[40:], flags)
	h.put(off, b)
}

type event struct {
	userdata uint64
	errno    uint16
	typ      uint8
}

func (h *fnHarness) events(off, n uint32) []event {
	var out []event
	for i := uint32(0); i < n; i++ {
		b, _ := h.m.Memory().Read(off+i*eventSize, eventSize)
		out = append(out, event{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint16(b[8:]), b[10]})
	}
	return out
}

func TestPollOneoff(t *testing.T) {
	h := newHarness(t, nil)
	// A relative 3 ms monotonic sleep: fires, and not early.
	putSub(h, 0, 42, wasi.EventtypeClock, wasi.ClockMonotonic, uint64(3*time.Millisecond), 0)
	start := time.Now()
	if e := h.call("poll_oneoff", 0, 4096, 1, 8000); e != 0 {
		t.Fatal(e)
	}
	if d := time.Since(start); d < 3*time.Millisecond {
		t.Errorf("slept %v, want >= 3ms", d)
	}
	if n := h.u32(8000); n != 1 {
		t.Fatalf("nevents %d", n)
	}
	if ev := h.events(4096, 1)[0]; ev != (event{42, 0, wasi.EventtypeClock}) {
		t.Errorf("event %+v", ev)
	}

	// Absolute deadline in the past fires at once; a bad fd yields an
	// EBADF event; stdout is always writable; an unknown clock is EINVAL
	// in its event. The call itself succeeds.
	putSub(h, 0, 1, wasi.EventtypeClock, wasi.ClockRealtime, 1, wasi.SubclockAbstime)
	putSub(h, 48, 2, wasi.EventtypeFdRead, 77, 0, 0)
	putSub(h, 96, 3, wasi.EventtypeFdWrite, 1, 0, 0)
	putSub(h, 144, 4, wasi.EventtypeClock, 99, 10, 0)
	putSub(h, 192, 5, wasi.EventtypeClock, wasi.ClockMonotonic, uint64(time.Hour), 0)
	if e := h.call("poll_oneoff", 0, 4096, 5, 8000); e != 0 {
		t.Fatal(e)
	}
	got := h.events(4096, h.u32(8000))
	want := []event{{1, 0, 0}, {2, uint16(wasi.EBADF), 1}, {3, 0, 2}, {4, uint16(wasi.EINVAL), 0}}
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestPollOneoffPipeAndCancel(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	h := newHarness(t, NewConfig().WithStdin(pr))
	// stdin has no data: a read subscription with no clock blocks until
	// data arrives.
	putSub(h, 0, 7, wasi.EventtypeFdRead, 0, 0, 0)
	go func() {
		time.Sleep(20 * time.Millisecond)
		pw.Write([]byte("x"))
	}()
	if e := h.call("poll_oneoff", 0, 4096, 1, 8000); e != 0 {
		t.Fatal(e)
	}
	if ev := h.events(4096, h.u32(8000)); len(ev) != 1 || ev[0] != (event{7, 0, wasi.EventtypeFdRead}) {
		t.Fatalf("events %+v", ev)
	}
	// Non-blocking read of stdin when empty: EAGAIN; blocking mode waits.
	buf := make([]byte, 8)
	binary.LittleEndian.PutUint32(buf, 5000)
	binary.LittleEndian.PutUint32(buf[4:], 10)
	h.put(100, buf)
	if e := h.call("fd_read", 0, 100, 1, 200); e != 0 || h.u32(200) != 1 {
		t.Fatalf("fd_read = %d, n %d", e, h.u32(200))
	}
	h.call("fd_fdstat_set_flags", 0, uint64(wasi.FdflagNonblock))
	if e := h.call("fd_read", 0, 100, 1, 200); e != wasi.EAGAIN {
		t.Fatalf("non-blocking fd_read on empty stdin = %d, want EAGAIN", e)
	}

	// Blocked forever on stdin, cancelled: returns promptly with
	// ECANCELED events.
	done := make(chan wasi.Errno)
	go func() { done <- h.call("poll_oneoff", 0, 4096, 1, 8000) }()
	time.Sleep(20 * time.Millisecond)
	h.s.wake.wake()
	select {
	case e := <-done:
		if e != 0 {
			t.Fatalf("poll_oneoff = %d", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("poll_oneoff not cancelled")
	}
	if ev := h.events(4096, h.u32(8000)); len(ev) != 1 || ev[0].errno != uint16(wasi.ECANCELED) {
		t.Fatalf("events %+v", ev)
	}
}

func TestReaddirDotEntries(t *testing.T) {
	h := newHarness(t, nil)
	for _, n := range []string{"b", "a"} {
		if err := os.WriteFile(filepath.Join(h.dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if e := h.call("fd_readdir", 3, 0, 4096, 0, 8000); e != 0 {
		t.Fatal(e)
	}
	used := h.u32(8000)
	b, _ := h.m.Memory().Read(0, used)
	var names []string
	var next uint64
	for len(b) >= 24 {
		next = binary.LittleEndian.Uint64(b)
		l := binary.LittleEndian.Uint32(b[16:])
		names = append(names, string(b[24:24+l]))
		b = b[24+l:]
	}
	if len(names) != 4 || names[0] != "." || names[1] != ".." {
		t.Fatalf("names %q", names)
	}
	// Resuming from the last cookie yields nothing more.
	if e := h.call("fd_readdir", 3, 0, 4096, next, 8000); e != 0 || h.u32(8000) != 0 {
		t.Fatalf("resume: %d used %d", e, h.u32(8000))
	}
	// A buffer too small for one entry is filled completely.
	if e := h.call("fd_readdir", 3, 0, 10, 0, 8000); e != 0 || h.u32(8000) != 10 {
		t.Fatalf("small buffer: %d used %d", e, h.u32(8000))
	}
}

// FuzzHostFunctions drives every host function with arbitrary arguments
// against a live instance: no panic; the errno is a valid WASI errno; a call
// that fails (but for EFAULT, where a partial write is allowed) leaves guest
// memory as it was; and nothing outside the preopen changes, though the
// preopen holds symlinks that lead out of it. The instance is cancelled up
// front so that poll_oneoff never blocks.
func FuzzHostFunctions(f *testing.F) {
	f.Add(uint8(0), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(20), []byte("\x03\x00\x00\x00\x10\x00\x00\x00\x04\x00\x00\x00"))
	// path_open(3, 0, "out/x", ...) and path_unlink_file(3, "up/...") shapes.
	f.Add(uint8(26), []byte("\x03\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x05\x00\x00\x00\x09\x00\x00\x00out/x"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		h := newHarness(t, nil)
		h.s.wake.wake()
		outside := t.TempDir()
		if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
			t.Fatal(err)
		}
		for name, target := range map[string]string{"out": outside, "up": "..", "secret": filepath.Join(outside, "secret")} {
			if err := os.Symlink(target, filepath.Join(h.dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		outsideBefore, parentBefore := treeOf(t, outside), namesIn(t, filepath.Dir(h.dir))
		names := make([]string, 0, len(h.fns))
		for _, fn := range h.s.preview1() {
			names = append(names, fn.name)
		}
		fn := h.fns[names[int(which)%len(names)]]
		// Seed memory with the data (pointers into it are likely).
		h.put(0, data)
		mem := h.m.Memory()
		memBefore, _ := mem.Read(0, mem.Size())
		memBefore = bytes.Clone(memBefore)
		st := make([]uint64, max(len(fn.params), 1))
		for i := range fn.params {
			var v uint64
			if len(data) >= (i+1)*4 {
				v = uint64(binary.LittleEndian.Uint32(data[i*4:]))
			}
			if i%3 == 2 {
				v %= 70000 // some values in range
			}
			st[i] = v
		}
		e := fn.fn(h.ctx, h.m, st)
		if e > wasi.ENOTCAPABLE {
			t.Fatalf("%s returned errno %d", fn.name, e)
		}
		if memAfter, _ := mem.Read(0, mem.Size()); e != 0 && e != wasi.EFAULT && !bytes.Equal(memBefore, memAfter) {
			t.Fatalf("%s failed with errno %d but wrote guest memory", fn.name, e)
		}
		if got := treeOf(t, outside); !maps.Equal(got, outsideBefore) {
			t.Fatalf("%s (errno %d) changed a directory outside the preopen: %v -> %v", fn.name, e, outsideBefore, got)
		}
		if got := namesIn(t, filepath.Dir(h.dir)); !slices.Equal(got, parentBefore) {
			t.Fatalf("%s (errno %d) changed the preopen's parent: %v -> %v", fn.name, e, parentBefore, got)
		}
	})
}

// treeOf describes every file below dir: mode, size and contents.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d %v", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(b)
		}
		tree[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// namesIn lists the names in dir.
func namesIn(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// A FIFO in a preopen opens without blocking (no writer yet), reads
// EAGAIN in non-blocking mode, and in blocking mode waits for the writer.
func TestFIFO(t *testing.T) {
	h := newHarness(t, nil)
	p := filepath.Join(h.dir, "fifo")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		testenv.Missing(t, "mkfifo", err)
	}
	opened := make(chan wasi.Errno)
	go func() {
		_, e := h.open("fifo", 0, wasi.RightFdRead|wasi.RightFdFdstatSetFlags, 1)
		opened <- e
	}()
	select {
	case e := <-opened:
		if e != 0 {
			t.Fatal(e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("opening a FIFO blocked the host")
	}
	fd := uint64(h.u32(900))
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	iov := make([]byte, 8)
	binary.LittleEndian.PutUint32(iov, 5000)
	binary.LittleEndian.PutUint32(iov[4:], 10)
	h.put(100, iov)
	if e := h.call("fd_fdstat_set_flags", fd, uint64(wasi.FdflagNonblock)); e != 0 {
		t.Fatalf("fd_fdstat_set_flags(NONBLOCK) = %d", e)
	}
	if e := h.call("fd_read", fd, 100, 1, 200); e != wasi.EAGAIN {
		t.Fatalf("non-blocking read of empty FIFO = %d, want EAGAIN", e)
	}
	if e := h.call("fd_fdstat_set_flags", fd, 0); e != 0 {
		t.Fatalf("fd_fdstat_set_flags(0) = %d", e)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte("abc"))
	}()
	if e := h.call("fd_read", fd, 100, 1, 200); e != 0 || h.u32(200) != 3 {
		t.Fatalf("blocking read = %d, n %d", e, h.u32(200))
	}
}

func TestFdTableLimit(t *testing.T) {
	var tb fdTable
	tb.max = 3
	for i := 0; i < 3; i++ {
		if fd, err := tb.insert(&fdEntry{file: &outFile{}}); err != nil || fd != int32(i) {
			t.Fatalf("insert %d: fd %d err %v", i, fd, err)
		}
	}
	if _, err := tb.insert(&fdEntry{file: &outFile{}}); err != wasi.EMFILE {
		t.Fatalf("over limit: %v", err)
	}
	if _, err := tb.remove(1); err != nil {
		t.Fatal(err)
	}
	if fd, err := tb.insert(&fdEntry{file: &outFile{}}); err != nil || fd != 1 {
		t.Fatalf("reuse lowest: fd %d err %v", fd, err)
	}
	if old, err := tb.renumber(0, 2); err != nil || old == nil {
		t.Fatalf("renumber: %v", err)
	}
	if _, err := tb.get(0); err != wasi.EBADF {
		t.Fatalf("renumbered-from still open: %v", err)
	}
}

func TestFileFunctions(t *testing.T) {
	h := newHarness(t, nil)
	rights := wasi.RightsFileBase
	fd, e := h.open("f", wasi.OflagCreat, rights, 1)
	if e != 0 {
		t.Fatal(e)
	}
	f := uint64(fd)
	mustOK := func(what string, e wasi.Errno) {
		t.Helper()
		if e != 0 {
			t.Fatalf("%s: errno %d", what, e)
		}
	}
	// Write "hello" through one iovec, then fd_tell.
	h.put(5000, []byte("hello"))
	h.put(100, []byte{0x88, 0x13, 0, 0, 5, 0, 0, 0}) // {5000, 5}
	mustOK("fd_write", h.call("fd_write", f, 100, 1, 200))
	if n := h.u32(200); n != 5 {
		t.Fatalf("wrote %d", n)
	}
	mustOK("fd_tell", h.call("fd_tell", f, 300))
	if off, _ := h.m.Memory().ReadUint64Le(300); off != 5 {
		t.Errorf("tell %d", off)
	}
	// fd_allocate grows the file; fd_filestat_get sees it.
	mustOK("fd_allocate", h.call("fd_allocate", f, 0, 100))
	mustOK("fd_filestat_get", h.call("fd_filestat_get", f, 400))
	if size, _ := h.m.Memory().ReadUint64Le(400 + 32); size != 100 {
		t.Errorf("size after allocate %d", size)
	}
	if ft, _ := h.m.Memory().ReadByte(400 + 16); ft != wasi.FiletypeRegularFile {
		t.Errorf("filetype %d", ft)
	}
	mustOK("fd_filestat_set_size", h.call("fd_filestat_set_size", f, 3))
	if st, _ := os.Stat(filepath.Join(h.dir, "f")); st.Size() != 3 {
		t.Errorf("size after set_size %d", st.Size())
	}
	// Exact times, nanosecond precision.
	const atim, mtim = 1_600_000_000_123_456_789, 1_700_000_000_987_654_321
	mustOK("fd_filestat_set_times", h.call("fd_filestat_set_times", f, atim, mtim, uint64(wasi.FstflagAtim|wasi.FstflagMtim)))
	if st, _ := os.Stat(filepath.Join(h.dir, "f")); st.ModTime().UnixNano() != mtim {
		t.Errorf("mtime %d", st.ModTime().UnixNano())
	}
	if e := h.call("fd_filestat_set_times", f, 0, 0, uint64(wasi.FstflagAtim|wasi.FstflagAtimNow)); e != wasi.EINVAL {
		t.Errorf("ATIM|ATIM_NOW = %d, want EINVAL", e)
	}
	h.put(1000, []byte("f"))
	mustOK("path_filestat_set_times", h.call("path_filestat_set_times", 3, 1, 1000, 1, 0, mtim+1, uint64(wasi.FstflagMtim)))
	if st, _ := os.Stat(filepath.Join(h.dir, "f")); st.ModTime().UnixNano() != mtim+1 {
		t.Errorf("mtime via path %d", st.ModTime().UnixNano())
	}
	mustOK("fd_advise", h.call("fd_advise", f, 0, 10, 1))
	if e := h.call("fd_advise", f, 0, 10, 9); e != wasi.EINVAL {
		t.Errorf("bad advice = %d", e)
	}
	mustOK("fd_datasync", h.call("fd_datasync", f))
	mustOK("fd_sync", h.call("fd_sync", f))
	// pread at an offset does not move the position.
	h.put(100, []byte{0x88, 0x13, 0, 0, 10, 0, 0, 0})
	mustOK("fd_pread", h.call("fd_pread", f, 100, 1, 1, 200))
	if n := h.u32(200); n != 2 {
		t.Errorf("pread n %d", n)
	}
	if b, _ := h.m.Memory().Read(5000, 2); string(b) != "el" {
		t.Errorf("pread %q", b)
	}
	// fdstat: filetype, rights as granted.
	mustOK("fd_fdstat_get", h.call("fd_fdstat_get", f, 600))
	if base, _ := h.m.Memory().ReadUint64Le(608); base&wasi.RightFdWrite == 0 || base&wasi.RightPathOpen != 0 {
		t.Errorf("rights %#x", base)
	}
	// Narrowing rights works, re-widening does not; without FD_WRITE,
	// fd_write fails.
	mustOK("fd_fdstat_set_rights", h.call("fd_fdstat_set_rights", f, wasi.RightFdRead, 0))
	if e := h.call("fd_fdstat_set_rights", f, wasi.RightFdRead|wasi.RightFdWrite, 0); e != wasi.ENOTCAPABLE {
		t.Errorf("widen = %d", e)
	}
	h.put(100, []byte{0x88, 0x13, 0, 0, 1, 0, 0, 0})
	if e := h.call("fd_write", f, 100, 1, 200); e != wasi.EBADF {
		t.Errorf("write without right = %d", e)
	}
	// Renumber onto stdout... then close both.
	mustOK("fd_renumber", h.call("fd_renumber", f, 2))
	if e := h.call("fd_close", f); e != wasi.EBADF {
		t.Errorf("old fd after renumber = %d", e)
	}
	mustOK("fd_close", h.call("fd_close", 2))
	// Readlink truncates to the buffer, like readlink(2).
	if err := os.Symlink("0123456789", filepath.Join(h.dir, "l")); err != nil {
		t.Fatal(err)
	}
	h.put(1000, []byte("l"))
	mustOK("path_readlink", h.call("path_readlink", 3, 1000, 1, 5000, 4, 200))
	if b, _ := h.m.Memory().Read(5000, 4); h.u32(200) != 4 || string(b) != "0123" {
		t.Errorf("readlink %q n %d", b, h.u32(200))
	}
	// Directory stat through path_filestat_get with and without follow.
	mustOK("path_filestat_get nofollow", h.call("path_filestat_get", 3, 0, 1000, 1, 400))
	if ft, _ := h.m.Memory().ReadByte(400 + 16); ft != wasi.FiletypeSymbolicLink {
		t.Errorf("lstat filetype %d", ft)
	}
	if e := h.call("path_filestat_get", 3, 1, 1000, 1, 400); e != wasi.ENOENT {
		t.Errorf("stat dangling = %d", e)
	}
	// Preopen name.
	mustOK("fd_prestat_get", h.call("fd_prestat_get", 3, 700))
	if h.u32(704) != 1 {
		t.Errorf("prestat name len %d", h.u32(704))
	}
	mustOK("fd_prestat_dir_name", h.call("fd_prestat_dir_name", 3, 710, 1))
	if b, _ := h.m.Memory().ReadByte(710); b != '/' {
		t.Errorf("preopen name %q", b)
	}
}

func TestArgsEnvClocks(t *testing.T) {
	h := newHarness(t, NewConfig().WithArgs("prog", "a b").WithEnv("K", "v"))
	if e := h.call("args_sizes_get", 0, 4); e != 0 || h.u32(0) != 2 || h.u32(4) != 9 {
		t.Fatalf("args_sizes_get = %d: %d %d", e, h.u32(0), h.u32(4))
	}
	if e := h.call("args_get", 100, 200); e != 0 {
		t.Fatal(e)
	}
	if h.u32(100) != 200 || h.u32(104) != 205 {
		t.Errorf("argv pointers %d %d", h.u32(100), h.u32(104))
	}
	if b, _ := h.m.Memory().Read(200, 9); string(b) != "prog\x00a b\x00" {
		t.Errorf("argv buf %q", b)
	}
	if e := h.call("environ_sizes_get", 0, 4); e != 0 || h.u32(0) != 1 || h.u32(4) != 4 {
		t.Fatalf("environ_sizes_get = %d: %d %d", e, h.u32(0), h.u32(4))
	}
	if e := h.call("environ_get", 100, 200); e != 0 {
		t.Fatal(e)
	}
	if b, _ := h.m.Memory().Read(200, 4); string(b) != "K=v\x00" {
		t.Errorf("env buf %q", b)
	}
	for _, id := range []uint64{0, 1, 2, 3} {
		if e := h.call("clock_res_get", id, 300); e != 0 {
			t.Errorf("clock_res_get(%d) = %d", id, e)
		}
		if e := h.call("clock_time_get", id, 0, 300); e != 0 {
			t.Errorf("clock_time_get(%d) = %d", id, e)
		}
	}
	h.call("clock_time_get", 0, 0, 300)
	rt, _ := h.m.Memory().ReadUint64Le(300)
	if d := time.Now().UnixNano() - int64(rt); d < 0 || d > int64(time.Second) {
		t.Errorf("realtime off by %d ns", d)
	}
	h.call("clock_time_get", 1, 0, 300)
	m1, _ := h.m.Memory().ReadUint64Le(300)
	time.Sleep(time.Millisecond)
	h.call("clock_time_get", 1, 0, 300)
	m2, _ := h.m.Memory().ReadUint64Le(300)
	if m2 < m1+uint64(time.Millisecond) {
		t.Errorf("monotonic %d -> %d", m1, m2)
	}
	// random_get fills the buffer (64 zero bytes stay zero with
	// probability 2^-512).
	h.put(400, make([]byte, 64))
	if e := h.call("random_get", 400, 64); e != 0 {
		t.Fatal(e)
	}
	if b, _ := h.m.Memory().Read(400, 64); string(b) == string(make([]byte, 64)) {
		t.Error("random_get wrote nothing")
	}
}
