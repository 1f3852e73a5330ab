package host

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"
)

func TestGoGuestCopyStdin(t *testing.T) {
	wasm := hostGoGuest(t, "copy")
	in := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var out bytes.Buffer
	code, _, errOut, err := hostRunGuest(t, wasm, NewConfig().WithStdin(bytes.NewReader(in)).WithStdout(&out), time.Minute)
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v: %s", code, err, errOut)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Fatalf("stdout differs: %d bytes, want %d", out.Len(), len(in))
	}
}

// A real pipe as stdin: the guest (NONBLOCK stdin) gets EAGAIN and waits in
// poll_oneoff while the writer is slow; stdout is a pipe too.
func TestGoGuestCopyPipes(t *testing.T) {
	wasm := hostGoGuest(t, "copy")
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 0; i < 5; i++ {
			inW.Write([]byte("chunk\n"))
			time.Sleep(10 * time.Millisecond)
		}
		inW.Close()
	}()
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(outR)
		got <- string(b)
	}()
	code, _, errOut, err := hostRunGuest(t, wasm, NewConfig().WithStdin(inR).WithStdout(outW), time.Minute)
	outW.Close()
	inR.Close()
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v: %s", code, err, errOut)
	}
	if s := <-got; s != strings.Repeat("chunk\n", 5) {
		t.Fatalf("stdout %q", s)
	}
}

