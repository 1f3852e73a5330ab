//go:build wasip1

// Command holdmem allocates and touches N MiB of live heap in 1 MiB
// pieces (a server's heap grows that way), prints "held N MiB, sys S MiB"
// (S: what the Go runtime took from linear memory), and then, with "hold",
// keeps it live until stdin ends, so that a measurement can read the
// host's RSS meanwhile (internal/scalebench rss).
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
)

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 0 {
		fmt.Fprintln(os.Stderr, "usage: holdmem MIB [hold]")
		os.Exit(2)
	}
	held := make([][]byte, n)
	for i := range held {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i + j)
		}
		held[i] = b
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("held %d MiB, sys %d MiB\n", n, ms.Sys>>20)
	if len(os.Args) > 2 && os.Args[2] == "hold" {
		io.Copy(io.Discard, os.Stdin)
	}
	sum := 0
	for _, b := range held {
		sum += int(b[0])
	}
	fmt.Println("sum", sum)
}
