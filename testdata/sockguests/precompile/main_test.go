package precompile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
)

// TestMain, when WASMGATE_PRECOMPILE_CACHE is set, compiles the modules
// listed in WASMGATE_PRECOMPILE_FILES (filepath.ListSeparator-separated)
// into that cache directory and exits:
//
//	WASMGATE_PRECOMPILE_CACHE=dir WASMGATE_PRECOMPILE_FILES=a.wasm:b.wasm \
//		go test ./testdata/sockguests/precompile
//
// The socket tests run it without -race before running their guests under
// `go test -race`: wazero compiles a 10 MB Go guest in seconds, but its
// race-instrumented compiler takes minutes. It is a test binary (not a
// command) on purpose: wazero names its cache after the wazero version it
// reads from the build info, which is "dev" in every test binary but the
// module version in a command, so only a test binary fills the cache that
// the host tests read. The runtime configuration matches host.Run's
// default (close on context done).
func TestMain(m *testing.M) {
	dir := os.Getenv("WASMGATE_PRECOMPILE_CACHE")
	if dir == "" {
		os.Exit(m.Run())
	}
	if err := precompile(dir, filepath.SplitList(os.Getenv("WASMGATE_PRECOMPILE_FILES"))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func precompile(dir string, files []string) error {
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return err
	}
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).WithCompilationCache(cache))
	defer r.Close(ctx)
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if _, err := r.CompileModule(ctx, b); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}
