//go:build !linux

package host

import (
	"io/fs"
	"os"
	"syscall"
	"time"
)

func statFromInfo(fi fs.FileInfo) filestat {
	t := uint64(fi.ModTime().UnixNano())
	return filestat{filetype: filetypeOf(fi.Mode()), size: uint64(fi.Size()), nlink: 1, atim: t, mtim: t, ctim: t}
}

func inoOf(fs.FileInfo) uint64 { return 0 }

func futimens(f *os.File, atim, mtim time.Time, setA, setM bool) error {
	if !setA {
		atim = time.Time{}
	}
	if !setM {
		mtim = time.Time{}
	}
	return os.Chtimes(f.Name(), atim, mtim)
}

func rawRW(uintptr, []byte, bool) (int, error) { return 0, syscall.ENOSYS }
