package host

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"runtime"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// moduleName is the import module of WASI preview 1.
const moduleName = "wasi_snapshot_preview1"

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// hostFunc is one exported function: its wasm signature and a body that
// returns the errno (proc_exit has no result and never returns).
type hostFunc struct {
	name   string
	params []api.ValueType
	fn     func(ctx context.Context, m api.Module, st []uint64) wasi.Errno
}

// exportPreview1 registers every preview 1 function on b. The bodies are
// api.GoModuleFunc closures (stack-based, no reflection) that call the
// calling instance's own function of the same index (hostState).
func exportPreview1(b wazero.HostModuleBuilder) {
	var proto state // only for the names and signatures
	for i, f := range proto.preview1() {
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, st []uint64) {
				st[0] = uint64(hostState(ctx).p1[i].fn(ctx, m, st))
			}), f.params, []api.ValueType{i32}).
			Export(f.name)
	}
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, st []uint64) {
			hostState(ctx).procExit(ctx, m, st)
		}), []api.ValueType{i32}, nil).
		Export("proc_exit")
}

// exportHostFunctions registers the whole host module on b, for a guest
// whose wasi_snapshot_preview1 imports are imports (name -> parameter
// count).
func exportHostFunctions(b wazero.HostModuleBuilder, imports map[string]int) {
	exportPreview1(b)
	exportSocketFunctions(b, imports)
}

// bindHostFunctions builds the instance's own host function bodies, in the
// order exportHostFunctions registered them.
func (s *state) bindHostFunctions(imports map[string]int) {
	s.p1 = s.preview1()
	s.sock = s.socketFuncs(imports)
}

// hostStateKey is the context key of the instance's state.
type hostStateKey struct{}

// withHostState returns ctx carrying s for the host functions.
func withHostState(ctx context.Context, s *state) context.Context {
	return context.WithValue(ctx, hostStateKey{}, s)
}

// hostState is the state of the instance calling a host function. The
// host module is shared by every instance of a compiled guest (one per
// wazero runtime), and wazero gives each host function the context of the
// guest's call, which carries the instance's state. A call without one
// (impossible through CompiledGuest.Run) traps rather than run on no
// state.
func hostState(ctx context.Context) *state {
	s, _ := ctx.Value(hostStateKey{}).(*state)
	if s == nil {
		panic(errors.New("wasmgate: host function called outside a guest instance"))
	}
	return s
}

func p(n ...api.ValueType) []api.ValueType { return n }

// errno converts an internal error to the guest's errno (the one mapping).
func errno(err error) wasi.Errno { return wasi.ToErrno(err) }

