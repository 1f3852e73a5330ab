package kernel

import (
	"sync"
	"sync/atomic"
	"time"
)

// Call deadlines are enforced by one watchdog goroutine for all instances
// rather than a timer per call: resetting and stopping a runtime timer
// around every call cost ~0.1-0.3 µs, while arming a deadline here is a
// clock read, an atomic load and a store. The watchdog ticks every watchTick while calls
// are running and parks once no call has run for watchLinger, so an idle
// host spends no CPU on it.
//
// Deadlines are in wall-clock (monotonic) time, read once when a call is
// armed (~25 ns more per call than counting ticks; reading only the
// runtime's monotonic clock through linkname saved nothing measurable) and
// once per watchdog tick. Counting the watchdog's own ticks instead ran
// slow whenever the watchdog was scheduled late: a 50ms timeout took
// 80-230 ms on a loaded machine.
// Now a late tick only delays the check that notices the deadline, by the
// scheduling latency of one wake-up, and a deadline never fires early.
const (
	watchTick   = time.Millisecond
	watchLinger = 100 * time.Millisecond
)

// deadlineFired marks an instance whose deadline the watchdog has fired.
const deadlineFired = -1

// epoch is the origin of deadlines: nanoseconds since it, by the monotonic
// clock. It is in the past, so every armed deadline is > 0 (0 = not armed).
var epoch = time.Now()

func monoNow() int64 { return int64(time.Since(epoch)) }

type watchdog struct {
	mu      sync.Mutex
	insts   map[*Instance]struct{}
	running atomic.Bool   // ticking, or about to be
	wake    chan struct{} // a token when running turns true
	once    sync.Once
}

var dog = &watchdog{insts: map[*Instance]struct{}{}, wake: make(chan struct{}, 1)}

func (w *watchdog) add(i *Instance) {
	w.mu.Lock()
	w.insts[i] = struct{}{}
	w.mu.Unlock()
}

func (w *watchdog) remove(i *Instance) {
	w.mu.Lock()
	delete(w.insts, i)
	w.mu.Unlock()
}

// arm starts i's deadline. The store comes before the running check, and
// the watchdog clears running before its last scan, so either the
// watchdog sees this deadline or arm sees it parked and wakes it.
func (i *Instance) arm(timeout time.Duration) {
	i.deadline.Store(monoNow() + int64(timeout))
	if !dog.running.Load() {
		dog.start()
	}
}

// disarm ends the call's deadline; false if it fired.
func (i *Instance) disarm() bool {
	return i.deadline.Swap(0) != deadlineFired
}

func (w *watchdog) start() {
	w.once.Do(func() { go w.loop() })
	if w.running.CompareAndSwap(false, true) {
		w.wake <- struct{}{} // never blocks: one token per false→true
	}
}

// scan fires every expired deadline and reports whether a call is running.
func (w *watchdog) scan(fire *[]*Instance) bool {
	now := monoNow()
	busy := false
	w.mu.Lock()
	for i := range w.insts {
		d := i.deadline.Load()
		if d <= 0 {
			continue
		}
		busy = true
		if now >= d && i.deadline.CompareAndSwap(d, deadlineFired) {
			*fire = append(*fire, i)
		}
	}
	w.mu.Unlock()
	for _, i := range *fire {
		i.fire()
	}
	*fire = (*fire)[:0]
	return busy
}

func (w *watchdog) loop() {
	var fire []*Instance
	for {
		<-w.wake
		t := time.NewTicker(watchTick)
		idle := time.Duration(0)
		for {
			<-t.C
			if w.scan(&fire) {
				idle = 0
				continue
			}
			if idle += watchTick; idle < watchLinger {
				continue
			}
			w.running.Store(false)
			if w.scan(&fire) && w.running.CompareAndSwap(false, true) {
				idle = 0
				continue
			}
			break // park; an arm that raced with us has sent or will send a token
		}
		t.Stop()
	}
}

// fire stops i's running call: the plugin traps at its next check
// (internal/interrupt), or wazero closes the module for instances without
// the checks.
func (i *Instance) fire() {
	i.flag.Load().Raise() // nil-safe: not instrumented
	i.cancel()
}
