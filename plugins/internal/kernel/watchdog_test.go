package kernel

import (
	"context"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmgate/wasmgate/plugins/internal/testbuild"
)

// TestWatchdogParksAndWakes: after watchLinger without calls the watchdog
// parks (no CPU on an idle host), and the next runaway call still times
// out; quick calls in between never see a stale deadline.
func TestWatchdogParksAndWakes(t *testing.T) {
	loop := compileMulti(t, "loop", 30*time.Millisecond)
	ok := compileMulti(t, "ok", 10*time.Second)
	good, err := ok.Instantiate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	for round := range 3 {
		// Parked: wait for the watchdog to go idle.
		deadline := time.Now().Add(10 * time.Second)
		for dog.running.Load() {
			if time.Now().After(deadline) {
				t.Fatal("the watchdog never parked")
			}
			time.Sleep(10 * time.Millisecond)
		}
		inst, err := loop.Instantiate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = inst.Call("decide", []byte(req))
		if ce, ok := err.(*CallError); !ok || ce.Kind != KindTimeout {
			t.Fatalf("round %d: got %v, want a timeout", round, err)
		}
		if d := time.Since(start); d > 5*time.Second || d < 30*time.Millisecond {
			t.Fatalf("round %d: the 30ms timeout fired after %v", round, d)
		}
		if !inst.Dead() {
			t.Fatal("a timed-out instance must be dead")
		}
		for range 200 {
			if _, err := good.Call("decide", []byte(req)); err != nil {
				t.Fatalf("round %d: a quick call failed: %v", round, err)
			}
		}
	}
	dog.mu.Lock()
	_, registered := dog.insts[good]
	dog.mu.Unlock()
	if !registered {
		t.Fatal("a live instance is not watched")
	}
	good.Close()
	dog.mu.Lock()
	_, registered = dog.insts[good]
	dog.mu.Unlock()
	if registered {
		t.Fatal("a closed instance is still watched")
	}
}