func (s *state) preview1() []hostFunc {
	return []hostFunc{
		{"args_get", p(i32, i32), func(_ context.Context, m api.Module, st []uint64) wasi.Errno {
			return writeStrings(m.Memory(), s.args, uint32(st[0]), uint32(st[1]))
		}},
		{"args_sizes_get", p(i32, i32), func(_ context.Context, m api.Module, st []uint64) wasi.Errno {
			return writeSizes(m.Memory(), s.args, uint32(st[0]), uint32(st[1]))
		}},
		{"environ_get", p(i32, i32), func(_ context.Context, m api.Module, st []uint64) wasi.Errno {
			return writeStrings(m.Memory(), s.env, uint32(st[0]), uint32(st[1]))
		}},
		{"environ_sizes_get", p(i32, i32), func(_ context.Context, m api.Module, st []uint64) wasi.Errno {
			return writeSizes(m.Memory(), s.env, uint32(st[0]), uint32(st[1]))
		}},
		{"clock_res_get", p(i32, i32), s.clockResGet},
		{"clock_time_get", p(i32, i64, i32), s.clockTimeGet},
		{"fd_advise", p(i32, i64, i64, i32), s.fdAdvise},
		{"fd_allocate", p(i32, i64, i64), s.fdAllocate},
		{"fd_close", p(i32), s.fdClose},
		{"fd_datasync", p(i32), func(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
			e, err := s.fdWith(int32(st[0]), wasi.RightFdDatasync)
			if err != nil {
				return errno(err)
			}
			return errno(e.file.datasync())
		}},
		{"fd_sync", p(i32), func(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
			e, err := s.fdWith(int32(st[0]), wasi.RightFdSync)
			if err != nil {
				return errno(err)
			}
			return errno(e.file.sync())
		}},
		{"fd_fdstat_get", p(i32, i32), s.fdFdstatGet},
		{"fd_fdstat_set_flags", p(i32, i32), s.fdFdstatSetFlags},
		{"fd_fdstat_set_rights", p(i32, i64, i64), s.fdFdstatSetRights},
		{"fd_filestat_get", p(i32, i32), s.fdFilestatGet},
		{"fd_filestat_set_size", p(i32, i64), s.fdFilestatSetSize},
		{"fd_filestat_set_times", p(i32, i64, i64, i32), s.fdFilestatSetTimes},
		{"fd_pread", p(i32, i32, i32, i64, i32), s.fdPread},
		{"fd_pwrite", p(i32, i32, i32, i64, i32), s.fdPwrite},
		{"fd_prestat_get", p(i32, i32), s.fdPrestatGet},
		{"fd_prestat_dir_name", p(i32, i32, i32), s.fdPrestatDirName},
		{"fd_read", p(i32, i32, i32, i32), s.fdRead},
		{"fd_write", p(i32, i32, i32, i32), s.fdWrite},
		{"fd_readdir", p(i32, i32, i32, i64, i32), s.fdReaddir},
		{"fd_renumber", p(i32, i32), s.fdRenumber},
		{"fd_seek", p(i32, i64, i32, i32), s.fdSeek},
		{"fd_tell", p(i32, i32), s.fdTell},
		{"path_create_directory", p(i32, i32, i32), s.pathCreateDirectory},
		{"path_filestat_get", p(i32, i32, i32, i32, i32), s.pathFilestatGet},
		{"path_filestat_set_times", p(i32, i32, i32, i32, i64, i64, i32), s.pathFilestatSetTimes},
		{"path_link", p(i32, i32, i32, i32, i32, i32, i32), s.pathLink},
		{"path_open", p(i32, i32, i32, i32, i32, i64, i64, i32, i32), s.pathOpen},
		{"path_readlink", p(i32, i32, i32, i32, i32, i32), s.pathReadlink},
		{"path_remove_directory", p(i32, i32, i32), s.pathRemoveDirectory},
		{"path_rename", p(i32, i32, i32, i32, i32, i32), s.pathRename},
		{"path_symlink", p(i32, i32, i32, i32, i32), s.pathSymlink},
		{"path_unlink_file", p(i32, i32, i32), s.pathUnlinkFile},
		{"poll_oneoff", p(i32, i32, i32, i32), s.pollOneoff},
		{"proc_raise", p(i32), func(context.Context, api.Module, []uint64) wasi.Errno { return wasi.ENOSYS }},
		{"sched_yield", p(), func(context.Context, api.Module, []uint64) wasi.Errno {
			runtime.Gosched()
			return wasi.ESUCCESS
		}},
		{"random_get", p(i32, i32), func(_ context.Context, m api.Module, st []uint64) wasi.Errno {
			b, err := memRead(m.Memory(), uint32(st[0]), uint32(st[1]))
			if err != nil {
				return errno(err)
			}
			_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
			return wasi.ESUCCESS
		}},
		// Preview 1's own socket functions, for fds that are not sockets.
		// The sockets work (exportSocketFunctions) replaces them.
		{"sock_accept", p(i32, i32, i32), s.notSocket},
		{"sock_recv", p(i32, i32, i32, i32, i32, i32), s.notSocket},
		{"sock_send", p(i32, i32, i32, i32, i32), s.notSocket},
		{"sock_shutdown", p(i32, i32), s.notSocket},
	}
}

