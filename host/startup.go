package host

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
)

// Start-up cost of a warm run (see BenchmarkHelloWarmStart): with wazero's
// compilation cache hit, nearly all of it is wazero's own per-process work
// that its public API cannot skip — decoding and validating the whole
// module (validation alone is about half), reading the cached machine code
// into fresh executable memory, and instantiating the guest's memory.
// wasmgate's own part (state, host module, fd table) is about 2%.
//
// What wasmgate adds on top is a deterministic rewriting of the module
// before compilation (internal/interrupt), ~10 ms for a 2.6 MB Go guest
// here. Its output is a pure function of the input bytes and the program
// build, so it is cached on disk next to wazero's cache: a warm start then
// hashes and reads the rewritten module back (~4-6 ms) instead of walking
// every instruction again. Because the rewriting is deterministic, wazero's
// cache key (a hash of the bytes it is given) stays stable from run to run
// and its cache keeps hitting.

// rewriteCacheSubdir is the directory, under the compilation cache
// directory, that holds rewritten modules.
const rewriteCacheSubdir = "wasmgate-rewrite"

// rewriteMagic starts every file of the rewrite cache; the version byte
// changes when the file layout does.
var rewriteMagic = []byte("wgrw\x01")

// rewriteHeaderLen is magic + payload length (8) + CRC-32C of the payload (4).
var rewriteHeaderLen = len(rewriteMagic) + 8 + 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rewriteCacheDir is where Run keeps rewritten modules for cfg, or "" when
// the compilation cache is disabled or has no usable location. It trusts
// the same directory as wazero's compilation cache, which holds machine
// code that is executed as is.
func (c *Config) rewriteCacheDir() string {
	dir := c.cacheRoot()
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, rewriteCacheSubdir)
}

// cachedRewrite returns rewrite(wasm), reading it from dir when an earlier
// call of the same program build stored the result for the same input and
// the same version, and storing it otherwise. version names the rewriter
// (for example "interrupt"); the key also holds the running executable's
// build identity (executableTag), so a rebuilt or upgraded wasmgate never
// reads what an older rewriter produced, even if nobody bumps version: a
// stale rewrite could lack checks the new rewriter inserts.
//
// The cache only saves time; it never changes the result: dir == "", an
// executable whose identity cannot be read, or any I/O problem (unwritable
// directory, a truncated or corrupted file, which fails the length and
// checksum test) just runs rewrite. rewrite's errors are returned and never
// cached, so a module that cannot be rewritten is retried each time.
func cachedRewrite(dir, version string, wasm []byte, rewrite func([]byte) ([]byte, error)) ([]byte, error) {
	tag := executableTag()
	if tag == "" {
		return rewrite(wasm)
	}
	return cachedRewriteTag(dir, version+"\x00"+tag, wasm, rewrite)
}

// cachedRewriteTag is cachedRewrite with the whole version tag given.
func cachedRewriteTag(dir, version string, wasm []byte, rewrite func([]byte) ([]byte, error)) ([]byte, error) {
	if dir == "" {
		return rewrite(wasm)
	}
	name := filepath.Join(dir, rewriteKey(version, wasm))
	if out, ok := readRewrite(name); ok {
		return out, nil
	}
	out, err := rewrite(wasm)
	if err != nil {
		return nil, err
	}
	writeRewrite(dir, name, out)
	return out, nil
}

// rewriteKey names the cache file of wasm rewritten by the given version.
func rewriteKey(version string, wasm []byte) string {
	h := sha256.New()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(version)))
	h.Write(n[:]) // length-prefixed, so that version and wasm cannot run into each other
	h.Write([]byte(version))
	h.Write(wasm)
	return hex.EncodeToString(h.Sum(nil))
}

// readRewrite returns the payload of cache file name if it exists and is
// intact.
func readRewrite(name string) ([]byte, bool) {
	b, err := os.ReadFile(name)
	if err != nil || len(b) < rewriteHeaderLen || !bytes.HasPrefix(b, rewriteMagic) {
		return nil, false
	}
	p := len(rewriteMagic)
	size := binary.LittleEndian.Uint64(b[p:])
	sum := binary.LittleEndian.Uint32(b[p+8:])
	payload := b[rewriteHeaderLen:]
	if uint64(len(payload)) != size || crc32.Checksum(payload, castagnoli) != sum {
		return nil, false
	}
	return payload, true
}

// writeRewrite stores out as cache file name, atomically: it is written to
// a temporary file in the same directory and renamed, so a concurrent
// reader (another wasmgate process) sees the whole file or none. Failures
// are ignored; the next run simply rewrites again.
func writeRewrite(dir, name string, out []byte) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	hdr := make([]byte, rewriteHeaderLen)
	copy(hdr, rewriteMagic)
	p := len(rewriteMagic)
	binary.LittleEndian.PutUint64(hdr[p:], uint64(len(out)))
	binary.LittleEndian.PutUint32(hdr[p+8:], crc32.Checksum(out, castagnoli))
	_, err = f.Write(hdr)
	if err == nil {
		_, err = f.Write(out)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

var (
	exeTagOnce sync.Once
	exeTag     string
)

// executableTag identifies the build of the running program: its Go build
// ID (ELF note .note.go.buildid, which changes with any change to the code
// linked in), or else the executable's path, size and modification time.
// It is "" when neither can be read. Computed once per process.
func executableTag() string {
	exeTagOnce.Do(func() { exeTag = readExecutableTag() })
	return exeTag
}

func readExecutableTag() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if f, err := elf.Open(exe); err == nil {
		defer f.Close()
		if sec := f.Section(".note.go.buildid"); sec != nil {
			if b, err := sec.Data(); err == nil && len(b) > 0 {
				return "go-buildid:" + hex.EncodeToString(b)
			}
		}
	}
	fi, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("exe:%s:%d:%d", exe, fi.Size(), fi.ModTime().UnixNano())
}
