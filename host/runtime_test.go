package host

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCompiledGuestConcurrent: eight goroutines compile the same guest at
// once on a cold in-memory cache and it is compiled once; then each runs
// its own instance at the same time with its own arguments, environment
// and stdout, and sees only its own.
func TestCompiledGuestConcurrent(t *testing.T) {
	wasm := hostGoGuest(t, "hello")
	var compiles atomic.Int32
	testHookCompile = func() {
		compiles.Add(1)
		time.Sleep(20 * time.Millisecond) // widen the window for a second compile
	}
	defer func() { testHookCompile = nil }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt := NewRuntime(ctx, WithInMemoryCache())
	defer rt.Close(ctx)

	const n = 8
	guests := make([]*CompiledGuest, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			g, err := rt.Compile(ctx, wasm)
			if err != nil {
				errs <- err
				return
			}
			guests[i] = g
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c := compiles.Load(); c != 1 {
		t.Fatalf("%d concurrent Compiles of the same bytes compiled %d times, want 1", n, c)
	}

	outs := make([]bytes.Buffer, n)
	codes := make([]int, n)
	runErrs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			cfg := NewConfig().WithArgs("hello", fmt.Sprint("arg", i)).
				WithEnv("EXIT", fmt.Sprint(i)).WithStdout(&outs[i])
			codes[i], runErrs[i] = guests[i].Run(ctx, cfg)
		})
	}
	wg.Wait()
	for i := range n {
		if runErrs[i] != nil {
			t.Fatalf("instance %d: %v", i, runErrs[i])
		}
		want := fmt.Sprintf("hello [arg%d]\nenv EXIT=%d\n", i, i)
		if codes[i] != i || outs[i].String() != want {
			t.Errorf("instance %d: code %d, stdout %q; want %d, %q", i, codes[i], outs[i].String(), i, want)
		}
	}

	// Closing every handle releases the compiled guest; with the in-memory
	// cache a new Compile loads it rather than compiling from scratch,
	// but goes through compile again (the cache is wazero's).
	for _, g := range guests {
		g.Close(ctx)
		g.Close(ctx) // twice is harmless
	}
	if _, err := guests[0].Run(ctx, NewConfig()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Run after Close: %v, want an error", err)
	}
	g, err := rt.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	if c := compiles.Load(); c != 2 {
		t.Fatalf("Compile after the last Close: %d compilations, want 2", c)
	}
	var out bytes.Buffer
	if code, err := g.Run(ctx, NewConfig().WithArgs("hello", "again").WithStdout(&out)); code != 0 || err != nil || out.String() != "hello [again]\n" {
		t.Fatalf("run after recompiling: %d %v %q", code, err, out.String())
	}
}

// TestCompiledGuestErrors: a module that does not compile fails every
// waiting Compile, a closed Runtime refuses Compile, and a Compile whose
// context is done returns its error.
func TestCompiledGuestErrors(t *testing.T) {
	ctx := context.Background()
	rt := NewRuntime(ctx, WithoutCache())
	if _, err := rt.Compile(ctx, []byte("not wasm")); err == nil || !strings.Contains(err.Error(), "compile") {
		t.Fatalf("Compile(garbage) = %v, want a compile error", err)
	}
	rt.Close(ctx)
	if _, err := rt.Compile(ctx, []byte("\x00asm\x01\x00\x00\x00")); err == nil {
		t.Fatal("Compile on a closed Runtime succeeded")
	}
}

// TestRunSharesCompilation: Runs of the same module at the same time (the
// embedder's shortcut, and `wasmgate run`) compile it once, and nothing is
// kept once they end.
func TestRunSharesCompilation(t *testing.T) {
	wasm := hostGoGuest(t, "hello")
	var compiles atomic.Int32
	testHookCompile = func() {
		compiles.Add(1)
		time.Sleep(200 * time.Millisecond) // every Run arrives meanwhile
	}
	defer func() { testHookCompile = nil }()
	cfg := NewConfig().WithArgs("hello") // hostRunGuest adds the test's cache directory
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if code, _, _, err := hostRunGuest(t, wasm, cfg, time.Minute); code != 0 || err != nil {
				t.Errorf("exit %d, %v", code, err)
			}
		})
	}
	wg.Wait()
	if c := compiles.Load(); c != 1 {
		t.Errorf("4 concurrent Runs compiled %d times, want 1", c)
	}
	r := runtimeFor(context.Background(), cfg.WithCompilationCacheDir(testCacheDir))
	r.mu.Lock()
	left := len(r.compiled)
	r.mu.Unlock()
	if left != 0 {
		t.Errorf("%d compiled guests kept after every Run ended", left)
	}
}

// closeCounter is a wazero.CompilationCache that counts its closes (wazero
// compiles without a cache it does not know).
type closeCounter struct{ n int }

func (c *closeCounter) Close(context.Context) error { c.n++; return nil }

// TestRuntimeSharedCache: a cache given with WithCompilationCache is the
// Runtime's CompilationCache and stays the caller's: Runtime.Close leaves
// it open for whatever else compiles with it (a policy's plugins).
func TestRuntimeSharedCache(t *testing.T) {
	ctx := context.Background()
	c := &closeCounter{}
	rt := NewRuntime(ctx, WithCompilationCache(c))
	if rt.CompilationCache() != c {
		t.Fatal("CompilationCache is not the cache given")
	}
	if err := rt.Close(ctx); err != nil || c.n != 0 {
		t.Fatalf("Close: %v, the shared cache closed %d times", err, c.n)
	}
	if rt := NewRuntime(ctx, WithCompilationCache(nil)); rt.CompilationCache() != nil {
		t.Error("WithCompilationCache(nil) has a cache")
	}
	rt = NewRuntime(ctx, WithInMemoryCache())
	if rt.CompilationCache() == nil {
		t.Error("WithInMemoryCache has no cache")
	}
	rt.Close(ctx)
}
