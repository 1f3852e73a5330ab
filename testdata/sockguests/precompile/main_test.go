package precompile

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmgate/wasmgate/host"
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
// the host tests read.
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

// precompile runs each module once through host.Run, in both
// interruption modes, with the cache in dir: host.Run compiles what it
// will run (the rewritten module when interruption is on, with the
// matching runtime configuration), so this fills exactly the entries the
// tests' own host.Run calls look up. The guests run without arguments and
// exit at once.
func precompile(dir string, files []string) error {
	ctx := context.Background()
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, interrupt := range []bool{true, false} {
			cfg := host.NewConfig().WithCompilationCacheDir(dir).WithCloseOnContextDone(interrupt).
				WithStdout(io.Discard).WithStderr(io.Discard)
			if _, err := host.Run(ctx, b, cfg); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	return nil
}
