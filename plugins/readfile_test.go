package plugins

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadRegularFile: a FIFO with no writer is refused at once (it used
// to hang the open), as are a character device that never ends and a
// directory; a regular file is read whole; a file larger than the limit is
// refused, also when its size says 0 (procfs), so the read itself is
// bounded, not only the check before it.
func TestReadRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for path, want := range map[string]string{
		fifo:        "not a regular file (a FIFO)",
		"/dev/zero": "not a regular file (a character device)",
		dir:         "not a regular file (a directory)",
	} {
		done := make(chan error, 1)
		go func() {
			_, err := ReadRegularFile(path, 1<<20)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want %q", path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still reading after 5s", path)
		}
	}

	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("0123456789"), 0o644)
	if b, err := ReadRegularFile(f, 10); err != nil || string(b) != "0123456789" {
		t.Fatalf("at the limit: %q %v", b, err)
	}
	if _, err := ReadRegularFile(f, 9); err == nil || !strings.Contains(err.Error(), "larger than 9 bytes") {
		t.Fatalf("over the limit: %v", err)
	}
	if st, err := os.Stat("/proc/self/maps"); err == nil && st.Mode().IsRegular() && st.Size() == 0 {
		if _, err := ReadRegularFile("/proc/self/maps", 16); err == nil || !strings.Contains(err.Error(), "larger than 16 bytes") {
			t.Fatalf("a file whose size says 0: %v", err)
		}
	}
	if _, err := ReadRegularFile(filepath.Join(dir, "nope"), 1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
