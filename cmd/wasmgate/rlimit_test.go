package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRaiseFdLimit: the soft RLIMIT_NOFILE is raised to the hard limit,
// and a hard limit below what the guest's fd limit needs is reported.
func TestRaiseFdLimit(t *testing.T) {
	saved := nofile
	t.Cleanup(func() { nofile = saved })
	for _, tc := range []struct {
		soft, hard uint64
		maxFds     int
		notice     bool
	}{
		{1024, 1 << 20, 16384, false},
		{1024, 4096, 16384, true},
		{1024, 4096, 1024, false},
		{20000, 20000, 20000, true}, // wasmgate's own fds count too
	} {
		var set []uint64
		nofile.get = func() (uint64, uint64, bool) { return tc.soft, tc.hard, true }
		nofile.set = func(soft, hard uint64) error { set = []uint64{soft, hard}; return nil }
		var out strings.Builder
		raiseFdLimit(tc.maxFds, &out)
		if tc.soft < tc.hard && (len(set) != 2 || set[0] != tc.hard || set[1] != tc.hard) {
			t.Errorf("%+v: set %v, want the soft limit raised to %d", tc, set, tc.hard)
		}
		if tc.soft == tc.hard && set != nil {
			t.Errorf("%+v: set %v, want no change", tc, set)
		}
		if got := strings.Contains(out.String(), "notice: the open-file limit"); got != tc.notice {
			t.Errorf("%+v: notice %v, want %v: %q", tc, got, tc.notice, out.String())
		}
	}
}

// TestGuestNetworkMaxFds: the manifest's [limits] max_fds reaches the run
// (0 when unset: the host's default).
func TestGuestNetworkMaxFds(t *testing.T) {
	dir := t.TempDir()
	for text, want := range map[string]int{
		"default = \"deny\"\n[limits]\nmax_fds = 20000\n": 20000,
		"default = \"deny\"\n":                            0,
	} {
		p := filepath.Join(dir, "m.toml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, lim, _, release, err := guestNetwork(context.Background(), p, "", "g", true, nil, nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		release()
		if lim.maxFds != want {
			t.Errorf("%q: max fds %d, want %d", text, lim.maxFds, want)
		}
	}
}

// TestRunFdLimitNotice: `wasmgate run --policy` raises the soft limit and
// tells a user whose hard limit is too low for the manifest's max_fds.
func TestRunFdLimitNotice(t *testing.T) {
	saved := nofile
	t.Cleanup(func() { nofile = saved })
	var set []uint64
	nofile.get = func() (uint64, uint64, bool) { return 256, 1024, true }
	nofile.set = func(soft, hard uint64) error { set = []uint64{soft, hard}; return nil }
	p := filepath.Join(t.TempDir(), "m.toml")
	if err := os.WriteFile(p, []byte("default = \"deny\"\n[limits]\nmax_fds = 5000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "", "run", "--policy", p, guestWasm(t, "hello"))
	if code != 0 || !strings.Contains(errOut, "open-file limit is 1024") || !strings.Contains(errOut, "(5000, [limits] max_fds)") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	if len(set) != 2 || set[0] != 1024 {
		t.Fatalf("set %v, want the soft limit raised to 1024", set)
	}
}
