//go:build linux

package sysfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/host/internal/wasi"
	"github.com/wasmgate/wasmgate/internal/testenv"
)

// secret is the content of the file outside the directory capability: no
// operation through the capability may ever read it, and nothing outside
// may change.
const secret = "SECRET outside the preopen"

// impl is one Dir implementation under test.
type impl struct {
	name string
	open func(dir string, ro bool) (Dir, error)
}

func impls(t testing.TB) []impl {
	return []impl{
		{"openat2", func(dir string, ro bool) (Dir, error) {
			d, err := OpenHostDir(dir, ro)
			if err == nil {
				if _, ok := d.(*beneathDir); !ok {
					// A kernel without openat2 (before 5.6, or refused by
					// seccomp): OpenHostDir fell back to os.Root, which
					// the "osroot" cases cover.
					d.Close()
					testenv.Unsupported(t, "openat2 unavailable (kernel before 5.6 or seccomp); OpenHostDir uses os.Root")
				}
			}
			return d, err
		}},
		{"osroot", OpenRootDir},
	}
}

// sandbox is a base directory holding "outside" (never to be touched),
// "root" (the directory capability) and "root2" (a second one).
type sandbox struct {
	base, outside, root, root2 string
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	base := t.TempDir()
	s := &sandbox{base: base, outside: filepath.Join(base, "outside"), root: filepath.Join(base, "root"), root2: filepath.Join(base, "root2")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{s.outside, filepath.Join(s.outside, "dir"), s.root, s.root2,
		filepath.Join(s.root, "sub"), filepath.Join(s.root, "sub", "deep"), filepath.Join(s.root, "empty")} {
		must(os.MkdirAll(d, 0o755))
	}
	must(os.WriteFile(filepath.Join(s.outside, "secret"), []byte(secret), 0o644))
	must(os.WriteFile(filepath.Join(s.root, "sub", "f"), []byte("inside"), 0o644))
	must(os.WriteFile(filepath.Join(s.root2, "g"), []byte("root2"), 0o644))
	links := map[string]string{
		"abs":    filepath.Join(s.outside, "secret"),
		"absdir": s.outside,
		"rel":    "../outside/secret",
		"reldir": "../outside",
		"chain1": "chain2",
		"chain2": "sub/../../outside/secret",
		"dotdot": "..",
		"inside": "sub/f",
		"loop":   "loop",
		"dangle": "nothing-here",
	}
	for name, target := range links {
		must(os.Symlink(target, filepath.Join(s.root, name)))
	}
	return s
}

// entry is what snapshot records of one file.
type entry struct {
	mode    fs.FileMode
	mtime   int64
	content string // file content or link target
}

// snapshot records everything under dir (names, types, contents, mtimes).
func snapshot(t testing.TB, dir string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{mode: fi.Mode(), mtime: fi.ModTime().UnixNano()}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.content = string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			e.content, _ = os.Readlink(p)
		}
		if fi.IsDir() {
			e.mtime = 0 // a listing does not matter, entries do
		}
		m[p] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// baseNames lists the base directory (nothing may appear next to the
// capabilities).
func baseNames(t testing.TB, s *sandbox) []string {
	des, err := os.ReadDir(s.base)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func checkOutside(t testing.TB, s *sandbox, before map[string]entry) {
	t.Helper()
	after := snapshot(t, s.outside)
	for p, e := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("outside file %s was removed", p)
		} else if a != e {
			t.Errorf("outside file %s changed: %+v -> %+v", p, e, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("outside file %s was created", p)
		}
	}
	if got := strings.Join(baseNames(t, s), " "); got != "outside root root2" {
		t.Errorf("base directory holds %s", got)
	}
}

func isEscape(err error) bool { return wasi.ToErrno(err) == wasi.EPERM }

func readAll(t testing.TB, f File) string {
	t.Helper()
	var out bytes.Buffer
	buf := make([]byte, 64)
	for {
		n, err := f.Read([][]byte{buf})
		out.Write(buf[:n])
		if err != nil || n == 0 {
			return out.String()
		}
	}
}

var rd = OpenArgs{Follow: true, Read: true}

// TestEscapes: every operation on a path that leaves the capability ("..",
// absolute and relative symlinks, chains, an absolute path) fails with the
// escape errno (EPERM) and touches nothing outside.
func TestEscapes(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := newSandbox(t)
			before := snapshot(t, s.outside)
			d, err := im.open(s.root, false)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			escaping := []string{"..", "../outside/secret", "sub/../../outside/secret", "abs", "rel",
				"chain1", "absdir/secret", "reldir/secret", "dotdot/outside/secret", "/etc/passwd",
				"sub/deep/../../..", "absdir/", "reldir/dir/"}
			for _, p := range escaping {
				if f, err := d.OpenAt(p, rd); !isEscape(err) {
					if err == nil {
						t.Errorf("OpenAt(%q) opened %q", p, readAll(t, f))
						f.Close()
					} else {
						t.Errorf("OpenAt(%q) = %v, want the escape errno", p, err)
					}
				}
				if _, err := d.StatAt(p, true); !isEscape(err) {
					t.Errorf("StatAt(%q, follow) = %v", p, err)
				}
				if err := d.SetTimesAt(p, true, time.Unix(1, 0), time.Unix(1, 0), true, true); !isEscape(err) {
					t.Errorf("SetTimesAt(%q, follow) = %v", p, err)
				}
				if err := d.LinkAt(p, true, d, "stolen"); err == nil {
					t.Errorf("LinkAt(%q, follow) succeeded", p)
				} else if im.name == "openat2" && !isEscape(err) {
					t.Errorf("LinkAt(%q, follow) = %v", p, err)
				}
			}
			for _, p := range []string{"../x", "absdir/x", "reldir/x", "dotdot/x", "sub/../../x", "/x", "chain1/x"} {
				for name, err := range map[string]error{
					"MkdirAt":     d.MkdirAt(p),
					"UnlinkAt":    d.UnlinkAt(p),
					"RmdirAt":     d.RmdirAt(p),
					"SymlinkAt":   d.SymlinkAt("target", p),
					"RenameAt to": d.RenameAt("sub/f", d, p),
					"LinkAt to":   d.LinkAt("sub/f", false, d, p),
					"SetTimesAt":  d.SetTimesAt(p, false, time.Unix(1, 0), time.Unix(1, 0), true, true),
				} {
					if err == nil || (!isEscape(err) && !errors.Is(err, syscall.ENOTDIR)) {
						// chain1/x: chain1 resolves to a file outside, so the
						// kernel may say ENOTDIR before it notices the escape.
						t.Errorf("%s(%q) = %v, want the escape errno", name, p, err)
					}
				}
			}
			for _, p := range []string{"absdir/secret", "reldir/secret", "../outside/secret", "dotdot/outside/secret"} {
				if err := d.UnlinkAt(p); !isEscape(err) {
					t.Errorf("UnlinkAt(%q) = %v", p, err)
				}
				if err := d.RenameAt(p, d, "got"); !isEscape(err) {
					t.Errorf("RenameAt(%q, got) = %v", p, err)
				}
				if err := d.LinkAt(p, false, d, "got"); !isEscape(err) {
					t.Errorf("LinkAt(%q, got) = %v", p, err)
				}
				if _, err := d.ReadlinkAt(p); !isEscape(err) {
					t.Errorf("ReadlinkAt(%q) = %v", p, err)
				}
			}
			if err := d.SymlinkAt(filepath.Join(s.outside, "secret"), "abs2"); !isEscape(err) {
				t.Errorf("SymlinkAt(absolute target) = %v", err)
			}
			// A symlink may point anywhere relative, but following it
			// still cannot leave.
			if err := d.SymlinkAt("../outside/secret", "rel2"); err != nil {
				t.Errorf("SymlinkAt(relative target) = %v", err)
			} else if _, err := d.OpenAt("rel2", rd); !isEscape(err) {
				t.Errorf("OpenAt(rel2) = %v", err)
			}
			// Not following: the link itself is inside.
			if st, err := d.StatAt("abs", false); err != nil || st.Filetype != wasi.FiletypeSymbolicLink {
				t.Errorf("StatAt(abs, nofollow) = %+v %v", st, err)
			}
			if f, err := d.OpenAt("abs", OpenArgs{Read: true}); !errors.Is(err, syscall.ELOOP) {
				t.Errorf("OpenAt(abs, nofollow) = %v, want ELOOP", err)
				if err == nil {
					f.Close()
				}
			}
			checkOutside(t, s, before)
		})
	}
}

