package kernel

import (
	"sync"
	"sync/atomic"
	"time"
)

// Call deadlines are enforced by one watchdog goroutine for all instances
// rather than a timer per call: resetting and stopping a runtime timer
// around every call cost ~0.1-0.3 µs, while arming a deadline here is two
// atomic loads and a store. The watchdog ticks every watchTick while calls
// are running and parks once no call has run for watchLinger, so an idle
// host spends no CPU on it.
//
// Deadlines count the watchdog's own ticks, not the wall clock: reading
// the clock on every call costs ~0.1 µs in this VM, more than the rest of
// arming. The tick count only advances while the watchdog runs, so a call
// armed while it is parked starts counting when it wakes: a deadline fires
// late by the wake-up latency at worst, and never early (see arm).
const (
	watchTick   = time.Millisecond
	watchLinger = 100 * time.Millisecond
)

// deadlineFired marks an instance whose deadline the watchdog has fired.
const deadlineFired = -1

type watchdog struct {
	ticks   atomic.Int64 // ticks seen since start; deadlines are in ticks
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
//
// The deadline is two ticks beyond the timeout's length in ticks: the call
// may start just before a tick, and a tick delayed in the Ticker's channel
// may be followed by the next one at once.
func (i *Instance) arm(timeout time.Duration) {
	i.deadline.Store(dog.ticks.Load() + int64((timeout+watchTick-1)/watchTick) + 2)
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
	now := w.ticks.Load()
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
			w.ticks.Add(1)
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
