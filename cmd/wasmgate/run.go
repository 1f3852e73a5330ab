package main

import (
	"fmt"
	"io"
)

// cmdRun implements `wasmgate run`. Owned by the host work (issue 3).
func cmdRun(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wasmgate run: not implemented yet")
	return 2
}
