//go:build wasip1

// Command hello prints its arguments and environment, and exits with the
// code given by $EXIT (default 0). Used by the host tests.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	fmt.Println("hello", os.Args[1:])
	for _, e := range os.Environ() {
		fmt.Println("env", e)
	}
	fmt.Fprintln(os.Stderr, "to stderr")
	if c, err := strconv.Atoi(os.Getenv("EXIT")); err == nil {
		os.Exit(c)
	}
}