// notSocket: EBADF for a free fd, ENOTSOCK otherwise.
func (s *state) notSocket(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
	if _, err := s.fds.get(int32(st[0])); err != nil {
		return errno(err)
	}
	return wasi.ENOTSOCK
}

// procExit closes the module with the guest's exit code; wazero turns the
// panic into a *sys.ExitError returned from the start function.
func (s *state) procExit(ctx context.Context, m api.Module, st []uint64) {
	code := uint32(st[0])
	s.exitMu.Lock()
	s.exitCode = &code
	s.exitMu.Unlock()
	_ = m.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}

// stopIfDone ends the guest when its context is done: a wait that the
// cancellation interrupted does not return to the guest (which would only
// retry), but closes the module like proc_exit, with wazero's exit code for
// a cancelled or timed-out context. This stops a guest blocked in the host
// even when WithCloseOnContextDone(false) leaves its code uninterruptible.
func (s *state) stopIfDone(ctx context.Context, m api.Module) {
	err := ctx.Err()
	if err == nil {
		return
	}
	code := sys.ExitCodeContextCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		code = sys.ExitCodeDeadlineExceeded
	}
	_ = m.CloseWithExitCode(ctx, code)
	exitIfDone(ctx)
}

// writeStrings implements args_get / environ_get: the pointer array at
// ptrs, the NUL-terminated strings packed at buf.
func writeStrings(m api.Memory, strs []string, ptrs, buf uint32) wasi.Errno {
	total := uint64(0)
	for _, a := range strs {
		total += uint64(len(a)) + 1
	}
	if total > 1<<32-1 || uint64(len(strs))*4 > 1<<32-1 {
		return wasi.EFAULT
	}
	pa, err := memRead(m, ptrs, uint32(len(strs))*4)
	if err != nil {
		return wasi.EFAULT
	}
	ba, err := memRead(m, buf, uint32(total))
	if err != nil {
		return wasi.EFAULT
	}
	off := uint32(0)
	for i, a := range strs {
		binary.LittleEndian.PutUint32(pa[i*4:], buf+off)
		copy(ba[off:], a)
		ba[off+uint32(len(a))] = 0
		off += uint32(len(a)) + 1
	}
	return wasi.ESUCCESS
}

func writeSizes(m api.Memory, strs []string, countPtr, sizePtr uint32) wasi.Errno {
	total := 0
	for _, a := range strs {
		total += len(a) + 1
	}
	if memPutU32(m, countPtr, uint32(len(strs))) != nil || memPutU32(m, sizePtr, uint32(total)) != nil {
		return wasi.EFAULT
	}
	return wasi.ESUCCESS
}

func (s *state) clockResGet(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	id := uint32(st[0])
	var res uint64
	switch id {
	case wasi.ClockRealtime, wasi.ClockMonotonic:
		res = 1
	case wasi.ClockProcessCputimeID, wasi.ClockThreadCputimeID:
		r, err := cpuClockRes()
		if err != nil {
			return errno(err)
		}
		res = r
	default:
		return wasi.EINVAL
	}
	if memPutU64(m.Memory(), uint32(st[1]), res) != nil {
		return wasi.EFAULT
	}
	return wasi.ESUCCESS
}

// now returns the clock's current value in ns. The monotonic clock starts
// at an arbitrary positive value and never goes backwards.
func (s *state) now(id uint32) (uint64, error) {
	switch id {
	case wasi.ClockRealtime:
		return uint64(time.Now().UnixNano()), nil
	case wasi.ClockMonotonic:
		return uint64(time.Since(s.start)) + 1, nil
	case wasi.ClockProcessCputimeID, wasi.ClockThreadCputimeID:
		// wazero runs the guest on one goroutine that may move between
		// threads, so the process clock is the closest honest answer for
		// both, as the spec allows.
		return processCPUTime()
	}
	return 0, syscall.EINVAL
}

