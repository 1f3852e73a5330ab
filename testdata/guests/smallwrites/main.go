//go:build wasip1

// Command smallwrites writes N (argument, default 100000) 64-byte records
// to /data/out with one write call each, then prints the file size.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	n := 100000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	dir := "/data"
	if len(os.Args) > 2 {
		dir = os.Args[2]
	}
	f, err := os.Create(dir + "/out")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rec := make([]byte, 64)
	for i := range rec {
		rec[i] = 'a' + byte(i%26)
	}
	for i := 0; i < n; i++ {
		if _, err := f.Write(rec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	st, _ := f.Stat()
	f.Close()
	fmt.Println("size", st.Size())
}
