//go:build wasip1

// Command copy copies stdin to stdout (like cat) and reports the byte count
// on stderr. Go's runtime puts stdin and stdout in non-blocking mode at
// init, so this exercises EAGAIN + poll_oneoff on stdin.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(os.Stdout, os.Stdin, buf)
	fmt.Fprintln(os.Stderr, "copied", n)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