func TestGoGuestSleepAndCancel(t *testing.T) {
	wasm := hostGoGuest(t, "sleep")
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	defer inR.Close()
	out := &syncBuffer{}
	polls := new(atomic.Int64)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), pollCounterKey{}, polls))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, wasm, NewConfig().WithArgs("sleep", "block").WithStdin(inR).WithStdout(out).WithCompilationCacheDir(testCacheDir))
		done <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "blocking") {
		if time.Now().After(deadline) {
			t.Fatalf("guest never blocked; output %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Blocked in poll_oneoff, the guest waits in one call: it does not
	// spin through poll_oneoff (a busy loop makes thousands of calls in
	// the window, however slow the machine).
	time.Sleep(20 * time.Millisecond) // let it enter poll_oneoff
	p0 := polls.Load()
	if p0 == 0 {
		t.Fatal("no poll_oneoff call counted: the guest blocks in one")
	}
	time.Sleep(500 * time.Millisecond)
	if n := polls.Load() - p0; n > 5 {
		t.Errorf("idle guest called poll_oneoff %d times in 500ms", n)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("guest blocked in poll_oneoff was not cancelled")
	}
	diffLines(t, out.String(), "sleep ok: true\ntimer ok: true\nshort sleeps ok: true\nblocking\n")
}

func TestGoGuestSpinTimeout(t *testing.T) {
	wasm := hostGoGuest(t, "spin")
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, wasm, NewConfig().WithStdout(out).WithCompilationCacheDir(testCacheDir))
		done <- err
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for out.String() != "spinning\n" {
		if time.Now().After(deadline) {
			t.Fatalf("guest never started; output %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // well inside the loop now
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("stopping took %v", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("spinning guest was not stopped")
	}
}

func TestConfigErrorsReportedTogether(t *testing.T) {
	cfg := NewConfig().WithEnv("", "x").WithEnv("A=B", "x").WithDir("", "/a", ReadWrite).
		WithFS("/b", nil).WithDir("/nonexistent-wasmgate-dir", "/c", ReadWrite).WithDir("/tmp", "/c", ReadOnly)
	_, err := Run(context.Background(), nil, cfg)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"empty name", "'='", "empty host path", "nil fs.FS", `"/c" mounted twice`, "nonexistent-wasmgate-dir: no such file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// A directory that does not exist is reported at Run.
	_, err = Run(context.Background(), hostGoGuest(t, "hello"), NewConfig().WithDir("/nonexistent-wasmgate-dir", "/x", ReadWrite).WithCompilationCacheDir(testCacheDir))
	if err == nil || !strings.Contains(err.Error(), "nonexistent-wasmgate-dir") {
		t.Errorf("missing dir: %v", err)
	}
}

func TestConfigImmutable(t *testing.T) {
	base := NewConfig().WithEnv("A", "1")
	a := base.WithEnv("B", "2")
	b := base.WithEnv("A", "3")
	if len(base.env) != 1 || base.env[0] != "A=1" {
		t.Errorf("base changed: %v", base.env)
	}
	if strings.Join(a.env, ",") != "A=1,B=2" || strings.Join(b.env, ",") != "A=3" {
		t.Errorf("a %v b %v", a.env, b.env)
	}
}

func TestVirtualFS(t *testing.T) {
	wasm := hostGoGuest(t, "fsops")
	// fsops writes to /data first; on a virtual read-only FS that fails
	// with EROFS, and reads of the planted file work.
	fsys := fstest.MapFS{"ro/r.txt": {Data: []byte("virtual")}}
	code, out, errOut, err := hostRunGuest(t, wasm, NewConfig().WithFS("/data", fsys), time.Minute)
	if err != nil || code != 0 {
		t.Fatalf("code %d err %v: %s", code, err, errOut)
	}
	for _, want := range []string{"write: errno=69\n", "entries: ro/\n", "ro-read: ok\ncontent: \"virtual\"\n", "ro-write: errno=69\n", "mkdir: errno=69\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pollCounterKey is the context key of the *atomic.Int64 that counts a
// guest's poll_oneoff calls (testHookPoll).
type pollCounterKey struct{}

func init() {
	testHookPoll = func(ctx context.Context) {
		if c, ok := ctx.Value(pollCounterKey{}).(*atomic.Int64); ok {
			c.Add(1)
		}
	}
}

// Without interruptible guest code, a guest blocked in poll_oneoff is still
// stopped when its context ends.
func TestBlockedGuestStopsWithoutCloseOnDone(t *testing.T) {
	wasm := hostGoGuest(t, "sleep")
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	defer inR.Close()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, wasm, NewConfig().WithArgs("sleep", "block").WithStdin(inR).WithStdout(out).
			WithCloseOnContextDone(false).WithCompilationCacheDir(testCacheDir))
		done <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "blocking") {
		if time.Now().After(deadline) {
			t.Fatalf("guest never blocked; output %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("guest blocked in poll_oneoff was not stopped")
	}
}

func TestRunLinkAndStartErrors(t *testing.T) {
	// (module (import "wasi_snapshot_preview1" "no_such_fn" (func))
	//         (func (export "_start")))
	missingImport := []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type () -> ()
		0x02, 0x25, 0x01, 0x16, 'w', 'a', 's', 'i', '_', 's', 'n', 'a', 'p', 's', 'h', 'o', 't', '_', 'p', 'r', 'e', 'v', 'i', 'e', 'w', '1',
		0x0a, 'n', 'o', '_', 's', 'u', 'c', 'h', '_', 'f', 'n', 0x00, 0x00, // import func type 0
		0x03, 0x02, 0x01, 0x00,
		0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x01,
		0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
	}
	_, err := Run(context.Background(), missingImport, NewConfig().WithoutCompilationCache())
	if err == nil || errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "no_such_fn") {
		t.Errorf("missing import: %v", err)
	}
	// A module without _start: (module)
	_, err = Run(context.Background(), []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}, NewConfig().WithoutCompilationCache())
	if err == nil || !strings.Contains(err.Error(), "_start") {
		t.Errorf("no _start: %v", err)
	}
	// A trap: (module (func (export "_start") unreachable))
	trap := []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
		0x03, 0x02, 0x01, 0x00,
		0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
		0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b,
	}
	code, err := Run(context.Background(), trap, NewConfig().WithoutCompilationCache())
	if code != 1 || !errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("trap: code %d err %v", code, err)
	}
}
