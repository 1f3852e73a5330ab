package host

import (
	"context"
	"syscall"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmgate/wasmgate/host/internal/sysfs"
	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// The path_* functions. Each one decodes its arguments, finds the directory
// fd (EBADF; ENOTDIR for an fd that is not a directory), checks the rights
// it needs on it (needRights), and hands the guest's path to internal/sysfs,
// which alone decides what the path may reach.

// needRights returns nil when e holds every right in r, else ENOTCAPABLE,
// or EROFS when the rights are missing because e is a directory of a
// read-only mount (a clearer answer, and what the file system would say).
func needRights(e *fdEntry, r wasi.Rights) error {
	missing := r &^ e.rightsBase
	if missing == 0 {
		return nil
	}
	if sf, ok := e.file.(*sysFile); ok && sf.d != nil && sf.d.ReadOnly() && missing&^wasi.RightsDirModify == 0 {
		return syscall.EROFS
	}
	return wasi.ENOTCAPABLE
}

// dirEntry returns fd's entry and directory, checking that it holds the
// rights r.
func (s *state) dirEntry(fd int32, r wasi.Rights) (*fdEntry, sysfs.Dir, error) {
	e, err := s.fds.get(fd)
	if err != nil {
		return nil, nil, err
	}
	sf, ok := e.file.(*sysFile)
	if !ok || sf.d == nil {
		return nil, nil, syscall.ENOTDIR
	}
	if err := needRights(e, r); err != nil {
		return nil, nil, err
	}
	return e, sf.d, nil
}

// guestPath reads a path argument from guest memory. Its content is
// checked by sysfs.
func guestPath(m api.Module, ptr, n uint32) (string, error) {
	if n > sysfs.MaxPath {
		return "", syscall.ENAMETOOLONG
	}
	return memString(m.Memory(), ptr, n)
}

// dirAndPath resolves (fd, path ptr, path len) to the directory capability
// and the path, checking the rights r on the directory.
func (s *state) dirAndPath(m api.Module, fd int32, ptr, n uint32, r wasi.Rights) (sysfs.Dir, string, error) {
	_, d, err := s.dirEntry(fd, r)
	if err != nil {
		return nil, "", err
	}
	p, err := guestPath(m, ptr, n)
	if err != nil {
		return nil, "", err
	}
	return d, p, nil
}

func (s *state) pathCreateDirectory(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]), wasi.RightPathCreateDirectory)
	if err != nil {
		return errno(err)
	}
	return errno(d.MkdirAt(p))
}

func (s *state) pathFilestatGet(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[2]), uint32(st[3]), wasi.RightPathFilestatGet)
	if err != nil {
		return errno(err)
	}
	if _, err := memRead(m.Memory(), uint32(st[4]), 64); err != nil {
		return errno(err)
	}
	fs, err := d.StatAt(p, uint32(st[1])&wasi.LookupSymlinkFollow != 0)
	if err != nil {
		return errno(err)
	}
	return errno(putFilestat(m.Memory(), uint32(st[4]), fromSysStat(fs)))
}

func (s *state) pathFilestatSetTimes(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[2]), uint32(st[3]), wasi.RightPathFilestatSetTimes)
	if err != nil {
		return errno(err)
	}
	a, mt, setA, setM, err := times(st[4], st[5], uint16(st[6]))
	if err != nil {
		return errno(err)
	}
	follow := uint32(st[1])&wasi.LookupSymlinkFollow != 0
	if !setA && !setM {
		_, err := d.StatAt(p, follow)
		return errno(err)
	}
	return errno(d.SetTimesAt(p, follow, a, mt, setA, setM))
}

// pathLink makes a hard link, also between two different directory fds of
// the guest. With SYMLINK_FOLLOW a symbolic link at the old path is
// resolved (inside its directory) and the link made to its target.
func (s *state) pathLink(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	od, op, err := s.dirAndPath(m, int32(st[0]), uint32(st[2]), uint32(st[3]), wasi.RightPathLinkSource)
	if err != nil {
		return errno(err)
	}
	nd, np, err := s.dirAndPath(m, int32(st[4]), uint32(st[5]), uint32(st[6]), wasi.RightPathLinkTarget)
	if err != nil {
		return errno(err)
	}
	return errno(od.LinkAt(op, uint32(st[1])&wasi.LookupSymlinkFollow != 0, nd, np))
}

