package main

import (
	"bufio"
	"io"
	"sync/atomic"
	"time"
)

// clockLines is how many decisions one clock reading serves in decide
// when the manifest has no plugins (docs/manifest.md#wasmgate-decide).
const clockLines = 64

// lineClock is decide's clock for a manifest without plugins: there only
// the name bindings' expiry (TTLs in whole seconds) looks at the time, so
// one reading serves up to clockLines decisions, and every read of stdin
// takes a new one (a line typed or piped in alone gets the time it
// arrived). A reading costs 50–200 ns in a VM, a sixth of such a
// decision (BENCHMARKS.md, "wasmgate decide"). With plugins, which see
// time_ms, decide reads the clock for every decision.
type lineClock struct {
	t    atomic.Pointer[time.Time]
	left atomic.Int32 // decisions the reading in t still serves
}

func (c *lineClock) now() time.Time {
	if c.left.Add(-1) >= 0 {
		if t := c.t.Load(); t != nil {
			return *t
		}
	}
	t := time.Now()
	c.t.Store(&t)
	c.left.Store(clockLines - 1)
	return t
}

// refresh makes the next decision read the clock.
func (c *lineClock) refresh() { c.left.Store(0) }

// decideInput is decide's stdin. Before each read that may block it
// writes out the verdict lines buffered so far, so that a program that
// writes one request and waits for its verdict gets it at once, while a
// batch is still written in large pieces (one flush per 64 KiB of
// input). After each read it refreshes clock (nil: none).
type decideInput struct {
	r     io.Reader
	out   *bufio.Writer
	clock *lineClock
}

func (in *decideInput) Read(p []byte) (int, error) {
	if err := in.out.Flush(); err != nil {
		return 0, err
	}
	n, err := in.r.Read(p)
	if in.clock != nil {
		in.clock.refresh()
	}
	return n, err
}