// TestHardLinks: a hard link the host made into the capability is usable;
// the guest cannot make one to an outside file, by any path or symlink.
func TestHardLinks(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := newSandbox(t)
			// A hard link the host made to an outside file is inside: the
			// guest may use it, but must not be able to make such links
			// itself.
			if err := os.Link(filepath.Join(s.outside, "secret"), filepath.Join(s.root, "hostlink")); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, s.outside)
			d, err := im.open(s.root, false)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if f, err := d.OpenAt("hostlink", rd); err != nil {
				t.Errorf("OpenAt(hostlink) = %v", err)
			} else {
				if got := readAll(t, f); got != secret {
					t.Errorf("hostlink reads %q", got)
				}
				f.Close()
			}
			for _, tc := range []struct {
				old    string
				follow bool
			}{
				{"abs", true}, {"rel", true}, {"chain1", true}, {"absdir/secret", false},
				{"reldir/secret", false}, {"../outside/secret", false}, {"dotdot/outside/secret", true},
			} {
				err := d.LinkAt(tc.old, tc.follow, d, "stolen")
				if err == nil {
					t.Errorf("LinkAt(%q, follow=%v) made a link", tc.old, tc.follow)
					d.UnlinkAt("stolen")
				}
			}
			if im.name == "openat2" {
				// Without follow a symlink is linked itself; following the
				// new name still cannot leave.
				if err := d.LinkAt("abs", false, d, "abslink"); err != nil {
					t.Fatalf("LinkAt(abs, nofollow) = %v", err)
				}
				if _, err := d.OpenAt("abslink", rd); !isEscape(err) {
					t.Errorf("OpenAt(abslink) = %v", err)
				}
			}
			checkOutside(t, s, before)
		})
	}
}

