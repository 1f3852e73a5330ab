//go:build wasip1

// Command loop does a fixed amount of CPU-bound work (no host calls in the
// hot loop) and prints a checksum; used to measure what interruptibility
// (WithCloseOnContextDone) costs a guest.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	n := 200_000_000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	var x uint64 = 1
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + uint64(i)
		if x&0xff == 0 {
			x ^= x >> 7
		}
	}
	fmt.Println(x)
}