func (s *state) clockTimeGet(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	t, err := s.now(uint32(st[0]))
	if err != nil {
		return errno(err)
	}
	if memPutU64(m.Memory(), uint32(st[2]), t) != nil {
		return wasi.EFAULT
	}
	return wasi.ESUCCESS
}

// fdWith returns fd's entry if it holds the rights r (see needRights).
func (s *state) fdWith(fd int32, r wasi.Rights) (*fdEntry, error) {
	e, err := s.fds.get(fd)
	if err != nil {
		return nil, err
	}
	if err := needRights(e, r); err != nil {
		return nil, err
	}
	return e, nil
}

func (s *state) fdAdvise(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
	e, err := s.fdWith(int32(st[0]), wasi.RightFdAdvise)
	if err != nil {
		return errno(err)
	}
	off, n := int64(st[1]), int64(st[2])
	if off < 0 || n < 0 {
		return wasi.EINVAL
	}
	return errno(e.file.advise(off, n, uint8(st[3])))
}

func (s *state) fdAllocate(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
	e, err := s.fdWith(int32(st[0]), wasi.RightFdAllocate)
	if err != nil {
		return errno(err)
	}
	return errno(e.file.allocate(int64(st[1]), int64(st[2])))
}

func (s *state) fdClose(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
	e, err := s.fds.remove(int32(st[0]))
	if err != nil {
		return errno(err)
	}
	return errno(e.file.close())
}

func (s *state) fdFdstatGet(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	e, err := s.fds.get(int32(st[0]))
	if err != nil {
		return errno(err)
	}
	b, err := memRead(m.Memory(), uint32(st[1]), 24)
	if err != nil {
		return errno(err)
	}
	clear(b)
	b[0] = e.file.filetype()
	binary.LittleEndian.PutUint16(b[2:], e.flags)
	binary.LittleEndian.PutUint64(b[8:], e.rightsBase)
	binary.LittleEndian.PutUint64(b[16:], e.rightsInheriting)
	return wasi.ESUCCESS
}

// fdFdstatSetFlags accepts NONBLOCK changes on any fd (kept in the table
// only; see fdtable.go), APPEND changes on files of a preopen (fcntl on
// Linux), and re-submission of unchanged flags. Changing the sync flags of
// an open fd, or APPEND of anything else, is ENOTSUP, as Linux's fcntl
// cannot change them.
func (s *state) fdFdstatSetFlags(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
	e, err := s.fdWith(int32(st[0]), wasi.RightFdFdstatSetFlags)
	if err != nil {
		return errno(err)
	}
	flags := uint32(st[1])
	const all = wasi.FdflagAppend | wasi.FdflagDsync | wasi.FdflagNonblock | wasi.FdflagRsync | wasi.FdflagSync
	if flags&^uint32(all) != 0 {
		return wasi.EINVAL
	}
	changed := (uint16(flags) ^ e.flags) &^ wasi.FdflagNonblock
	if changed&^wasi.FdflagAppend != 0 {
		return wasi.ENOTSUP
	}
	if changed != 0 {
		sf, ok := e.file.(*sysFile)
		if !ok {
			return wasi.ENOTSUP
		}
		if err := sf.f.SetAppend(flags&uint32(wasi.FdflagAppend) != 0); err != nil {
			return errno(err)
		}
	}
	e.flags = uint16(flags)
	return wasi.ESUCCESS
}

// fdFdstatSetRights may only drop rights (ENOTCAPABLE otherwise).
func (s *state) fdFdstatSetRights(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
	e, err := s.fds.get(int32(st[0]))
	if err != nil {
		return errno(err)
	}
	base, inh := st[1], st[2]
	if base&^e.rightsBase != 0 || inh&^e.rightsInheriting != 0 {
		return wasi.ENOTCAPABLE
	}
	e.rightsBase, e.rightsInheriting = base, inh
	return wasi.ESUCCESS
}

