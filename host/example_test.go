package host_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/wasmgate/wasmgate/host"
	"github.com/wasmgate/wasmgate/network"
	"github.com/wasmgate/wasmgate/plugins"
	"github.com/wasmgate/wasmgate/sdk/policy"
)

// Run a guest with a read-only data directory, a timeout, and a network
// whose policy allows only loopback connections.
func ExampleRun() {
	wasm, err := os.ReadFile("app.wasm")
	if err != nil {
		log.Fatal(err)
	}
	allowLoopback := network.PolicyFunc(func(ctx context.Context, req *network.Request) (network.Verdict, error) {
		if req.Addr.IsLoopback() {
			return policy.Allow("loopback"), nil
		}
		return policy.Deny("only loopback"), nil
	})
	cfg := host.NewConfig().
		WithArgs("app", "--verbose").
		WithEnv("HOME", "/data").
		WithDir("/srv/app-data", "/data", host.ReadOnly).
		WithStdout(os.Stdout).
		WithStderr(os.Stderr).
		WithNetwork(&network.Default{Policy: allowLoopback, Guest: "app"})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, err := host.Run(ctx, wasm, cfg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit code", code)
}

// Compile a guest once and run many instances of it at once, each with
// its own Config (here its own stdout).
func ExampleRuntime() {
	wasm, err := os.ReadFile("testdata/example/hello.wasm")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	rt := host.NewRuntime(ctx, host.WithInMemoryCache())
	defer rt.Close(ctx)
	guest, err := rt.Compile(ctx, wasm) // once
	if err != nil {
		log.Fatal(err)
	}
	defer guest.Close(ctx)

	outs := make([]bytes.Buffer, 4)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() {
			code, err := guest.Run(ctx, host.NewConfig().
				WithArgs("app", fmt.Sprint("worker-", i)).
				WithStdout(&outs[i]))
			if err != nil || code != 0 {
				log.Fatal(code, err)
			}
		})
	}
	wg.Wait()
	for i := range outs {
		fmt.Printf("%d: %s", i, outs[i].String())
	}
	// Output:
	// 0: hello
	// 1: hello
	// 2: hello
	// 3: hello
}

// Cap a guest's memory: past the limit memory.grow returns -1 to the
// guest (the grow guest then exits 3).
func ExampleConfig_WithMemoryLimit() {
	wasm, err := os.ReadFile("../testdata/guests/grow/grow.wasm") // grows by 64 MiB
	if err != nil {
		log.Fatal(err)
	}
	for _, limit := range []uint64{128 << 20, 32 << 20} {
		code, err := host.Run(context.Background(), wasm, host.NewConfig().WithMemoryLimit(limit))
		fmt.Println(limit>>20, "MiB:", code, err)
	}
	// Output:
	// 128 MiB: 0 <nil>
	// 32 MiB: 3 <nil>
}

// Learn the port the system chose for a ":0" listener, and the guest fd
// the socket is at, before the guest starts.
func ExampleConfig_WithOnListen() {
	wasm, err := os.ReadFile("testdata/example/hello.wasm")
	if err != nil {
		log.Fatal(err)
	}
	allowLoopback := network.PolicyFunc(func(ctx context.Context, req *network.Request) (network.Verdict, error) {
		if req.Addr.IsLoopback() {
			return policy.Allow("loopback"), nil
		}
		return policy.Deny("only loopback"), nil
	})
	cfg := host.NewConfig().
		WithNetwork(&network.Default{Policy: allowLoopback}).
		WithListen("127.0.0.1:0").
		WithOnListen(func(l host.Listening) error {
			fmt.Println(l.Addr, "bound:", l.Bound.Port() != 0, "fd", l.Fd)
			return nil
		})
	if _, err := host.Run(context.Background(), wasm, cfg); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 127.0.0.1:0 bound: true fd 4
}

// Hand the guest a listener the program opened itself. The guest gets a
// duplicate of it, at the fd reported; the policy decides it as tcp.bind
// and tcp.listen before the guest starts.
func ExampleConfig_WithListener() {
	wasm, err := os.ReadFile("testdata/example/hello.wasm")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close() // the guest's copy is closed with the guest
	allowLoopback := network.PolicyFunc(func(ctx context.Context, req *network.Request) (network.Verdict, error) {
		if req.Addr.IsLoopback() {
			return policy.Allow("loopback"), nil
		}
		return policy.Deny("only loopback"), nil
	})
	cfg := host.NewConfig().
		WithNetwork(&network.Default{Policy: allowLoopback}).
		WithListener(ln).
		WithOnListen(func(l host.Listening) error {
			fmt.Println("same address:", l.Bound.String() == ln.Addr().String(), "fd", l.Fd)
			return nil
		})
	if _, err := host.Run(context.Background(), wasm, cfg); err != nil {
		log.Fatal(err)
	}
	// Output:
	// same address: true fd 4
}

// A Runtime for a read-only container: compiled code is kept in memory
// only, never written to disk; guests stay interruptible (the default).
func ExampleNewRuntime() {
	ctx := context.Background()
	rt := host.NewRuntime(ctx, host.WithInMemoryCache(), host.WithInterruptible(true))
	defer rt.Close(ctx)
	wasm, err := os.ReadFile("testdata/example/hello.wasm")
	if err != nil {
		log.Fatal(err)
	}
	guest, err := rt.Compile(ctx, wasm)
	if err != nil {
		log.Fatal(err)
	}
	defer guest.Close(ctx)
	code, err := guest.Run(ctx, host.NewConfig().WithStdout(os.Stdout))
	fmt.Println("exit code", code, err)
	// Output:
	// hello
	// exit code 0 <nil>
}

// One in-memory compilation cache for guests and the plugins of their
// policy; one compiled guest and one compiled policy for many guests,
// each run with a policy instance of its own (its guest name, verdict
// cache and ratelimit budget).
func ExampleWithCompilationCache() {
	ctx := context.Background()
	cache := wazero.NewCompilationCache()
	defer cache.Close(ctx) // after the Runtime and the policy
	rt := host.NewRuntime(ctx, host.WithCompilationCache(cache))
	defer rt.Close(ctx)
	compiled, err := plugins.Compile(ctx, "policy.toml", plugins.Options{CompilationCache: cache})
	if err != nil {
		log.Fatal(err)
	}
	defer compiled.Close(ctx)
	wasm, err := os.ReadFile("app.wasm")
	if err != nil {
		log.Fatal(err)
	}
	guest, err := rt.Compile(ctx, wasm)
	if err != nil {
		log.Fatal(err)
	}
	defer guest.Close(ctx)

	var wg sync.WaitGroup
	for _, job := range []string{"job-1", "job-2", "job-3"} {
		wg.Go(func() {
			p, err := compiled.Instantiate(ctx, plugins.GuestOptions{Name: job})
			if err != nil {
				log.Print(err)
				return
			}
			defer p.Close(ctx)
			code, err := guest.Run(ctx, host.NewConfig().WithArgs("app", job).WithNetwork(p.NewDefault(nil)))
			fmt.Println(job, code, err)
		})
	}
	wg.Wait()
}
