package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinTo keeps every thread of this process on CPU cpu (native-echo CPU):
// the threads there now, and so every thread they start later. decisioncost
// runs the echo server so: when it moves between CPUs, runs of the same
// variant differed by up to 90 µs per connection on a 2-CPU VM, and when it
// stays, by a few.
func pinTo(cpu string) error {
	n, err := strconv.Atoi(cpu)
	if err != nil || n < 0 || n >= runtime.NumCPU() {
		return fmt.Errorf("native-echo: want a CPU number below %d, got %q", runtime.NumCPU(), cpu)
	}
	var set unix.CPUSet
	set.Set(n)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("native-echo: pin thread %d to CPU %d: %w", tid, n, err)
		}
	}
	return nil
}