func putFilestat(m api.Memory, ptr uint32, fs filestat) error {
	b, err := memRead(m, ptr, 64)
	if err != nil {
		return err
	}
	clear(b)
	binary.LittleEndian.PutUint64(b[0:], fs.dev)
	binary.LittleEndian.PutUint64(b[8:], fs.ino)
	b[16] = fs.filetype
	binary.LittleEndian.PutUint64(b[24:], fs.nlink)
	binary.LittleEndian.PutUint64(b[32:], fs.size)
	binary.LittleEndian.PutUint64(b[40:], fs.atim)
	binary.LittleEndian.PutUint64(b[48:], fs.mtim)
	binary.LittleEndian.PutUint64(b[56:], fs.ctim)
	return nil
}

func (s *state) fdFilestatGet(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	e, err := s.fdWith(int32(st[0]), wasi.RightFdFilestatGet)
	if err != nil {
		return errno(err)
	}
	// Check the out-pointer before doing the work.
	if _, err := memRead(m.Memory(), uint32(st[1]), 64); err != nil {
		return errno(err)
	}
	fs, err := e.file.stat()
	if err != nil {
		return errno(err)
	}
	if fs.filetype == wasi.FiletypeUnknown {
		fs.filetype = e.file.filetype()
	}
	return errno(putFilestat(m.Memory(), uint32(st[1]), fs))
}

func (s *state) fdFilestatSetSize(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
	e, err := s.fdWith(int32(st[0]), wasi.RightFdFilestatSetSize)
	if err != nil {
		return errno(err)
	}
	if int64(st[1]) < 0 {
		return wasi.EINVAL
	}
	return errno(e.file.setSize(int64(st[1])))
}

// times decodes the (atim, mtim, fstflags) triple of the set_times calls.
func times(atim, mtim uint64, fst uint16) (a, m time.Time, setA, setM bool, err error) {
	if fst&^(wasi.FstflagAtim|wasi.FstflagAtimNow|wasi.FstflagMtim|wasi.FstflagMtimNow) != 0 ||
		fst&(wasi.FstflagAtim|wasi.FstflagAtimNow) == wasi.FstflagAtim|wasi.FstflagAtimNow ||
		fst&(wasi.FstflagMtim|wasi.FstflagMtimNow) == wasi.FstflagMtim|wasi.FstflagMtimNow {
		return a, m, false, false, syscall.EINVAL
	}
	now := time.Now()
	switch {
	case fst&wasi.FstflagAtim != 0:
		a, setA = nsTime(atim), true
	case fst&wasi.FstflagAtimNow != 0:
		a, setA = now, true
	}
	switch {
	case fst&wasi.FstflagMtim != 0:
		m, setM = nsTime(mtim), true
	case fst&wasi.FstflagMtimNow != 0:
		m, setM = now, true
	}
	return a, m, setA, setM, nil
}

func (s *state) fdFilestatSetTimes(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
	e, err := s.fdWith(int32(st[0]), wasi.RightFdFilestatSetTimes)
	if err != nil {
		return errno(err)
	}
	a, m, setA, setM, err := times(st[1], st[2], uint16(st[3]))
	if err != nil {
		return errno(err)
	}
	if !setA && !setM {
		return wasi.ESUCCESS
	}
	return errno(e.file.setTimes(a, m, setA, setM))
}

