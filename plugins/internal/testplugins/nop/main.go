// Command nop is a benchmark plugin: decide returns a fixed verdict with
// the fewest host calls possible, to measure the call path's floor.
package main

func main() {}
