package host_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/wasmgate/wasmgate/host"
	"github.com/wasmgate/wasmgate/network"
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
		WithDir("/srv/app-data", "/data", true).
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