// rw performs a read (events pollIn) or write (pollOut) on an fd,
// emulating blocking mode as fdtable.go describes, and stores the count at
// resPtr.
func (s *state) rw(ctx context.Context, m api.Module, fd int32, iovs, iovsLen, resPtr uint32, write bool) wasi.Errno {
	e, err := s.fds.get(fd)
	if err != nil {
		return errno(err)
	}
	need := wasi.RightFdRead
	if write {
		need = wasi.RightFdWrite
	}
	if e.rightsBase&need == 0 {
		return wasi.EBADF
	}
	mem := m.Memory()
	if _, err := memRead(mem, resPtr, 4); err != nil {
		return errno(err)
	}
	bufs, err := iovecs(mem, iovs, iovsLen, s.iov[:0])
	if err != nil {
		return errno(err)
	}
	var n int
	for {
		if write {
			n, err = e.file.write(ctx, bufs)
		} else {
			n, err = e.file.read(ctx, bufs)
		}
		if err == nil || e.nonblock() || !isEAGAIN(err) {
			break
		}
		hfd, ok := e.file.pollFd()
		if !ok {
			break
		}
		ev := int16(pollIn)
		if write {
			ev = pollOut
		}
		if _, werr := s.waitFd(hfd, ev, -1); werr != nil {
			s.stopIfDone(ctx, m)
			err = werr
			break
		}
	}
	clear(bufs) // drop references to guest memory views
	if err != nil {
		return errno(err)
	}
	return errno(memPutU32(mem, resPtr, uint32(n)))
}

func (s *state) fdRead(ctx context.Context, m api.Module, st []uint64) wasi.Errno {
	return s.rw(ctx, m, int32(st[0]), uint32(st[1]), uint32(st[2]), uint32(st[3]), false)
}

func (s *state) fdWrite(ctx context.Context, m api.Module, st []uint64) wasi.Errno {
	return s.rw(ctx, m, int32(st[0]), uint32(st[1]), uint32(st[2]), uint32(st[3]), true)
}

func (s *state) prw(m api.Module, st []uint64, write bool) wasi.Errno {
	e, err := s.fds.get(int32(st[0]))
	if err != nil {
		return errno(err)
	}
	need := wasi.RightFdRead
	if write {
		need = wasi.RightFdWrite
	}
	if e.rightsBase&need == 0 {
		return wasi.EBADF
	}
	// FD_READ and FD_WRITE include pread and pwrite only with FD_SEEK.
	if err := needRights(e, wasi.RightFdSeek); err != nil {
		return errno(err)
	}
	off := int64(st[3])
	if off < 0 {
		return wasi.EINVAL
	}
	mem := m.Memory()
	if _, err := memRead(mem, uint32(st[4]), 4); err != nil {
		return errno(err)
	}
	bufs, err := iovecs(mem, uint32(st[1]), uint32(st[2]), s.iov[:0])
	if err != nil {
		return errno(err)
	}
	var n int
	if write {
		n, err = e.file.pwrite(bufs, off)
	} else {
		n, err = e.file.pread(bufs, off)
	}
	clear(bufs)
	if err != nil {
		return errno(err)
	}
	return errno(memPutU32(mem, uint32(st[4]), uint32(n)))
}

func (s *state) fdPread(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	return s.prw(m, st, false)
}

func (s *state) fdPwrite(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	return s.prw(m, st, true)
}

// fdPrestatGet: EBADF for anything that is not a preopened directory (see
// fdtable.go for why not ENOTDIR).
func (s *state) fdPrestatGet(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	e, err := s.fds.get(int32(st[0]))
	if err != nil {
		return errno(err)
	}
	if e.preopen == "" {
		return wasi.EBADF
	}
	b, err := memRead(m.Memory(), uint32(st[1]), 8)
	if err != nil {
		return errno(err)
	}
	clear(b)
	b[0] = wasi.PreopentypeDir
	binary.LittleEndian.PutUint32(b[4:], uint32(len(e.preopen)))
	return wasi.ESUCCESS
}

func (s *state) fdPrestatDirName(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	e, err := s.fds.get(int32(st[0]))
	if err != nil {
		return errno(err)
	}
	if e.preopen == "" {
		return wasi.EBADF
	}
	n := uint32(st[2])
	if n < uint32(len(e.preopen)) {
		return wasi.ENAMETOOLONG
	}
	b, err := memRead(m.Memory(), uint32(st[1]), uint32(len(e.preopen)))
	if err != nil {
		return errno(err)
	}
	copy(b, e.preopen)
	return wasi.ESUCCESS
}

