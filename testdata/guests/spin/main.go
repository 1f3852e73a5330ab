//go:build wasip1

// Command spin loops forever without calling the host, to test that the
// host can still stop it.
package main

import "fmt"

var sink int

func main() {
	fmt.Println("spinning")
	for i := 0; ; i++ {
		sink += i
	}
}
