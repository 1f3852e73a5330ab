package host

import (
	"strings"
	"syscall"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
)

// dirent is one directory entry as fd_readdir reports it.
type dirent struct {
	name string
	ino  uint64
	typ  wasi.Filetype
}

// dirListing is the snapshot of a directory that fd_readdir pages through.
// It is taken at cookie 0, so a guest that rewinds sees fresh contents.
type dirListing struct {
	ents []dirent
}

// openArgs are the decoded path_open parameters.
type openArgs struct {
	follow    bool // lookupflags SYMLINK_FOLLOW
	read      bool
	write     bool
	creat     bool
	excl      bool
	trunc     bool
	directory bool // O_DIRECTORY: must be a directory
	append    bool
	sync      bool // any of DSYNC, RSYNC, SYNC
}

// dirFile is a directory capability: every path operation is relative to
// it and can never reach outside it. Paths given to its methods are already
// checked by checkPath (relative, no NUL).
type dirFile interface {
	file
	openAt(p string, a openArgs) (file, error)
	statAt(p string, follow bool) (filestat, error)
	mkdirAt(p string) error
	unlinkAt(p string) error
	rmdirAt(p string) error
	// renameAt and linkAt are only called with dst of the same concrete
	// type; across capabilities the host returns EXDEV.
	renameAt(oldp string, dst dirFile, newp string) error
	linkAt(oldp string, follow bool, dst dirFile, newp string) error
	symlinkAt(target, p string) error
	readlinkAt(p string) (string, error)
	setTimesAt(p string, follow bool, atim, mtim time.Time, setA, setM bool) error
	// list returns the directory's entries including "." and "..".
	list() ([]dirent, error)
}

// checkPath rejects guest paths that can never name something inside the
// directory capability: absolute paths (EPERM, the "escape" errno) and
// paths with NUL (EINVAL). ".." and symlinks are left to the directory
// implementation (os.Root), which refuses to leave its root. An empty path
// is ENOENT, as for openat(2).
func checkPath(p string) error {
	switch {
	case p == "":
		return syscall.ENOENT
	case strings.IndexByte(p, 0) >= 0:
		return syscall.EINVAL
	case p[0] == '/':
		return wasi.ErrPathEscapes
	}
	return nil
}

// nsTime converts WASI ns since the epoch to time.Time.
func nsTime(ns uint64) time.Time { return time.Unix(0, int64(ns)) }
