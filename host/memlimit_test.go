package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// growWasm is testdata/guests/grow: it grows its memory by 64 MiB and
// exits 0, or 3 when memory.grow returned -1.
func growWasm(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata", "guests", "grow", "grow.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMemoryLimitGrow: under the limit memory.grow succeeds; past it the
// guest sees -1, exactly as past the module's own maximum.
func TestMemoryLimitGrow(t *testing.T) {
	wasm := growWasm(t)
	for _, tc := range []struct {
		limit uint64
		want  int
	}{
		{0, 0},                  // no limit: the module's maximum, 4 GiB
		{1025 * 65536, 0},       // 1 + 1024 pages fit exactly
		{1025*65536 + 65535, 0}, // rounded down to 1025 pages
		{1025*65536 - 1, 3},     // rounded down to 1024 pages
		{65536, 3},              // just the initial page
		{MaxMemoryLimit, 0},     // the largest limit
	} {
		code, _, _, err := hostRunGuest(t, wasm, NewConfig().WithMemoryLimit(tc.limit), 30*time.Second)
		if err != nil || code != tc.want {
			t.Errorf("limit %d: exit %d, %v; want %d", tc.limit, code, err, tc.want)
		}
	}
}

// TestMemoryLimitGoGuest: a Go guest that allocates past the limit dies
// the way docs/sockets.md says ("fatal error: out of memory", exit 2),
// and one that stays below runs; the limit also bounds what the host
// reserves.
func TestMemoryLimitGoGuest(t *testing.T) {
	wasm := hostGoGuest(t, "holdmem")
	code, out, errOut, err := hostRunGuest(t, wasm, NewConfig().WithArgs("holdmem", "100").WithMemoryLimit(64<<20), time.Minute)
	if err != nil || code != 2 || !strings.Contains(errOut, "out of memory") {
		t.Fatalf("holdmem 100 under 64 MiB: exit %d, %v, stdout %q, stderr %.300q; want exit 2 and out of memory", code, err, out, errOut)
	}
	code, out, errOut, err = hostRunGuest(t, wasm, NewConfig().WithArgs("holdmem", "8").WithMemoryLimit(64<<20), time.Minute)
	if err != nil || code != 0 || !strings.HasPrefix(out, "held 8 MiB") {
		t.Fatalf("holdmem 8 under 64 MiB: exit %d, %v, stdout %q, stderr %.300q", code, err, out, errOut)
	}
}

// TestMemoryLimitErrors: a limit below one page or above 4 GiB is a
// configuration error; one below the module's initial memory fails the
// run before the guest starts.
func TestMemoryLimitErrors(t *testing.T) {
	for _, limit := range []uint64{1, 65535, MaxMemoryLimit + 1} {
		if err := NewConfig().WithMemoryLimit(limit).validate(); err == nil || !strings.Contains(err.Error(), "memory limit") {
			t.Errorf("WithMemoryLimit(%d): %v, want a configuration error", limit, err)
		}
	}
	if got := NewConfig().WithMemoryLimit(3*65536 + 7).MemoryLimit(); got != 3*65536 {
		t.Errorf("MemoryLimit() = %d, want it rounded down to 3 pages", got)
	}
	_, _, _, err := hostRunGuest(t, hostGoGuest(t, "hello"), NewConfig().WithMemoryLimit(65536), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "below the") {
		t.Fatalf("a limit below the initial memory: %v, want an error", err)
	}
}

// internalMemoryWasm is (module (memory 4) (func (export "_start"))): a
// memory of 4 pages that is neither exported nor imported.
var internalMemoryWasm = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type () -> ()
	0x03, 0x02, 0x01, 0x00, // one function
	0x05, 0x03, 0x01, 0x00, 0x04, // memory min 4
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // empty body
}

// TestMemoryLimitBelowInternalMemory: a limit below the initial size of a
// memory the module does not export is an error, not a host panic, and
// the compiled guest still runs instances with a limit that fits.
func TestMemoryLimitBelowInternalMemory(t *testing.T) {
	ctx := context.Background()
	rt := NewRuntime(ctx, WithoutCache())
	defer rt.Close(ctx)
	g, err := rt.Compile(ctx, internalMemoryWasm)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	code, err := g.Run(ctx, NewConfig().WithMemoryLimit(65536))
	if err == nil || code == 0 || !strings.Contains(err.Error(), "memory limit 65536 bytes is below") {
		t.Fatalf("limit below the internal memory: %d, %v", code, err)
	}
	if code, err := g.Run(ctx, NewConfig().WithMemoryLimit(4*65536)); code != 0 || err != nil {
		t.Fatalf("limit that fits: %d, %v", code, err)
	}
}
