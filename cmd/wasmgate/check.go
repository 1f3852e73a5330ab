package main

import (
	"fmt"
	"io"
)

// cmdCheck implements `wasmgate check`. Owned by the plugins work (issue 5).
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wasmgate check: not implemented yet")
	return 2
}

// cmdDecide implements `wasmgate decide`. Owned by the plugins work (issue 5).
func cmdDecide(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wasmgate decide: not implemented yet")
	return 2
}
