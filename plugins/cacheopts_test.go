package plugins

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/wasmgate/wasmgate/plugins/internal/kernel"
)

// TestCacheOptions: CacheDir keeps compiled code on disk; InMemoryCache
// (and its old spelling CacheDir "-") writes nothing there; a
// CompilationCache given is used as is and not closed with the policy.
func TestCacheOptions(t *testing.T) {
	// A module with one function: something for wazero to compile.
	wasm := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0, // type: () -> ()
		3, 2, 1, 0, // func 0: type 0
		7, 5, 1, 1, 'f', 0, 0, // export "f"
		10, 4, 1, 2, 0, 0x0b} // code: empty body
	ctx := context.Background()
	compileWith := func(opts Options) string {
		dir := opts.CacheDir
		e := newEngine(opts)
		m, err := e.Compile(ctx, kernel.Config{Name: "f", Wasm: wasm})
		if err != nil {
			t.Fatal(err)
		}
		_ = m.Close(ctx)
		_ = e.Close(ctx)
		if dir == "" || dir == "-" {
			return ""
		}
		n := 0
		filepath.WalkDir(dir, func(_ string, d os.DirEntry, _ error) error {
			if d != nil && !d.IsDir() {
				n++
			}
			return nil
		})
		if n > 0 {
			return "files"
		}
		return "none"
	}
	if got := compileWith(Options{CacheDir: t.TempDir()}); got != "files" {
		t.Errorf("CacheDir: %s on disk", got)
	}
	if got := compileWith(Options{CacheDir: t.TempDir(), InMemoryCache: true}); got != "none" {
		t.Errorf("InMemoryCache: %s on disk", got)
	}
	shared := wazero.NewCompilationCache()
	defer shared.Close(ctx)
	e := newEngine(Options{CompilationCache: shared, InMemoryCache: true})
	if e.Cache() != shared {
		t.Error("CompilationCache not used")
	}
}