// TestWatchdogSleepsBetweenQuickCalls: quick calls made back to back for
// a while do not make the watchdog wake per call or per millisecond: it
// sleeps about one shortest timeout at a time. The old watchdog ticked
// every millisecond while calls ran (~300 wake-ups here), which cost a
// guest ~12 µs per connection through the CLI.
func TestWatchdogSleepsBetweenQuickCalls(t *testing.T) {
	good := instantiate(t, compileMulti(t, "ok", 10*time.Second))
	if _, err := good.Call("decide", []byte(req)); err != nil {
		t.Fatal(err)
	}
	const span = 300 * time.Millisecond
	before := dog.wakeups.Load()
	calls := 0
	for start := time.Now(); time.Since(start) < span; calls++ {
		if _, err := good.Call("decide", []byte(req)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
	}
	woke := dog.wakeups.Load() - before
	// Other tests of this package may have lowered the shortest timeout
	// (30 ms at the least): allow a wake-up per shortest timeout, plus the
	// first wake and a poke.
	shortest := time.Duration(dog.shortest.Load())
	bound := uint64(span/shortest) + 3
	t.Logf("%d calls in %v: the watchdog woke %d times (shortest timeout %v, bound %d)", calls, span, woke, shortest, bound)
	if woke > bound {
		t.Fatalf("the watchdog woke %d times in %v of quick calls, want at most %d", woke, span, bound)
	}
	if !dog.running.Load() {
		t.Fatal("the watchdog parked while calls were being made")
	}
}

// TestWatchdogShorterTimeoutWakesIt: a watchdog asleep for the longest
// timeout seen so far is woken by a call with a shorter one, whose
// runaway then ends on time rather than when the long sleep ends.
func TestWatchdogShorterTimeoutWakesIt(t *testing.T) {
	good := instantiate(t, compileMulti(t, "ok", 20*time.Second))
	runaway := instantiate(t, compileMulti(t, "loop", 40*time.Millisecond))
	// Forget the shorter timeouts of earlier tests (the package's tests
	// run one at a time), then let the watchdog plan a 20 s sleep.
	dog.shortest.Store(math.MaxInt64)
	for range 3 {
		if _, err := good.Call("decide", []byte(req)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	_, err := runaway.Call("decide", []byte(req))
	if ce, ok := err.(*CallError); !ok || ce.Kind != KindTimeout {
		t.Fatalf("got %v, want a timeout", err)
	}
	d := time.Since(start)
	t.Logf("the 40ms timeout fired after %v", d)
	// Without the poke it fires when the sleep planned for the 5 s
	// init timeouts of the instantiations ends (4.9 s, measured).
	if d > 2*time.Second {
		t.Fatalf("the 40ms timeout fired after %v: the watchdog slept through it", d)
	}
}

// TestWatchdogSleepFor: the watchdog sleeps until the earliest armed
// deadline, at most one shortest timeout, and never less than
// watchMinSleep (a "1us" timeout must not make it spin).
func TestWatchdogSleepFor(t *testing.T) {
	ms := int64(time.Millisecond)
	for _, c := range []struct {
		shortest, now, next int64
		want                time.Duration
	}{
		{100 * ms, 0, 0, 100 * time.Millisecond},            // nothing armed: one shortest timeout
		{100 * ms, 0, 30 * ms, 30 * time.Millisecond},       // until the armed deadline
		{100 * ms, 0, 500 * ms, 100 * time.Millisecond},     // a later deadline: a new call may expire sooner
		{100 * ms, 40 * ms, 30 * ms, watchMinSleep},         // already due (fired by the scan before)
		{1000, 0, 0, watchMinSleep},                         // a 1 µs timeout
		{100 * ms, 0, ms / 2, watchMinSleep},                // due within the floor
		{math.MaxInt64, 0, 0, time.Duration(math.MaxInt64)}, // no call yet
	} {
		w := newWatchdog()
		w.shortest.Store(c.shortest)
		if got := w.sleepFor(c.now, c.next); got != c.want {
			t.Errorf("shortest %v, now %v, next %v: sleep %v, want %v", time.Duration(c.shortest), time.Duration(c.now), time.Duration(c.next), got, c.want)
		}
	}
}

// TestSharedCompiledModule: plugins of the same bytes and memory cap share
// one runtime and compiled module but keep their own config; closing one
// leaves the other working; a different cap gets its own runtime.
func TestSharedCompiledModule(t *testing.T) {
	e := NewEngineWithCache(testbuild.Cache())
	ctx := context.Background()
	compile := func(behave string, pages uint32) *Module {
		m, err := e.Compile(ctx, Config{Name: behave, Wasm: testbuild.Bytes(t, multi), Timeout: 10 * time.Second,
			MemoryPages: pages, Config: map[string]string{"behave": behave}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ok, echo, other := compile("ok", 160), compile("echo", 160), compile("ok", 200)
	if ok.c != echo.c || ok.c == other.c {
		t.Fatalf("sharing: ok/echo %v, ok/other-cap %v", ok.c == echo.c, ok.c == other.c)
	}
	call := func(m *Module, in string) string {
		t.Helper()
		inst, err := m.Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		out, err := inst.Call("decide", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if got := call(echo, "hello"); got != "hello" {
		t.Fatalf("echo plugin: %q", got)
	}
	if got := call(ok, req); !strings.Contains(got, `"allow"`) {
		t.Fatalf("ok plugin: %q", got)
	}
	if err := ok.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ok.Close(ctx) // twice is harmless
	if got := call(echo, "still"); got != "still" {
		t.Fatalf("echo plugin after the other closed: %q", got)
	}
	echo.Close(ctx)
	other.Close(ctx)
	e.mu.Lock()
	n := len(e.compiled)
	e.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d compiled modules left after every plugin closed", n)
	}
}

// TestTimeoutWallClock: a runaway decide stops within 10 ms + 10 % of its
// timeout in wall-clock time (docs/kernel.md#timeouts), on a quiet process
// and with every CPU kept busy by other goroutines. The bound is checked on
// the median of several calls, so one unlucky scheduling delay does not fail
// the test while a systematic overshoot (a deadline that counts something
// slower than the clock) does.
func TestTimeoutWallClock(t *testing.T) {
	const timeout = 50 * time.Millisecond
	const calls = 7
	bound := 10*time.Millisecond + timeout/10
	loop := compileMulti(t, "loop", timeout)
	measure := func() time.Duration {
		var over []time.Duration
		for range calls {
			inst, err := loop.Instantiate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = inst.Call("decide", []byte(req))
			d := time.Since(start)
			inst.Close()
			if ce, ok := err.(*CallError); !ok || ce.Kind != KindTimeout {
				t.Fatalf("got %v, want a timeout", err)
			}
			if d < timeout {
				t.Fatalf("the %v timeout fired early, after %v", timeout, d)
			}
			over = append(over, d-timeout)
		}
		slices.Sort(over)
		return over[len(over)/2]
	}
	// Up to three rounds per phase: the machine running the test may be
	// busy with other test binaries as well; a deadline that counts
	// something slower than the clock overshoots in every round (the
	// watchdog that counted ticks overshot a 50 ms timeout by 32 ms quiet
	// and 180 ms busy, every time).
	check := func(phase string) {
		var m time.Duration
		for round := range 3 {
			m = measure()
			t.Logf("%s, round %d: median overshoot %v", phase, round+1, m)
			if m <= bound {
				return
			}
		}
		t.Errorf("%s: median overshoot %v of a %v timeout in three rounds, want at most %v", phase, m, timeout, bound)
	}
	check("quiet")
	// Busy: every CPU kept busy by other processes, as on a shared build
	// machine.
	var spinners []*exec.Cmd
	for range runtime.NumCPU() {
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), "WASMGATE_SPIN=1")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		spinners = append(spinners, c)
	}
	defer func() {
		for _, c := range spinners {
			c.Process.Kill()
			c.Wait()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	check("busy")
}

// spin burns CPU for a minute: the test binary runs it instead of the
// tests when TestTimeoutWallClock starts it with WASMGATE_SPIN=1 (see
// TestMain).
func spin() {
	x := 0
	for end := time.Now().Add(time.Minute); time.Now().Before(end); {
		for j := range 1 << 16 {
			x += j
		}
	}
	_ = x
}
