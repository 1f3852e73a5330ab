package host

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// countingRewrite is a deterministic stand-in for the module rewriter that
// counts its calls.
type countingRewrite struct{ calls int }

func (c *countingRewrite) rewrite(b []byte) ([]byte, error) {
	c.calls++
	return append([]byte("rewritten:"), b...), nil
}

func TestCachedRewrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache") // created on first store
	in := []byte("\x00asm module bytes")
	want := append([]byte("rewritten:"), in...)
	var rw countingRewrite
	get := func(version string, wasm []byte) []byte {
		t.Helper()
		out, err := cachedRewriteTag(dir, version, wasm, rw.rewrite)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	if got := get("v1", in); !bytes.Equal(got, want) || rw.calls != 1 {
		t.Fatalf("miss: got %q after %d calls", got, rw.calls)
	}
	if got := get("v1", in); !bytes.Equal(got, want) || rw.calls != 1 {
		t.Fatalf("hit: got %q after %d calls, want 1 call", got, rw.calls)
	}
	// A new rewriter version or other input is another key.
	if got := get("v2", in); !bytes.Equal(got, want) || rw.calls != 2 {
		t.Fatalf("new version: got %q after %d calls, want 2", got, rw.calls)
	}
	other := []byte("\x00asm other")
	if got := get("v1", other); !bytes.Equal(got, append([]byte("rewritten:"), other...)) || rw.calls != 3 {
		t.Fatalf("other input: got %q after %d calls, want 3", got, rw.calls)
	}
	// Version and input are length-separated in the key.
	if rewriteKey("v1", []byte("x")) == rewriteKey("v1x", nil) {
		t.Fatal("key does not separate version from input")
	}

	// Damaged files are detected and replaced, never returned.
	name := filepath.Join(dir, rewriteKey("v1", in))
	good, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	damage := map[string][]byte{
		"truncated":    good[:len(good)-1],
		"flipped byte": append(append([]byte(nil), good[:len(good)-1]...), good[len(good)-1]^1),
		"longer":       append(append([]byte(nil), good...), 'x'),
		"bad magic":    append([]byte("XXXX"), good[4:]...),
		"header only":  good[:rewriteHeaderLen-1],
		"empty":        nil,
	}
	for what, b := range damage {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
		before := rw.calls
		if got := get("v1", in); !bytes.Equal(got, want) || rw.calls != before+1 {
			t.Fatalf("%s: got %q after %d calls, want a fresh rewrite", what, got, rw.calls-before)
		}
		if got := get("v1", in); !bytes.Equal(got, want) || rw.calls != before+1 {
			t.Fatalf("%s: file not repaired (%d calls)", what, rw.calls-before)
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(tmp) != 0 {
		t.Fatalf("temporary files left behind: %v", tmp)
	}
}

func TestCachedRewriteNoCache(t *testing.T) {
	var rw countingRewrite
	for i := 1; i <= 2; i++ {
		if _, err := cachedRewriteTag("", "v1", []byte("m"), rw.rewrite); err != nil || rw.calls != i {
			t.Fatalf("no dir: err %v, %d calls, want %d", err, rw.calls, i)
		}
	}
	// A cache location that cannot be a directory: still correct, uncached.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rw.calls = 0
	for i := 1; i <= 2; i++ {
		out, err := cachedRewriteTag(filepath.Join(file, "sub"), "v1", []byte("m"), rw.rewrite)
		if err != nil || string(out) != "rewritten:m" || rw.calls != i {
			t.Fatalf("unusable dir: %q, %v, %d calls", out, err, rw.calls)
		}
	}
}

func TestCachedRewriteErrorNotCached(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("unsupported module")
	calls := 0
	fail := func([]byte) ([]byte, error) { calls++; return nil, boom }
	for i := 1; i <= 2; i++ {
		if out, err := cachedRewrite(dir, "v1", []byte("m"), fail); !errors.Is(err, boom) || out != nil || calls != i {
			t.Fatalf("got %q, %v after %d calls", out, err, calls)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("an error was cached: %v", ents)
	}
}

// TestCachedRewriteExecutableTag: the public entry point keys on the
// running build, so the same input is cached once per build.
func TestCachedRewriteExecutableTag(t *testing.T) {
	tag := executableTag()
	if tag == "" {
		t.Fatal("no executable tag")
	}
	if runtime.GOOS == "linux" && !strings.HasPrefix(tag, "go-buildid:") {
		t.Errorf("tag %q: want the Go build ID on Linux", tag)
	}
	if executableTag() != tag {
		t.Error("tag not stable")
	}
	dir := t.TempDir()
	var rw countingRewrite
	for i := 0; i < 2; i++ {
		if out, err := cachedRewrite(dir, "v1", []byte("m"), rw.rewrite); err != nil || string(out) != "rewritten:m" || rw.calls != 1 {
			t.Fatalf("got %q, %v, %d calls; want 1 call", out, err, rw.calls)
		}
	}
	// Another build (another tag) does not see this build's entry.
	if _, err := cachedRewriteTag(dir, "v1\x00other-build", []byte("m"), rw.rewrite); err != nil || rw.calls != 2 {
		t.Fatalf("another build reused the entry: %v, %d calls", err, rw.calls)
	}
}

func TestRewriteCacheDir(t *testing.T) {
	if got := NewConfig().WithCompilationCacheDir("/c").rewriteCacheDir(); got != filepath.Join("/c", rewriteCacheSubdir) {
		t.Errorf("with dir: %q", got)
	}
	if got := NewConfig().WithCompilationCacheDir("/c").WithoutCompilationCache().rewriteCacheDir(); got != "" {
		t.Errorf("disabled: %q", got)
	}
	if base, err := os.UserCacheDir(); err == nil {
		if got, want := NewConfig().rewriteCacheDir(), filepath.Join(base, "wasmgate", "wazero", rewriteCacheSubdir); got != want {
			t.Errorf("default: %q, want %q", got, want)
		}
	}
}
