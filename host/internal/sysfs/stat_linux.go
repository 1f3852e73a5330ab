//go:build linux

package sysfs

import (
	"io/fs"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// statFromInfo converts a FileInfo from the host to a WASI filestat.
func statFromInfo(fi fs.FileInfo) Filestat {
	st := Filestat{
		Filetype: FiletypeOf(fi.Mode()),
		Size:     uint64(fi.Size()),
		Nlink:    1,
		Mtim:     uint64(fi.ModTime().UnixNano()),
	}
	st.Atim, st.Ctim = st.Mtim, st.Mtim
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.Dev = uint64(s.Dev)
		st.Ino = uint64(s.Ino)
		st.Nlink = uint64(s.Nlink)
		st.Atim = uint64(time.Unix(int64(s.Atim.Sec), int64(s.Atim.Nsec)).UnixNano())
		st.Ctim = uint64(time.Unix(int64(s.Ctim.Sec), int64(s.Ctim.Nsec)).UnixNano())
	}
	return st
}

func inoOf(fi fs.FileInfo) uint64 {
	if fi == nil {
		return 0
	}
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Ino)
	}
	return 0
}

// futimens sets an open file's times with nanosecond precision, leaving
// the ones not asked for unchanged (UTIME_OMIT).
func futimens(f *os.File, atim, mtim time.Time, setA, setM bool) error {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if setA {
		ts[0] = unix.NsecToTimespec(atim.UnixNano())
	}
	if setM {
		ts[1] = unix.NsecToTimespec(mtim.UnixNano())
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		// utimensat(fd, NULL, ts, 0) is futimens(3); x/sys has no wrapper
		// that passes a NULL path.
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if e != 0 {
			serr = e
		}
	})
	if cerr != nil {
		return cerr
	}
	return serr
}

// rawRW is one read(2) or write(2) on fd, without Go's netpoller.
func rawRW(fd uintptr, b []byte, write bool) (int, error) {
	if write {
		return syscall.Write(int(fd), b)
	}
	return syscall.Read(int(fd), b)
}
