// Command sdkallow is a benchmark plugin written with sdk/policy whose
// handler allows everything: it measures the SDK's per-call cost apart
// from any rule matching.
package main

import "github.com/wasmgate/wasmgate/sdk/policy"

func init() {
	policy.Handle(func(r policy.Request) policy.Verdict { return policy.Allow("ok") })
}

func main() {}
