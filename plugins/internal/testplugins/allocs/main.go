// Command allocs is a test plugin written with sdk/policy whose handler
// allocates 2 KiB per decision and keeps only the last allocation: its
// heap stays small only while Go's garbage collector keeps finishing its
// cycles between the host's calls (TestAllocatingPluginLives).
package main

import "github.com/wasmgate/wasmgate/sdk/policy"

var last []byte

func init() {
	policy.Handle(func(r policy.Request) policy.Verdict {
		last = make([]byte, 2048+int(r.Port)%64)
		if len(last) < 2048 {
			return policy.Deny("no allocation")
		}
		return policy.Allow("ok")
	})
}

func main() {}
