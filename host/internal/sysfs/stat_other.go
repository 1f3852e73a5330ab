//go:build !linux

package sysfs

import (
	"io/fs"
	"os"
	"syscall"
	"time"
)

func statFromInfo(fi fs.FileInfo) Filestat {
	t := uint64(fi.ModTime().UnixNano())
	return Filestat{Filetype: FiletypeOf(fi.Mode()), Size: uint64(fi.Size()), Nlink: 1, Atim: t, Mtim: t, Ctim: t}
}

func inoOf(fs.FileInfo) uint64 { return 0 }

// futimens is not offered off Linux: Go has no portable way to set an open
// file's times by descriptor, and by name (os.Chtimes) would resolve the
// name outside the directory capability.
func futimens(*os.File, time.Time, time.Time, bool, bool) error { return syscall.ENOTSUP }

func rawRW(uintptr, []byte, bool) (int, error) { return 0, syscall.ENOSYS }
