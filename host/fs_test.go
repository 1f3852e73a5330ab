package host

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGoGuestHello(t *testing.T) {
	wasm := hostGoGuest(t, "hello")
	code, out, errOut, err := hostRunGuest(t, wasm, NewConfig().WithArgs("hello", "x", "y z").WithEnv("A", "1").WithEnv("EXIT", "7"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	diffLines(t, out, "hello [x y z]\nenv A=1\nenv EXIT=7\n")
	if errOut != "to stderr\n" {
		t.Errorf("stderr %q", errOut)
	}
}

func TestGoGuestFileSystem(t *testing.T) {
	wasm := hostGoGuest(t, "fsops")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	ro := filepath.Join(dir, "ro")
	for _, d := range []string{data, ro} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ro, "r.txt"), []byte("read only"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(data, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../..", filepath.Join(data, "up")); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig().WithArgs("fsops").WithDir(data, "/data", ReadWrite).WithDir(ro, "/data/ro", ReadOnly)
	code, out, errOut, err := hostRunGuest(t, wasm, cfg, time.Minute)
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v stderr %s", code, err, errOut)
	}
	const want = `write: ok
read: ok
content: "hello"
open-append: ok
append: ok
close: ok
stat: ok
size: 11 regular: true
open-rdwr: ok
pread: ok
pread: "world"
pwrite: ok
seek: ok
offset: 6
rest: "World"
truncate: ok
close: ok
content: "hello"
mkdir: ok
mkdir-again: errno=20
write-sub: ok
readdir: ok
entries: a.txt evil sub/ up
rename: ok
stat-old: errno=44
read-new: ok
content: "hello"
rmdir-nonempty: errno=55
unlink-dir: errno=31
rmdir-file: errno=54
unlink: ok
unlink-missing: errno=44
unlink-b: ok
rmdir: ok
symlink-rel: ok
readlink: ok
link: "x.txt"
unlink-link: ok
symlink-abs: errno=63
escape-abs-symlink: errno=63
escape-rel-symlink: errno=63
escape-rel-symlink-dir: errno=63
no-preopen: errno=8
ro-read: ok
content: "read only"
ro-write: errno=69
ro-remove: errno=69
ro-mkdir: errno=69
write-h: ok
link: ok
content: "h"
`
	diffLines(t, out, want)
	// Nothing escaped onto the host outside the mounts.
	if _, err := os.Lstat(filepath.Join(data, "abs")); err == nil {
		t.Error("absolute symlink was created")
	}
}

func TestCGuestFileSystem(t *testing.T) {
	wasm := hostCGuest(t, "cfs")
	dir := t.TempDir()
	code, out, errOut, err := hostRunGuest(t, wasm, NewConfig().WithArgs("cfs").WithDir(dir, "/data", ReadWrite), time.Minute)
	if err != nil || code != 3 {
		t.Fatalf("code %d err %v stderr %s", code, err, errOut)
	}
	diffLines(t, out, `fopen: ok
fclose: ok
open: ok
read 7: from C
lseek: ok
after seek: C
stat: ok
size 7 reg 1
mkdir: ok
rename: ok
opendir: ok
entries: . .. d
rmdir-nonempty: errno=Directory not empty
unlink: ok
rmdir: ok
open-missing: errno=No such file or directory
raw-dotdot: wasi errno 63
raw-abs: wasi errno 63
raw-sub-dotdot: wasi errno 63
nanosleep: ok
slept >= 2ms: 1
realtime sane: 1
`)
}

// TestGoGuestRootAcrossDirectories: os.Root Rename and Link between two
// subdirectories (two directory fds in Go's wasip1 port) and the rename of
// a directory onto an empty one (os.Root's and syscall.Rename's) give,
// under wasmgate, exactly what the same program gives natively on Linux.
func TestGoGuestRootAcrossDirectories(t *testing.T) {
	wasm := hostGoGuest(t, "rootops")
	native := nativeGuest(t, "rootops")
	ndir := t.TempDir()
	want, err := exec.Command(native, ndir).CombinedOutput()
	if err != nil {
		t.Fatalf("native: %v\n%s", err, want)
	}
	for _, line := range []string{"rename a/f b/g: ok", "link b/g a/h: ok", "same file: true", "syscall rename src3 empty2: ok", "read empty2/y: ok"} {
		if !strings.Contains(string(want), line+"\n") {
			t.Fatalf("native output lacks %q (this Linux behaves unexpectedly):\n%s", line, want)
		}
	}
	gdir := t.TempDir()
	code, out, errOut, err := hostRunGuest(t, wasm, NewConfig().WithArgs("rootops", "/data").WithDir(gdir, "/data", ReadWrite), time.Minute)
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v stderr %s", code, err, errOut)
	}
	diffLines(t, out, string(want))
	if _, err := os.Lstat(filepath.Join(filepath.Dir(gdir), "escaped")); err == nil {
		t.Error("the guest created a file outside its directory")
	}
}