// pathOpen opens path relative to the directory fd. It needs PATH_OPEN on
// the directory, and PATH_CREATE_FILE for O_CREAT and PATH_FILESTAT_SET_SIZE
// for O_TRUNC. The file is opened for reading and/or writing as FD_READ
// (or FD_READDIR) and FD_WRITE in rights_base ask, as wasi-libc and Go
// request them; asking for one the directory's inheriting rights lack is
// ENOTCAPABLE (EROFS for writing under a read-only mount). The new fd's
// rights are those asked for, within the directory's inheriting rights and
// what applies to a file or a directory: rights never grow. (One
// exception to "asked for", for Go guests: see PATH_FILESTAT_SET_SIZE
// below.)
func (s *state) pathOpen(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	fd := int32(st[0])
	dirflags, oflags := uint32(st[1]), uint16(st[4])
	base, inh, fdflags := st[5], st[6], uint16(st[7])
	resPtr := uint32(st[8])
	if oflags&^(wasi.OflagCreat|wasi.OflagDirectory|wasi.OflagExcl|wasi.OflagTrunc) != 0 {
		return wasi.EINVAL
	}
	const allFd = wasi.FdflagAppend | wasi.FdflagDsync | wasi.FdflagNonblock | wasi.FdflagRsync | wasi.FdflagSync
	if fdflags&^allFd != 0 {
		return wasi.EINVAL
	}
	need := wasi.RightPathOpen
	if oflags&wasi.OflagCreat != 0 {
		need |= wasi.RightPathCreateFile
	}
	if oflags&wasi.OflagTrunc != 0 {
		need |= wasi.RightPathFilestatSetSize
	}
	parent, d, err := s.dirEntry(fd, need)
	if err != nil {
		return errno(err)
	}
	p, err := guestPath(m, uint32(st[2]), uint32(st[3]))
	if err != nil {
		return errno(err)
	}
	if _, err := memRead(m.Memory(), resPtr, 4); err != nil {
		return errno(err)
	}
	if mode := base & (wasi.RightFdRead | wasi.RightFdWrite); mode&^parent.rightsInheriting != 0 {
		if d.ReadOnly() && mode&^parent.rightsInheriting == wasi.RightFdWrite {
			return wasi.EROFS
		}
		return wasi.ENOTCAPABLE
	}
	a := sysfs.OpenArgs{
		Follow:    dirflags&wasi.LookupSymlinkFollow != 0,
		Read:      base&(wasi.RightFdRead|wasi.RightFdReaddir) != 0,
		Write:     base&wasi.RightFdWrite != 0,
		Create:    oflags&wasi.OflagCreat != 0,
		Excl:      oflags&wasi.OflagExcl != 0,
		Trunc:     oflags&wasi.OflagTrunc != 0,
		Directory: oflags&wasi.OflagDirectory != 0,
		Append:    fdflags&wasi.FdflagAppend != 0,
		Sync:      fdflags&(wasi.FdflagDsync|wasi.FdflagRsync|wasi.FdflagSync) != 0,
	}
	if a.Directory && (a.Create || a.Trunc) {
		return wasi.EINVAL
	}
	f, err := d.OpenAt(p, a)
	if err != nil {
		return errno(err)
	}
	e := &fdEntry{file: newSysFile(f), flags: fdflags}
	if f.Filetype() == wasi.FiletypeDirectory {
		// Go's wasip1 port counts PATH_FILESTAT_SET_SIZE among the write
		// rights and leaves it out when it opens a directory for reading,
		// then opens files below that directory with O_TRUNC
		// (os.Root.WriteFile). So a directory gets it whenever its parent
		// may pass it on; fd_fdstat_set_rights still takes it away.
		base |= wasi.RightPathFilestatSetSize
		e.rightsBase = base & wasi.RightsDirBase & parent.rightsInheriting
		e.rightsInheriting = inh & parent.rightsInheriting
	} else {
		e.rightsBase = base & wasi.RightsFileBase & parent.rightsInheriting
	}
	nfd, err := s.fds.insert(e)
	if err != nil {
		_ = f.Close()
		return errno(err)
	}
	return errno(memPutU32(m.Memory(), resPtr, uint32(nfd)))
}

func (s *state) pathReadlink(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]), wasi.RightPathReadlink)
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
	target, err := d.ReadlinkAt(p)
	if err != nil {
		return errno(err)
	}
	// Truncated silently, like readlink(2).
	n := copy(out, target)
	return errno(memPutU32(mem, uint32(st[5]), uint32(n)))
}

func (s *state) pathRemoveDirectory(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]), wasi.RightPathRemoveDirectory)
	if err != nil {
		return errno(err)
	}
	return errno(d.RmdirAt(p))
}

// pathRename renames, also between two different directory fds of the
// guest, with rename(2)'s semantics (a directory replaces an empty one).
func (s *state) pathRename(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	od, op, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]), wasi.RightPathRenameSource)
	if err != nil {
		return errno(err)
	}
	nd, np, err := s.dirAndPath(m, int32(st[3]), uint32(st[4]), uint32(st[5]), wasi.RightPathRenameTarget)
	if err != nil {
		return errno(err)
	}
	return errno(od.RenameAt(op, nd, np))
}

func (s *state) pathSymlink(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	target, err := guestPath(m, uint32(st[0]), uint32(st[1]))
	if err != nil {
		return errno(err)
	}
	d, p, err := s.dirAndPath(m, int32(st[2]), uint32(st[3]), uint32(st[4]), wasi.RightPathSymlink)
	if err != nil {
		return errno(err)
	}
	return errno(d.SymlinkAt(target, p))
}

func (s *state) pathUnlinkFile(_ context.Context, m api.Module, st []uint64) wasi.Errno {
	d, p, err := s.dirAndPath(m, int32(st[0]), uint32(st[1]), uint32(st[2]), wasi.RightPathUnlinkFile)
	if err != nil {
		return errno(err)
	}
	return errno(d.UnlinkAt(p))
}
