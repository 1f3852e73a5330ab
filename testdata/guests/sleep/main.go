//go:build wasip1

// Command sleep sleeps in various ways (time.Sleep, a timer racing a
// channel, a sleep of 0) and prints how long each took, in microseconds
// rounded to the millisecond, then waits forever on stdin if asked ("block"
// argument) so the host test can cancel it.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	start := time.Now()
	time.Sleep(30 * time.Millisecond)
	d := time.Since(start)
	fmt.Println("sleep ok:", d >= 30*time.Millisecond && d < 2*time.Second)

	start = time.Now()
	t := time.NewTimer(20 * time.Millisecond)
	<-t.C
	d = time.Since(start)
	fmt.Println("timer ok:", d >= 20*time.Millisecond && d < 2*time.Second)

	// Many short sleeps: checks there is no 1 ms rounding per sleep.
	start = time.Now()
	for i := 0; i < 100; i++ {
		time.Sleep(100 * time.Microsecond)
	}
	d = time.Since(start)
	fmt.Println("short sleeps ok:", d >= 10*time.Millisecond && d < 5*time.Second)
	fmt.Fprintln(os.Stderr, "100 sleeps of 100us took", d)

	if len(os.Args) > 1 && os.Args[1] == "block" {
		fmt.Println("blocking")
		b := make([]byte, 1)
		n, err := os.Stdin.Read(b)
		fmt.Println("read", n, err)
	}
}
