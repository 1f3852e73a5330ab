package kernel

import (
	"context"
	"testing"
	"time"
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
