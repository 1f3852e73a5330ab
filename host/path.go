package host

import (
	"context"
	"syscall"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// maxPath bounds guest path lengths (PATH_MAX), so a guest cannot make the
// host copy huge strings.
const maxPath = 4096

// dirAndPath resolves (fd, path ptr, path len) to the directory capability
// and the checked relative path.
func (s *state) dirAndPath(m api.Module, fd int32, ptr, n uint32) (dirFile, string, error) {
	e, err := s.fds.get(fd)
	if err != nil {
		return nil, "", err
	}
	if n > maxPath {
		return nil, "", syscall.ENAMETOOLONG
	}
	p, err := memString(m.Memory(), ptr, n)
	if err != nil {
		return nil, "", err
	}
	d, ok := e.file.(dirFile)
	if !ok {
		return nil, "", syscall.ENOTDIR
	}
	if err := checkPath(p); err != nil {
		return nil, "", err
	}
	return d, p, nil
}

func (s *state) pathCreateDirectory(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]))
	if err != nil {
		return errno(err)
	}
	return errno(d.mkdirAt(p))
}

func (s *state) pathFilestatGet(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[2]), uint32(st[3]))
	if err != nil {
		return errno(err)
	}
	if _, err := memRead(m.Memory(), uint32(st[4]), 64); err != nil {
		return errno(err)
	}
	fs, err := d.statAt(p, uint32(st[1])&wasi.LookupSymlinkFollow != 0)
	if err != nil {
		return errno(err)
	}
	return errno(putFilestat(m.Memory(), uint32(st[4]), fs))
}

func (s *state) pathFilestatSetTimes(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[2]), uint32(st[3]))
	if err != nil {
		return errno(err)
	}
	a, mt, setA, setM, err := times(st[4], st[5], uint16(st[6]))
	if err != nil {
		return errno(err)
	}
	if !setA && !setM {
		_, err := d.statAt(p, true)
		return errno(err)
	}
	return errno(d.setTimesAt(p, uint32(st[1])&wasi.LookupSymlinkFollow != 0, a, mt, setA, setM))
}

func (s *state) pathLink(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	od, op, err := s.dirAndPath(m, int32(st[0]), uint32(st[2]), uint32(st[3]))
	if err != nil {
		return errno(err)
	}
	nd, np, err := s.dirAndPath(m, int32(st[4]), uint32(st[5]), uint32(st[6]))
	if err != nil {
		return errno(err)
	}
	return errno(od.linkAt(op, uint32(st[1])&wasi.LookupSymlinkFollow != 0, nd, np))
}

// pathOpen opens path relative to the directory fd. Rights requested are
// recorded (intersected with what the directory may hand out); whether the
// host file is opened for reading and/or writing follows FD_READ / FD_WRITE
// in rights_base, as wasi-libc and Go request them.
func (s *state) pathOpen(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	fd := int32(st[0])
	dirflags, oflags := uint32(st[1]), uint16(st[4])
	base, inh, fdflags := st[5], st[6], uint16(st[7])
	resPtr := uint32(st[8])
	parent, err := s.fds.get(fd)
	if err != nil {
		return errno(err)
	}
	d, p, err := s.dirAndPath(m, fd, uint32(st[2]), uint32(st[3]))
	if err != nil {
		return errno(err)
	}
	if _, err := memRead(m.Memory(), resPtr, 4); err != nil {
		return errno(err)
	}
	if oflags&^(wasi.OflagCreat|wasi.OflagDirectory|wasi.OflagExcl|wasi.OflagTrunc) != 0 {
		return wasi.EINVAL
	}
	const allFd = wasi.FdflagAppend | wasi.FdflagDsync | wasi.FdflagNonblock | wasi.FdflagRsync | wasi.FdflagSync
	if fdflags&^allFd != 0 {
		return wasi.EINVAL
	}
	a := openArgs{
		follow:    dirflags&wasi.LookupSymlinkFollow != 0,
		read:      base&(wasi.RightFdRead|wasi.RightFdReaddir) != 0,
		write:     base&wasi.RightFdWrite != 0,
		creat:     oflags&wasi.OflagCreat != 0,
		excl:      oflags&wasi.OflagExcl != 0,
		trunc:     oflags&wasi.OflagTrunc != 0,
		directory: oflags&wasi.OflagDirectory != 0,
		append:    fdflags&wasi.FdflagAppend != 0,
		sync:      fdflags&(wasi.FdflagDsync|wasi.FdflagRsync|wasi.FdflagSync) != 0,
	}
	if a.directory && (a.creat || a.trunc) {
		return wasi.EINVAL
	}
	f, err := d.openAt(p, a)
	if err != nil {
		return errno(err)
	}
	e := &fdEntry{file: f, flags: fdflags}
	if f.filetype() == wasi.FiletypeDirectory {
		e.rightsBase = base & wasi.RightsDirInheriting & parent.rightsInheriting
		e.rightsInheriting = inh & parent.rightsInheriting
	} else {
		e.rightsBase = base & wasi.RightsFileBase & parent.rightsInheriting
		e.rightsInheriting = 0
		// Reading or writing was decided from the same bits, so keep the
		// fd usable the way it was opened even if the directory's
		// inheriting set was narrowed later.
		if a.read {
			e.rightsBase |= wasi.RightFdRead
		}
		if a.write {
			e.rightsBase |= wasi.RightFdWrite
		}
	}
	nfd, err := s.fds.insert(e)
	if err != nil {
		_ = f.close()
		return errno(err)
	}
	return errno(memPutU32(m.Memory(), resPtr, uint32(nfd)))
}

func (s *state) pathReadlink(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]))
	if err != nil {
		return errno(err)
	}
	mem := m.Memory()
	out, err := memRead(mem, uint32(st[3]), uint32(st[4]))
	if err != nil {
		return errno(err)
	}
	if _, err := memRead(mem, uint32(st[5]), 4); err != nil {
		return errno(err)
	}
	target, err := d.readlinkAt(p)
	if err != nil {
		return errno(err)
	}
	// Truncated silently, like readlink(2).
	n := copy(out, target)
	return errno(memPutU32(mem, uint32(st[5]), uint32(n)))
}

func (s *state) pathRemoveDirectory(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]))
	if err != nil {
		return errno(err)
	}
	return errno(d.rmdirAt(p))
}

func (s *state) pathRename(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	od, op, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]))
	if err != nil {
		return errno(err)
	}
	nd, np, err := s.dirAndPath(m, int32(st[3]), uint32(st[4]), uint32(st[5]))
	if err != nil {
		return errno(err)
	}
	return errno(od.renameAt(op, nd, np))
}

func (s *state) pathSymlink(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	n := uint32(st[1])
	if n > maxPath {
		return wasi.ENAMETOOLONG
	}
	target, err := memString(m.Memory(), uint32(st[0]), n)
	if err != nil {
		return errno(err)
	}
	d, p, err := s.dirAndPath(m, int32(st[2]), uint32(st[3]), uint32(st[4]))
	if err != nil {
		return errno(err)
	}
	return errno(d.symlinkAt(target, p))
}

func (s *state) pathUnlinkFile(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]))
	if err != nil {
		return errno(err)
	}
	return errno(d.unlinkAt(p))
}
