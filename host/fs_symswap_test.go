package host

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSymlinkSwapNeverEscapes: while a C guest opens, stats and creates
// files through two symlinks in its preopen, a host goroutine swaps each,
// as fast as it can, between a target inside the preopen and one outside
// it (absolute and relative forms). Every lookup either reaches the inside
// target or fails: the guest never reads or stats the outside file, and
// nothing is created outside. Both outcomes must occur, so the race was
// really run.
func TestSymlinkSwapNeverEscapes(t *testing.T) {
	wasm := hostCGuest(t, "symswap")
	root := t.TempDir()
	data := filepath.Join(root, "data")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{filepath.Join(data, "in"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(data, "in", "secret"), []byte("inside"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("OUTSIDE-SECRET"), 0o644)

	// swap points name at each target in turn, atomically (a new
	// symlink renamed over the old one).
	swap := func(name string, targets ...string) (stop func() int) {
		var done atomic.Bool
		var n int
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tmp := filepath.Join(root, name+".tmp")
			for ; !done.Load(); n++ {
				os.Remove(tmp)
				if err := os.Symlink(targets[n%len(targets)], tmp); err != nil {
					t.Error(err)
					return
				}
				if err := os.Rename(tmp, filepath.Join(data, name)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		return func() int { done.Store(true); wg.Wait(); return n }
	}
	os.Symlink("in", filepath.Join(data, "link"))
	os.Symlink("in/secret", filepath.Join(data, "flink"))
	stopDir := swap("link", "in", outside, "in", "../outside", "./in", "../data/../outside")
	stopFile := swap("flink", "in/secret", filepath.Join(outside, "secret"), "in/secret", "../outside/secret")

	code, out, errOut, err := hostRunGuest(t, wasm,
		NewConfig().WithArgs("symswap", "3000").WithDir(data, "/data", ReadWrite), 2*time.Minute)
	swaps := stopDir() + stopFile()
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v stderr %s", code, err, errOut)
	}
	t.Logf("%d swaps\n%s", swaps, out)
	for _, kind := range []string{"dir", "file", "stat", "create"} {
		var in, outs, failed int
		line := kind + " "
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, line) {
				fmt.Sscanf(l[len(line):], "inside %d outside %d failed %d", &in, &outs, &failed)
			}
		}
		if outs != 0 {
			t.Errorf("%s: reached the outside target %d times", kind, outs)
		}
		if in == 0 || failed == 0 {
			t.Errorf("%s: inside %d failed %d: the race did not happen", kind, in, failed)
		}
	}
	if des, _ := os.ReadDir(outside); len(des) != 1 {
		t.Errorf("files were created outside the preopen: %d entries", len(des))
	}
	if des, _ := os.ReadDir(filepath.Join(data, "in")); len(des) < 2 {
		t.Errorf("nothing was created inside: %d entries", len(des))
	}
}
