//go:build wasip1

// Command rootops exercises os.Root across directories of one root: Rename
// and Link between two subdirectories (which Go's wasip1 port does with
// two directory fds: path_rename and path_link between different fds), the
// rename of a directory onto an empty one (os.Root refuses it with EEXIST
// on Linux, in Go itself; syscall.Rename, straight to rename(2) or
// path_rename, replaces the empty directory), and the cases rename(2)
// refuses. It prints one line per step ("step: ok" or "step: ERRNO"), then
// the tree. The host test runs it under wasmgate and natively on Linux and
// wants the same output.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rootops DIR")
		os.Exit(2)
	}
	r, err := os.OpenRoot(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer r.Close()
	step := func(name string, err error) { fmt.Printf("%s: %s\n", name, describe(err)) }

	step("mkdir a", r.Mkdir("a", 0o755))
	step("mkdir b", r.Mkdir("b", 0o755))
	step("write a/f", r.WriteFile("a/f", []byte("one"), 0o644))
	step("rename a/f b/g", r.Rename("a/f", "b/g"))
	b, err := r.ReadFile("b/g")
	step("read b/g", err)
	fmt.Printf("content: %q\n", b)
	step("link b/g a/h", r.Link("b/g", "a/h"))
	g, err1 := r.Stat("b/g")
	h, err2 := r.Stat("a/h")
	fmt.Printf("same file: %v\n", err1 == nil && err2 == nil && os.SameFile(g, h))
	step("link b/g a/h again", r.Link("b/g", "a/h"))

	step("mkdir src", r.Mkdir("src", 0o755))
	step("write src/x", r.WriteFile("src/x", []byte("x"), 0o644))
	step("mkdir empty", r.Mkdir("empty", 0o755))
	step("rename src empty", r.Rename("src", "empty"))
	_, err = r.Stat("src")
	step("stat src", err)
	b, err = r.ReadFile("empty/x")
	step("read empty/x", err)
	fmt.Printf("content: %q\n", b)

	step("mkdir src3", r.Mkdir("src3", 0o755))
	step("write src3/y", r.WriteFile("src3/y", []byte("y"), 0o644))
	step("mkdir empty2", r.Mkdir("empty2", 0o755))
	base := strings.TrimSuffix(os.Args[1], "/")
	step("syscall rename src3 empty2", syscall.Rename(base+"/src3", base+"/empty2"))
	b, err = r.ReadFile("empty2/y")
	step("read empty2/y", err)
	fmt.Printf("content: %q\n", b)

	step("mkdir src2", r.Mkdir("src2", 0o755))
	step("rename src2 onto non-empty b", r.Rename("src2", "b"))
	step("rename file a/h onto dir b", r.Rename("a/h", "b"))
	step("rename dir src2 onto file a/h", r.Rename("src2", "a/h"))
	step("rename a/h into b via ..", r.Rename("a/h", "a/../b/h2"))
	step("link dir a", r.Link("a", "alink"))
	step("rename escaping", r.Rename("b/h2", "../escaped"))
	step("link escaping", r.Link("b/h2", "a/../../escaped"))

	var names []string
	fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			names = append(names, p+"!"+describe(err))
			return nil
		}
		if d.IsDir() {
			p += "/"
		}
		names = append(names, p)
		return nil
	})
	sort.Strings(names)
	fmt.Println("tree:", strings.Join(names, " "))
}

// describe names an error portably: "ok", the errno's name, or "escapes"
// for os.Root's refusal to leave the root.
func describe(err error) string {
	if err == nil {
		return "ok"
	}
	for _, e := range []struct {
		errno syscall.Errno
		name  string
	}{
		{syscall.ENOENT, "ENOENT"}, {syscall.EEXIST, "EEXIST"}, {syscall.ENOTEMPTY, "ENOTEMPTY"},
		{syscall.EISDIR, "EISDIR"}, {syscall.ENOTDIR, "ENOTDIR"}, {syscall.EXDEV, "EXDEV"},
		{syscall.EPERM, "EPERM"}, {syscall.EACCES, "EACCES"}, {syscall.EINVAL, "EINVAL"},
		{syscall.EBUSY, "EBUSY"},
	} {
		if errors.Is(err, e.errno) {
			return e.name
		}
	}
	if strings.Contains(err.Error(), "path escapes") {
		return "escapes"
	}
	return "other: " + err.Error()
}
