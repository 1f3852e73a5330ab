package kernel

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Call deadlines are enforced by one watchdog goroutine for all instances
// rather than a timer per call: resetting and stopping a runtime timer
// around every call cost ~0.1-0.3 µs, while arming a deadline here is a
// clock read and two stores to the instance.
//
// The watchdog sleeps until the earliest deadline it can have to fire: the
// earliest of the calls it saw running, and, for calls armed while it
// sleeps, one shortest timeout from now (a call armed later cannot expire
// before that). So while plugins are called it wakes about once per
// shortest timeout (every 100 ms with the default), and it parks once no
// call has been armed for watchLinger, so an idle host spends no CPU on it.
// It used to tick every millisecond while calls ran: each tick woke
// threads of the host process, and a guest making a connection every
// 200 µs through the CLI paid ~12 µs per connection for it
// (BENCHMARKS.md, "The watchdog's ticks").
//
// Deadlines are in wall-clock (monotonic) time, read once when a call is
// armed (~25 ns more per call than counting ticks; reading only the
// runtime's monotonic clock through linkname saved nothing measurable).
// Counting the watchdog's own ticks instead ran slow whenever the watchdog
// was scheduled late: a 50ms timeout took 80-230 ms on a loaded machine.
// Now a late wake-up only delays the check that notices the deadline, by
// the scheduling latency of one wake-up, and a deadline never fires early.
//
// watchMinSleep bounds how often it wakes: with a timeout shorter than it
// (a manifest may say "1us") the watchdog would otherwise spin while calls
// run. So a deadline may fire up to watchMinSleep late, as any deadline
// could with the millisecond tick.
const (
	watchLinger   = 100 * time.Millisecond
	watchMinSleep = time.Millisecond
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
	running atomic.Bool   // awake or sleeping on its timer, or about to be
	wake    chan struct{} // a token when running turns true
	// shortest is the shortest timeout any call has been armed with (ns).
	// It only decreases; arm pokes the watchdog when it does, so that a
	// sleep planned with the longer one is cut short.
	shortest atomic.Int64
	poke     chan struct{}
	once     sync.Once
	wakeups  atomic.Uint64 // times the loop woke to scan; for tests
}

var dog = newWatchdog()

func newWatchdog() *watchdog {
	w := &watchdog{insts: map[*Instance]struct{}{}, wake: make(chan struct{}, 1), poke: make(chan struct{}, 1)}
	w.shortest.Store(math.MaxInt64)
	return w
}

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

// arm starts i's deadline. The stores come before the running check, and
// the watchdog clears running before its last scan, so either the
// watchdog sees this call or arm sees it parked and wakes it.
func (i *Instance) arm(timeout time.Duration) {
	now := monoNow()
	i.deadline.Store(now + int64(timeout))
	i.armedAt.Store(now)
	if int64(timeout) < dog.shortest.Load() {
		dog.lower(int64(timeout))
	}
	if !dog.running.Load() {
		dog.start()
	}
}

// disarm ends the call's deadline; false if it fired.
func (i *Instance) disarm() bool {
	return i.deadline.Swap(0) != deadlineFired
}

// lower records a shorter timeout and wakes the watchdog to plan its sleep
// again.
func (w *watchdog) lower(timeout int64) {
	for {
		old := w.shortest.Load()
		if timeout >= old {
			return
		}
		if w.shortest.CompareAndSwap(old, timeout) {
			break
		}
	}
	select {
	case w.poke <- struct{}{}:
	default: // a poke is pending already
	}
}

func (w *watchdog) start() {
	w.once.Do(func() { go w.loop() })
	if w.running.CompareAndSwap(false, true) {
		w.wake <- struct{}{} // never blocks: one token per false→true
	}
}

// scan fires every expired deadline. It returns the time it read before
// looking at the instances (a call armed later has a deadline at least one
// shortest timeout after it), the earliest deadline still armed (0 if
// none) and the latest time a call was armed.
func (w *watchdog) scan(fire *[]*Instance) (now, next, lastArm int64) {
	now = monoNow()
	w.mu.Lock()
	for i := range w.insts {
		if a := i.armedAt.Load(); a > lastArm {
			lastArm = a
		}
		d := i.deadline.Load()
		if d <= 0 {
			continue
		}
		if now >= d {
			if i.deadline.CompareAndSwap(d, deadlineFired) {
				*fire = append(*fire, i)
			}
			continue
		}
		if next == 0 || d < next {
			next = d
		}
	}
	w.mu.Unlock()
	for _, i := range *fire {
		i.fire()
	}
	*fire = (*fire)[:0]
	return now, next, lastArm
}

// sleepFor is how long the watchdog may sleep after a scan that read the
// time now and found next as the earliest armed deadline: until that deadline, and at
// most one shortest timeout (the earliest a call armed during the sleep can
// expire), but at least watchMinSleep.
func (w *watchdog) sleepFor(now, next int64) time.Duration {
	d := w.shortest.Load()
	if next > 0 && next-now < d {
		d = next - now
	}
	return max(time.Duration(d), watchMinSleep)
}

func (w *watchdog) loop() {
	var fire []*Instance
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		<-w.wake
		for {
			w.wakeups.Add(1)
			now, next, lastArm := w.scan(&fire)
			if next == 0 && now-lastArm >= int64(watchLinger) {
				w.running.Store(false)
				if now, next, _ = w.scan(&fire); next == 0 || !w.running.CompareAndSwap(false, true) {
					break // park; an arm that raced with us has sent or will send a token
				}
			}
			t.Reset(w.sleepFor(now, next))
			select {
			case <-t.C:
			case <-w.poke:
				t.Stop()
			}
		}
	}
}

// fire stops i's running call: the plugin traps at its next check
// (internal/interrupt), or wazero closes the module for instances without
// the checks.
func (i *Instance) fire() {
	i.flag.Load().Raise() // nil-safe: not instrumented
	i.cancel()
}