// fdReaddir writes dirents from cookie on: each a 24-byte header (d_next
// u64, d_ino u64, d_namlen u32, d_type u8) followed by the name. The last
// entry may be cut off at buf_len; bufused == buf_len tells the guest to
// call again. The listing is re-read when cookie is 0.
func (s *state) fdReaddir(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	e, d, err := s.dirEntry(int32(st[0]), wasi.RightFdReaddir)
	if err != nil {
		return errno(err)
	}
	mem := m.Memory()
	buf, bufLen, cookie, usedPtr := uint32(st[1]), uint32(st[2]), st[3], uint32(st[4])
	out, err := memRead(mem, buf, bufLen)
	if err != nil {
		return errno(err)
	}
	if _, err := memRead(mem, usedPtr, 4); err != nil {
		return errno(err)
	}
	if cookie == 0 || e.dir == nil {
		ents, err := d.List()
		if err != nil {
			return errno(err)
		}
		e.dir = &dirListing{ents: ents}
	}
	if cookie > uint64(len(e.dir.ents)) {
		return errno(memPutU32(mem, usedPtr, 0))
	}
	used := uint32(0)
	var hdr [24]byte
	for i := cookie; i < uint64(len(e.dir.ents)) && used < bufLen; i++ {
		de := e.dir.ents[i]
		binary.LittleEndian.PutUint64(hdr[0:], i+1)
		binary.LittleEndian.PutUint64(hdr[8:], de.Ino)
		binary.LittleEndian.PutUint32(hdr[16:], uint32(len(de.Name)))
		hdr[20] = de.Type
		hdr[21], hdr[22], hdr[23] = 0, 0, 0
		used += uint32(copy(out[used:], hdr[:]))
		used += uint32(copy(out[used:], de.Name))
	}
	return errno(memPutU32(mem, usedPtr, used))
}

func (s *state) fdRenumber(_ context.Context, _ api.Module, st []uint64) wasi.Errno {
	old, err := s.fds.renumber(int32(st[0]), int32(st[1]))
	if err != nil {
		return errno(err)
	}
	if old != nil {
		_ = old.file.close()
	}
	return wasi.ESUCCESS
}

// fdSeek needs FD_SEEK, or only FD_TELL for a seek that leaves the offset
// unchanged (0 from the current position).
func (s *state) fdSeek(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	e, err := s.fds.get(int32(st[0]))
	if err != nil {
		return errno(err)
	}
	whence := uint32(st[2])
	if whence > uint32(wasi.WhenceEnd) {
		return wasi.EINVAL
	}
	need := wasi.RightFdSeek
	if int64(st[1]) == 0 && whence == uint32(wasi.WhenceCur) && e.rightsBase&wasi.RightFdSeek == 0 {
		need = wasi.RightFdTell
	}
	if err := needRights(e, need); err != nil {
		return errno(err)
	}
	if _, err := memRead(m.Memory(), uint32(st[3]), 8); err != nil {
		return errno(err)
	}
	n, err := e.file.seek(int64(st[1]), int(whence))
	if err != nil {
		return errno(err)
	}
	return errno(memPutU64(m.Memory(), uint32(st[3]), uint64(n)))
}

func (s *state) fdTell(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	e, err := s.fdWith(int32(st[0]), wasi.RightFdTell)
	if err != nil {
		return errno(err)
	}
	if _, err := memRead(m.Memory(), uint32(st[1]), 8); err != nil {
		return errno(err)
	}
	n, err := e.file.seek(0, int(wasi.WhenceCur))
	if err != nil {
		return errno(err)
	}
	return errno(memPutU64(m.Memory(), uint32(st[1]), uint64(n)))
}
