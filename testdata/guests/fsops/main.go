//go:build wasip1

// Command fsops performs a fixed sequence of file-system operations under
// the preopen /data and prints one line per step: "step: result" or
// "step: errno=N" (N is the WASI errno). The host test compares the output
// line by line. /data/ro is expected to be a read-only mount, and the host
// test plants escape symlinks: /data/evil -> /etc, /data/up -> ../..
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
)

func res(step string, err error) {
	if err == nil {
		fmt.Printf("%s: ok\n", step)
		return
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		fmt.Printf("%s: errno=%d\n", step, uint32(e))
		return
	}
	fmt.Printf("%s: error %v\n", step, err)
}

func main() {
	res("write", os.WriteFile("/data/a.txt", []byte("hello"), 0o644))
	b, err := os.ReadFile("/data/a.txt")
	res("read", err)
	fmt.Printf("content: %q\n", b)

	f, err := os.OpenFile("/data/a.txt", os.O_APPEND|os.O_WRONLY, 0)
	res("open-append", err)
	if err == nil {
		_, err = f.WriteString(" world")
		res("append", err)
		res("close", f.Close())
	}
	st, err := os.Stat("/data/a.txt")
	res("stat", err)
	if err == nil {
		fmt.Printf("size: %d regular: %v\n", st.Size(), st.Mode().IsRegular())
	}

	// Seek, pread, pwrite, truncate.
	f, err = os.OpenFile("/data/a.txt", os.O_RDWR, 0)
	res("open-rdwr", err)
	if err == nil {
		buf := make([]byte, 5)
		_, err = f.ReadAt(buf, 6)
		res("pread", err)
		fmt.Printf("pread: %q\n", buf)
		_, err = f.WriteAt([]byte("W"), 6)
		res("pwrite", err)
		off, err := f.Seek(-5, io.SeekEnd)
		res("seek", err)
		fmt.Printf("offset: %d\n", off)
		rest, _ := io.ReadAll(f)
		fmt.Printf("rest: %q\n", rest)
		res("truncate", f.Truncate(5))
		res("close", f.Close())
	}
	b, _ = os.ReadFile("/data/a.txt")
	fmt.Printf("content: %q\n", b)

	res("mkdir", os.Mkdir("/data/sub", 0o755))
	res("mkdir-again", os.Mkdir("/data/sub", 0o755))
	res("write-sub", os.WriteFile("/data/sub/b.txt", []byte("b"), 0o644))
	ents, err := os.ReadDir("/data")
	res("readdir", err)
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Printf("entries: %s\n", strings.Join(names, " "))

	res("rename", os.Rename("/data/a.txt", "/data/sub/c.txt"))
	_, err = os.Stat("/data/a.txt")
	res("stat-old", err)
	b, err = os.ReadFile("/data/sub/c.txt")
	res("read-new", err)
	fmt.Printf("content: %q\n", b)

	res("rmdir-nonempty", syscall.Rmdir("/data/sub"))
	res("unlink-dir", syscall.Unlink("/data/sub"))
	res("rmdir-file", syscall.Rmdir("/data/sub/c.txt"))
	res("unlink", os.Remove("/data/sub/c.txt"))
	res("unlink-missing", os.Remove("/data/sub/c.txt"))
	res("unlink-b", os.Remove("/data/sub/b.txt"))
	res("rmdir", os.Remove("/data/sub"))

	res("symlink-rel", os.Symlink("x.txt", "/data/link"))
	l, err := os.Readlink("/data/link")
	res("readlink", err)
	fmt.Printf("link: %q\n", l)
	res("unlink-link", os.Remove("/data/link"))
	res("symlink-abs", os.Symlink("/etc/passwd", "/data/abs"))

	// Escapes through symlinks the host planted.
	_, err = os.ReadFile("/data/evil/passwd")
	res("escape-abs-symlink", err)
	_, err = os.ReadFile("/data/up/etc/passwd")
	res("escape-rel-symlink", err)
	_, err = os.ReadDir("/data/up")
	res("escape-rel-symlink-dir", err)
	_, err = os.ReadFile("/outside")
	res("no-preopen", err)

	// Read-only mount.
	b, err = os.ReadFile("/data/ro/r.txt")
	res("ro-read", err)
	fmt.Printf("content: %q\n", b)
	res("ro-write", os.WriteFile("/data/ro/new.txt", []byte("x"), 0o644))
	res("ro-remove", os.Remove("/data/ro/r.txt"))
	res("ro-mkdir", os.Mkdir("/data/ro/d", 0o755))

	// Hard link inside the root works; the link shares the data.
	res("write-h", os.WriteFile("/data/h1", []byte("h"), 0o644))
	res("link", os.Link("/data/h1", "/data/h2"))
	b, _ = os.ReadFile("/data/h2")
	fmt.Printf("content: %q\n", b)
}