// TestCrossDirectory: rename and link between two capabilities and between
// directories opened from one, with rename(2) semantics.
func TestCrossDirectory(t *testing.T) {
	s := newSandbox(t)
	im := impls(t)[0]
	d, err := im.open(s.root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d2, err := im.open(s.root2, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	sub, err := d.OpenAt("sub", OpenArgs{Follow: true, Directory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	subd := sub.(Dir)

	mustNil := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	content := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	mustNil("rename across capabilities", d.RenameAt("sub/f", d2, "moved"))
	if content(filepath.Join(s.root2, "moved")) != "inside" {
		t.Error("moved file has other content")
	}
	mustNil("rename back into a subdirectory fd", d2.RenameAt("moved", subd, "f"))
	mustNil("link across capabilities", subd.LinkAt("f", false, d2, "hl"))
	a, _ := os.Stat(filepath.Join(s.root, "sub", "f"))
	b, _ := os.Stat(filepath.Join(s.root2, "hl"))
	if !os.SameFile(a, b) {
		t.Error("cross-directory link is not the same file")
	}
	mustNil("link following a symlink", d.LinkAt("inside", true, d2, "hl2"))
	if c, _ := os.Stat(filepath.Join(s.root2, "hl2")); !os.SameFile(a, c) {
		t.Error("SYMLINK_FOLLOW link is not the target file")
	}
	mustNil("link a symlink itself", d.LinkAt("inside", false, d2, "sl"))
	if fi, err := os.Lstat(filepath.Join(s.root2, "sl")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("link of a symlink without follow: %v %v", fi, err)
	}
	if err := d.LinkAt("dangle", true, d2, "x"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("link following a dangling symlink = %v, want ENOENT", err)
	}
	if err := d.LinkAt("sub", false, d2, "x"); !errors.Is(err, syscall.EPERM) {
		t.Errorf("link of a directory = %v, want EPERM", err)
	}
	// A directory replaces an empty one; not a non-empty one; a file
	// never replaces a directory nor a directory a file.
	mustNil("mkdir", d2.MkdirAt("target"))
	mustNil("rename a directory onto an empty one across capabilities", d.RenameAt("sub/deep", d2, "target"))
	if _, err := os.Stat(filepath.Join(s.root, "sub", "deep")); !os.IsNotExist(err) {
		t.Error("source directory still there")
	}
	if err := d.RenameAt("empty", d2, "."); err == nil {
		t.Error("rename onto the capability itself succeeded")
	}
	mustNil("mkdir", d.MkdirAt("full"))
	mustNil("create", touch(d, "full/x"))
	mustNil("mkdir", d.MkdirAt("src"))
	if err := d.RenameAt("src", d, "full"); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		t.Errorf("rename onto a non-empty directory = %v", err)
	}
	if err := d.RenameAt("full/x", d, "src"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("rename a file onto a directory = %v, want EISDIR", err)
	}
	if err := d.RenameAt("src", d, "full/x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("rename a directory onto a file = %v, want ENOTDIR", err)
	}

	// os.Root cannot do any of it: EXDEV, documented.
	r1, err := OpenRootDir(s.root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := OpenRootDir(s.root2, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := r1.RenameAt("full/x", r2, "y"); !errors.Is(err, syscall.EXDEV) {
		t.Errorf("os.Root cross rename = %v, want EXDEV", err)
	}
}

func touch(d Dir, p string) error {
	f, err := d.OpenAt(p, OpenArgs{Write: true, Create: true})
	if err != nil {
		return err
	}
	return f.Close()
}

// TestReadOnly: a read-only capability refuses every modification with
// EROFS, also as the source of a rename or link into a writable one (which
// would make the file writable there).
func TestReadOnly(t *testing.T) {
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			s := newSandbox(t)
			before := snapshot(t, s.root)
			ro, err := im.open(s.root, true)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			rw, err := im.open(s.root2, false)
			if err != nil {
				t.Fatal(err)
			}
			defer rw.Close()
			now := time.Now()
			for name, err := range map[string]error{
				"MkdirAt":       ro.MkdirAt("d"),
				"UnlinkAt":      ro.UnlinkAt("sub/f"),
				"RmdirAt":       ro.RmdirAt("empty"),
				"SymlinkAt":     ro.SymlinkAt("sub/f", "l"),
				"RenameAt":      ro.RenameAt("sub/f", ro, "g"),
				"RenameAt out":  ro.RenameAt("sub/f", rw, "g"),
				"RenameAt in":   rw.RenameAt("g", ro, "g"),
				"LinkAt out":    ro.LinkAt("sub/f", false, rw, "h"),
				"LinkAt in":     rw.LinkAt("g", false, ro, "h"),
				"SetTimesAt":    ro.SetTimesAt("sub/f", true, now, now, true, true),
				"SetTimes":      ro.SetTimes(now, now, true, true),
				"OpenAt write":  openErr(ro, "sub/f", OpenArgs{Write: true}),
				"OpenAt create": openErr(ro, "new", OpenArgs{Write: true, Create: true}),
				"OpenAt trunc":  openErr(ro, "sub/f", OpenArgs{Read: true, Trunc: true}),
			} {
				if !errors.Is(err, syscall.EROFS) {
					t.Errorf("%s = %v, want EROFS", name, err)
				}
			}
			f, err := ro.OpenAt("sub/f", rd)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for name, err := range map[string]error{
				"SetSize":  f.SetSize(0),
				"SetTimes": f.SetTimes(now, now, true, true),
				"Allocate": f.Allocate(0, 10),
			} {
				if !errors.Is(err, syscall.EROFS) {
					t.Errorf("file %s = %v, want EROFS", name, err)
				}
			}
			if after := snapshot(t, s.root); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Error("the read-only directory changed")
			}
		})
	}
}

func openErr(d Dir, p string, a OpenArgs) error {
	f, err := d.OpenAt(p, a)
	if err == nil {
		f.Close()
	}
	return err
}

// TestFileSemantics: what the Linux implementation does as Linux does it.
func TestFileSemantics(t *testing.T) {
	s := newSandbox(t)
	d, err := impls(t)[0].open(s.root, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f, err := d.OpenAt("log", OpenArgs{Read: true, Write: true, Create: true, Append: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := func(b string) {
		t.Helper()
		if _, err := f.Write([][]byte{[]byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	w("abc")
	if _, err := f.Pwrite([][]byte{[]byte("XY")}, 0); err != nil {
		t.Fatalf("pwrite on an append file: %v", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	w("d")
	if err := f.SetAppend(false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	w("Z")
	if b, _ := os.ReadFile(filepath.Join(s.root, "log")); string(b) != "ZbcXYd" {
		t.Errorf("append file holds %q, want ZbcXYd (pwrite and writes appended, then one overwrite)", b)
	}
	// Times of a symlink itself, without following it.
	target, _ := d.StatAt("sub/f", false)
	old := time.Unix(1000, 500)
	if err := d.SetTimesAt("inside", false, old, old, true, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.StatAt("inside", false); st.Mtim != uint64(old.UnixNano()) {
		t.Errorf("symlink mtime %d, want %d", st.Mtim, old.UnixNano())
	}
	if st, _ := d.StatAt("sub/f", false); st.Mtim != target.Mtim {
		t.Error("setting a symlink's times changed its target")
	}
	if err := d.SetTimesAt("inside", true, old, old, false, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.StatAt("sub/f", false); st.Mtim != uint64(old.UnixNano()) || st.Atim != target.Atim {
		t.Errorf("following: target mtim %d atim %d", st.Mtim, st.Atim)
	}
	// Listing: "." and ".." first; ".." of the capability reports inode 0.
	ents, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if names[0] != "." || names[1] != ".." || ents[1].Ino != 0 || ents[0].Ino == 0 {
		t.Errorf("listing starts %v (inodes %d %d)", names[:2], ents[0].Ino, ents[1].Ino)
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); !strings.Contains(got, "abs absdir chain1 chain2 dangle dotdot empty inside log loop rel reldir sub") {
		t.Errorf("listing %s", got)
	}
	// Trailing slashes and dot components.
	for _, tc := range []struct {
		err  error
		want error
	}{
		{d.UnlinkAt("sub/f/"), syscall.ENOTDIR},
		{d.RmdirAt("sub/f"), syscall.ENOTDIR},
		{d.UnlinkAt("sub"), syscall.EISDIR},
		{d.RmdirAt("."), syscall.EINVAL},
		{d.RmdirAt("sub/.."), syscall.EINVAL},
		{d.MkdirAt("sub/.."), syscall.EEXIST},
		{openErr(d, "sub/f/", rd), syscall.ENOTDIR},
		{openErr(d, "loop", rd), syscall.ELOOP},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("got %v, want %v", tc.err, tc.want)
		}
	}
	if _, err := d.ReadlinkAt("inside/"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("readlink with a trailing slash on a file link = %v", err)
	}
}

// TestSwappedSymlinks: while another goroutine keeps swapping a directory
// for a symlink to the outside (absolute, then relative), no operation
// through the capability reads, writes, creates, links or removes
// anything outside.
func TestSwappedSymlinks(t *testing.T) {
	for _, im := range impls(t) {
		for _, abs := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/abs=%v", im.name, abs), func(t *testing.T) {
				s := newSandbox(t)
				if err := os.WriteFile(filepath.Join(s.root, "sub", "secret"), []byte("decoy"), 0o644); err != nil {
					t.Fatal(err)
				}
				before := snapshot(t, s.outside)
				d, err := im.open(s.root, false)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				target := "../outside"
				if abs {
					target = s.outside
				}
				sub, real := filepath.Join(s.root, "sub"), filepath.Join(s.root, "sub.real")
				var stop atomic.Bool
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						// Errors are expected: the guest side may hold
						// names in the way for a moment.
						os.Rename(sub, real)
						os.Symlink(target, sub)
						time.Sleep(time.Microsecond)
						os.Remove(sub)
						os.Rename(real, sub)
					}
				}()
				deadline := time.Now().Add(300 * time.Millisecond)
				ops := 0
				for time.Now().Before(deadline) {
					ops++
					if f, err := d.OpenAt("sub/secret", rd); err == nil {
						if got := readAll(t, f); got == secret {
							t.Error("read the outside file through a swapped symlink")
						}
						f.Close()
					}
					if f, err := d.OpenAt("sub/new", OpenArgs{Follow: true, Write: true, Create: true}); err == nil {
						f.Close()
						d.UnlinkAt("sub/new")
					}
					d.MkdirAt("sub/newdir")
					d.RmdirAt("sub/newdir")
					d.UnlinkAt("sub/secret2")
					if d.LinkAt("sub/secret", false, d, "stolen") == nil {
						if b, _ := os.ReadFile(filepath.Join(s.root, "stolen")); string(b) == secret {
							t.Error("linked the outside file in")
						}
						d.UnlinkAt("stolen")
					}
					if d.RenameAt("sub/secret", d, "moved") == nil {
						d.RenameAt("moved", d, "sub/secret")
					}
					d.SetTimesAt("sub/secret", true, time.Unix(1, 0), time.Unix(1, 0), true, true)
					d.SetTimesAt("sub/dir", false, time.Unix(1, 0), time.Unix(1, 0), true, true)
					d.SymlinkAt("x", "sub/newlink")
					d.UnlinkAt("sub/newlink")
				}
				stop.Store(true)
				wg.Wait()
				t.Logf("%d rounds of operations while swapping", ops)
				checkOutside(t, s, before)
			})
		}
	}
}

// FuzzPathPairs applies one operation with two guest paths to a
// capability inside a sandbox and checks that nothing outside it was
// touched and nothing outside was read.
func FuzzPathPairs(f *testing.F) {
	seeds := []struct {
		op     uint8
		p1, p2 string
	}{
		{0, "sub/f", "x"}, {0, "abs", "x"}, {1, "sub/f", "../x"}, {1, "absdir/secret", "got"},
		{2, "inside", "reldir/x"}, {2, "rel", "x"}, {3, "../outside/secret", ""}, {4, "dotdot/outside/dir", ""},
		{5, "absdir/x", "y"}, {6, "../evil", "../../x"}, {7, "chain1", ""}, {8, "reldir/secret", ""},
		{9, "sub/../../outside/secret", ""}, {10, "sub/deep/../../", "x"}, {11, "/etc/passwd", "x"},
		{12, "sub//f/", "sub/./g"}, {13, "loop/x", "dangle"}, {2, "sub", "absdir"}, {11, "absdir/secret", ""},
	}
	for _, s := range seeds {
		f.Add(s.op, s.p1, s.p2)
	}
	f.Fuzz(func(t *testing.T, op uint8, p1, p2 string) {
		for _, im := range impls(t) {
			s := newSandbox(t)
			before := snapshot(t, s.outside)
			d, err := im.open(s.root, false)
			if err != nil {
				t.Fatal(err)
			}
			d2, err := im.open(s.root2, false)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Unix(5, 0)
			switch op % 14 {
			case 0:
				d.RenameAt(p1, d, p2)
			case 1:
				d.RenameAt(p1, d2, p2)
			case 2:
				d.LinkAt(p1, true, d, p2)
			case 3, 7, 9:
				if f, err := d.OpenAt(p1, rd); err == nil {
					if readAll(t, f) == secret {
						t.Errorf("%s: read the outside file through %q", im.name, p1)
					}
					f.Close()
				}
			case 4:
				d.MkdirAt(p1)
			case 5:
				d.SymlinkAt(p2, p1)
				if f, err := d.OpenAt(p1, rd); err == nil {
					if readAll(t, f) == secret {
						t.Errorf("%s: read the outside file through a new symlink %q -> %q", im.name, p1, p2)
					}
					f.Close()
				}
			case 6:
				d.LinkAt(p1, false, d2, p2)
			case 8:
				d.UnlinkAt(p1)
				d.RmdirAt(p1)
			case 10:
				d.SetTimesAt(p1, true, now, now, true, true)
				d.SetTimesAt(p1, false, now, now, true, true)
			case 11:
				if f, err := d.OpenAt(p1, OpenArgs{Follow: true, Write: true, Create: true, Trunc: true}); err == nil {
					f.Write([][]byte{[]byte("pwned")})
					f.Close()
				}
			case 12:
				d.ReadlinkAt(p1)
				d.StatAt(p1, true)
				d.RenameAt(p1, d, p2)
			case 13:
				d.LinkAt(p1, true, d2, p2)
				d.RenameAt(p2, d2, p1)
			}
			d.Close()
			d2.Close()
			checkOutside(t, s, before)
			if t.Failed() {
				return
			}
		}
	})
}
